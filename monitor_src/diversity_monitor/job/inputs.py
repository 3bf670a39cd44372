"""The job's reference inputs: the held-out validation set and the article catalog.

Validation set: JSON Lines, one session a line, `{"session_id": "...", "request": {...}}`;
`request` is sent to the endpoint verbatim: the exact bytes of its JSON text on the line, never
re-serialised (a 30-digit integer, a float's digits, duplicate keys and key order reach the
model as written). Each body must fit InvokeEndpoint's limit (the service model's BodyBlob max,
6 MiB), checked at load, before any replay.
Catalog: CSV with a header row containing `article_id` and `category` (extra columns allowed),
or JSON Lines with those two keys. The format is chosen by the file's extension (`.csv`,
`.jsonl`/`.json`), falling back to its first character.

JSON Lines are split at "\n" only ("\r\n" tolerated): JSON allows U+2028, U+2029 and U+0085
raw inside strings, and `str.splitlines()` would cut a line there.

A `session_id` may be any non-empty string; where it cannot go into InvokeEndpoint's
InferenceId as is (too long, not printable ASCII) the replay derives a valid id from its hash
(see replay.inference_id), so the data needs no rewriting and the id stays deterministic.

Every problem is an `InputError` naming the input, the line and what is wrong. Nothing is
skipped: a malformed line fails the load, because a silently shrunken validation set would
change the metric without anyone knowing. Each input is read up to its size cap
(`conventions.MAX_*_BYTES`) and refused past it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson
from botocore.exceptions import BotoCoreError

from diversity_monitor import storage
from diversity_monitor.aws import service_schema
from diversity_monitor.conventions import MAX_CATALOG_BYTES, MAX_VALIDATION_SET_BYTES
from diversity_monitor.measures.metrics import normalized_category


class InputError(ValueError):
    """A reference input that is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Session:
    session_id: str
    request: dict  # the parsed request, for reading; `body` is what is sent
    body: bytes | None = field(default=None, repr=False)  # the request's exact JSON bytes from the file

    def wire_body(self) -> bytes:
        """What InvokeEndpoint sends: the bytes as loaded, or (a session built in code) its JSON."""
        return self.body if self.body is not None else orjson.dumps(self.request)


def invoke_body_limit() -> int:
    """InvokeEndpoint's request body limit, from its service model (BodyBlob max: 6 MiB)."""
    shape = service_schema.operation_model("sagemaker-runtime", "InvokeEndpoint").input_shape.members["Body"]
    return int(shape.metadata["max"])


def _text(uri: str, what: str, limit: int) -> str:
    try:
        return storage.read_text(uri, limit)
    except storage.StorageError as error:
        raise InputError(f"{what} {error}") from error
    except BotoCoreError as error:  # storage names ClientErrors only: no endpoint, no credentials...
        raise InputError(f"{what} cannot read {uri}: {type(error).__name__}: {error}") from error


def lines(text: str) -> list[str]:
    """JSON Lines: split at "\n" only, a trailing "\r" dropped (see the module doc)."""
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


def _json_lines(text: str, uri: str, what: str) -> Iterator[tuple[int, dict]]:
    for number, line in enumerate(lines(text), start=1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            raise InputError(f"{what} {uri} line {number}: not valid JSON ({error})") from error
        if not isinstance(record, dict):
            raise InputError(f"{what} {uri} line {number}: expected a JSON object, got {type(record).__name__}")
        yield number, record


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)  # the standard library's: integers of any length stay exact
_WHITESPACE = " \t\r\n"


def _members_with_text(line: str) -> list[tuple[str, object, str]]:
    """A JSON object line's top-level members as (key, value, the value's exact text).

    The standard decoder's `raw_decode` reports where each value ends, so the request can be sent
    as the very characters the file holds. ValueError when the line is not one JSON object.
    """
    index = len(line) - len(line.lstrip(_WHITESPACE))
    if not line.startswith("{", index):
        raise ValueError("expected a JSON object")
    members = []
    index += 1
    while True:
        while index < len(line) and line[index] in _WHITESPACE:
            index += 1
        if line.startswith("}", index) and not members:
            index += 1
            break
        if not line.startswith('"', index):
            raise ValueError(f"expected a member name at character {index}")
        key, index = json.decoder.scanstring(line, index + 1)
        while index < len(line) and line[index] in _WHITESPACE:
            index += 1
        if not line.startswith(":", index):
            raise ValueError(f"expected ':' at character {index}")
        index += 1
        while index < len(line) and line[index] in _WHITESPACE:
            index += 1
        value, end = _DECODER.raw_decode(line, index)
        members.append((key, value, line[index:end]))
        index = end
        while index < len(line) and line[index] in _WHITESPACE:
            index += 1
        if line.startswith(",", index):
            index += 1
            continue
        if line.startswith("}", index):
            index += 1
            break
        raise ValueError(f"expected ',' or '}}' at character {index}")
    if line[index:].strip(_WHITESPACE):
        raise ValueError(f"extra data after the object at character {index}")
    return members


def load_validation_set(uri: str) -> list[Session]:
    what = "validation set"
    sessions: list[Session] = []
    seen: set[str] = set()
    body_limit = invoke_body_limit()
    for number, line in enumerate(lines(_text(uri, what, MAX_VALIDATION_SET_BYTES)), start=1):
        if not line.strip():
            continue
        try:
            members = _members_with_text(line)
        except ValueError as error:
            raise InputError(f"{what} {uri} line {number}: not valid JSON ({error})") from error
        names = [key for key, _, _ in members]
        twice = sorted({key for key in names if names.count(key) > 1})
        if twice:
            raise InputError(f"{what} {uri} line {number}: {', '.join(map(repr, twice))} given twice; which one "
                             "is meant is ambiguous")
        record = {key: (value, text) for key, value, text in members}
        session_id, (request, request_text) = record.get("session_id", (None, ""))[0], record.get("request", (None, ""))
        if not isinstance(session_id, str) or not session_id:
            raise InputError(f"{what} {uri} line {number}: 'session_id' must be a non-empty string")
        if not isinstance(request, dict):
            raise InputError(f"{what} {uri} line {number}: 'request' must be a JSON object")
        if session_id in seen:
            raise InputError(f"{what} {uri} line {number}: duplicate session_id {session_id!r}")
        body = request_text.encode("utf-8")
        if len(body) > body_limit:
            raise InputError(f"{what} {uri} line {number}: the request is {len(body):,} bytes, over InvokeEndpoint's "
                             f"{body_limit:,}-byte body limit; the endpoint would refuse it every hour")
        seen.add(session_id)
        sessions.append(Session(session_id, request, body))
    if not sessions:
        raise InputError(f"{what} {uri} has no sessions")
    return sessions


def load_catalog(uri: str) -> dict[str, str]:
    """article_id -> category."""
    what = "catalog"
    text = _text(uri, what, MAX_CATALOG_BYTES)
    lowered = uri.lower()
    if lowered.endswith(".csv"):
        rows = _csv_rows(text, uri)
    elif lowered.endswith((".jsonl", ".json")) or text.lstrip().startswith("{"):
        rows = ((number, record) for number, record in _json_lines(text, uri, what))
    else:
        rows = _csv_rows(text, uri)
    catalog: dict[str, str] = {}
    for number, row in rows:
        article_id, category = row.get("article_id"), row.get("category")
        for key, value in (("article_id", article_id), ("category", category)):
            if not isinstance(value, str) or not value.strip():
                raise InputError(f"{what} {uri} line {number}: {key!r} must be a non-empty string")
        if article_id in catalog and normalized_category(catalog[article_id]) != normalized_category(category):
            raise InputError(
                f"{what} {uri} line {number}: article {article_id!r} listed with two categories "
                f"({catalog[article_id]!r} and {category!r})"
            )
        catalog[article_id] = category
    if not catalog:
        raise InputError(f"{what} {uri} has no articles")
    return catalog


def _csv_rows(text: str, uri: str) -> Iterator[tuple[int, dict]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        missing = {"article_id", "category"} - set(reader.fieldnames or [])
        if missing:
            raise InputError(
                f"catalog {uri}: CSV header must contain article_id and category; missing {sorted(missing)}"
            )
        for row in reader:
            if None in row:  # more fields than the header names
                raise InputError(f"catalog {uri} line {reader.line_num}: more fields than the header")
            yield reader.line_num, row
    except csv.Error as error:  # a runaway quote, a field past csv.field_size_limit()...
        raise InputError(f"catalog {uri}: not valid CSV after line {reader.line_num} ({error})") from error

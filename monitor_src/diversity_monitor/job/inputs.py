"""The job's reference inputs: the held-out validation set and the article catalog.

Validation set: JSON Lines, one session a line, `{"session_id": "...", "request": {...}}`;
`request` is sent to the endpoint verbatim as the JSON body.
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
change the metric without anyone knowing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
from botocore.exceptions import BotoCoreError

from diversity_monitor import storage
from diversity_monitor.measures.metrics import normalized_category


class InputError(ValueError):
    """A reference input that is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Session:
    session_id: str
    request: dict


def _text(uri: str, what: str) -> str:
    try:
        return storage.read_text(uri)
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


def load_validation_set(uri: str) -> list[Session]:
    what = "validation set"
    sessions: list[Session] = []
    seen: set[str] = set()
    for number, record in _json_lines(_text(uri, what), uri, what):
        session_id, request = record.get("session_id"), record.get("request")
        if not isinstance(session_id, str) or not session_id:
            raise InputError(f"{what} {uri} line {number}: 'session_id' must be a non-empty string")
        if not isinstance(request, dict):
            raise InputError(f"{what} {uri} line {number}: 'request' must be a JSON object")
        if session_id in seen:
            raise InputError(f"{what} {uri} line {number}: duplicate session_id {session_id!r}")
        seen.add(session_id)
        sessions.append(Session(session_id, request))
    if not sessions:
        raise InputError(f"{what} {uri} has no sessions")
    return sessions


def load_catalog(uri: str) -> dict[str, str]:
    """article_id -> category."""
    what = "catalog"
    text = _text(uri, what)
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

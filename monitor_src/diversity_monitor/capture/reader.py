"""Read an hour (or a range of hours) of data capture: decoded records, and live-traffic diversity.

One loop reads capture lines (`_file_records`): it checks each line, sends every bad one to the
`MalformedLog` with its file and line number (exact count, first `limit` kept), and applies the
window and the replay filter (InferenceId prefix), keeping the accounts. Two consumers:
`iter_capture_records` / `iter_file_events` yield `CapturedEvent`s; `live_diversity` reads each
response's ranked ids with a response path and counts them with `metrics.DiversityAccumulator`,
the monitoring job's own metric. It streams file by file, and with `workers=N` spreads files over
N processes and merges their accumulators. Accounting that always holds: lines_read = malformed +
records_read, and records_read = outside_window + replay_excluded + without_output +
unreadable_responses + live lists.
"""

from __future__ import annotations

import gc
import multiprocessing
import sys
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from operator import attrgetter
from typing import Literal

import msgspec
import orjson

from diversity_monitor import storage
from diversity_monitor.capture.record import (
    TEXT_ENCODINGS,
    TYPED_DECODE_ERRORS,
    CapturedEvent,
    CaptureRecord,
    Location,
    MalformedRecord,
    as_utc,
    captured_event,
    check_record,
    decode_payload,
    load_line,
    parse_inference_time,
    payload_document,
    typed_record_decoder,
    unusual_shapes,
)
from diversity_monitor.capture.source import CaptureFile, CaptureSourceError, list_capture_files, open_lines
from diversity_monitor.conventions import DEFAULT_TOP_K, REPLAY_INFERENCE_PREFIX
from diversity_monitor.measures.metrics import CatalogIndex, DiversityAccumulator, top_k_slots
from diversity_monitor.measures.response_path import DEFAULT_RESPONSE_PATH, compile_response_path

__all__ = [
    "CaptureSourceError", "CaptureStats", "MalformedLog", "ReadCounts", "iter_capture_records",
    "iter_file_events", "live_diversity",
]

DEFAULT_LOCATION_LIMIT = 100
_BATCH_LISTS = 8192  # ranked lists handed to the accumulator at once
_TASKS_PER_WORKER = 4  # files are split into contiguous runs, a few per worker, for balance


class MalformedLog:
    """Lines that are not capture records: exact count, per-kind counts, the first `limit` located."""

    def __init__(self, limit: int = DEFAULT_LOCATION_LIMIT) -> None:
        self.limit = limit
        self.count = 0
        self.by_kind: Counter[str] = Counter()
        self.entries: list[tuple[str, int, str]] = []  # (file, line, reason)

    def add(self, file: str, line: int, error: MalformedRecord) -> None:
        self.count += 1
        self.by_kind[error.kind] += 1
        if len(self.entries) < self.limit:
            self.entries.append((file, line, str(error)))

    def merge(self, other: MalformedLog) -> MalformedLog:
        self.count += other.count
        self.by_kind.update(other.by_kind)
        self.entries += other.entries[: max(0, self.limit - len(self.entries))]
        return self

    def to_dict(self) -> dict:
        return {
            "count": self.count,
            "by_kind": dict(sorted(self.by_kind.items())),
            "locations": [{"file": file, "line": line, "reason": reason} for file, line, reason in self.entries],
            "locations_truncated": self.count > len(self.entries),
        }


@dataclass
class ReadCounts:
    files_read: int = 0
    lines_read: int = 0
    records_read: int = 0  # lines that are valid records, in the window or not
    outside_window: int = 0  # valid records whose inferenceTime falls outside [start, end)
    replay_excluded: int = 0  # valid records in the window left out by exclude_inference_prefix
    skipped_files: list[str] = field(default_factory=list)
    # Valid records with a field the kit does not read in another shape than a string (record.unusual_shapes).
    shapes: Counter = field(default_factory=Counter)

    def merge(self, other: ReadCounts) -> ReadCounts:
        for name in (item.name for item in fields(self)):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self


@dataclass(frozen=True)
class _Selection:
    """Which valid records a reader passes on: start <= inferenceTime < end, InferenceId not replay."""

    start: datetime | None = None
    end: datetime | None = None
    exclude_prefix: str | None = None


def _file_records(
    uri: str, selection: _Selection, malformed: MalformedLog, counts: ReadCounts
) -> Iterator[tuple[int, datetime, CaptureRecord, str | bytes | None]]:
    """The one loop over a capture object's lines. Yields (line number, inference time, record,
    output document) for each valid record in the selection, the document being the response as
    a JSON parser reads it (capture.payload_document) or None when the output was not captured.

    Per line, the fast path is one typed msgspec decode (the shape checked in C) and, per distinct
    second, one timestamp parse and window test. A line it refuses, or one whose timestamp or
    base64 fails, is re-read by the definition (capture.check_record on orjson's parse, the
    payloads decoded), which accepts it or names the problem: the verdict and the reason are the
    definition's either way.
    """
    decode = typed_record_decoder().decode
    refused = (*TYPED_DECODE_ERRORS, MalformedRecord)
    text_encodings, start, end, prefix = TEXT_ENCODINGS, selection.start, selection.end, selection.exclude_prefix
    last_text = last_moment = None
    last_inside = False
    number = records = outside = replay = 0
    counts.files_read += 1
    try:
        with open_lines(uri) as lines:
            for number, line in enumerate(lines, 1):
                try:
                    record = decode(line)
                    text = record.eventMetadata.inferenceTime
                    if text != last_text:  # consecutive records mostly share their second
                        last_moment = parse_inference_time(text)
                        last_inside = (start is None or last_moment >= start) and (end is None or last_moment < end)
                        last_text = text
                    moment, inside = last_moment, last_inside
                    envelope = record.captureData.endpointInput
                    if envelope is not None and envelope.encoding not in text_encodings:
                        decode_payload(envelope)  # bad base64 makes the line malformed
                    envelope = record.captureData.endpointOutput
                    output_document = (None if envelope is None else
                                       envelope.data if envelope.encoding in text_encodings else decode_payload(envelope))
                except refused:
                    try:
                        decoded = load_line(line)
                        record, moment = check_record(decoded)
                        counts.shapes.update(unusual_shapes(decoded))
                        envelope = record.captureData.endpointInput
                        if envelope is not None:
                            payload_document(envelope)
                        envelope = record.captureData.endpointOutput
                        output_document = None if envelope is None else payload_document(envelope)
                    except MalformedRecord as error:
                        malformed.add(uri, number, error)
                        continue
                    inside = (start is None or moment >= start) and (end is None or moment < end)
                records += 1
                if not inside:
                    outside += 1
                    continue
                inference_id = record.eventMetadata.inferenceId
                if prefix is not None and inference_id is not None and inference_id.startswith(prefix):
                    replay += 1
                    continue
                yield number, moment, record, output_document
    finally:  # also when a consumer stops early: the counts cover the lines read
        counts.lines_read += number
        counts.records_read += records
        counts.outside_window += outside
        counts.replay_excluded += replay


def iter_file_events(
    uri: str,
    *,
    malformed: MalformedLog,
    counts: ReadCounts | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    exclude_inference_prefix: str | None = None,
) -> Iterator[CapturedEvent]:
    """The valid records of one capture object, decoded, in line order; every bad line goes to
    `malformed` (required: nothing is dropped unseen)."""
    _require_log(malformed)
    selection = _Selection(_aware(start), _aware(end), exclude_inference_prefix or None)
    counts = ReadCounts() if counts is None else counts
    for number, moment, record, _ in _file_records(uri, selection, malformed, counts):
        yield captured_event(record, moment, Location(uri, number))


def iter_capture_records(
    source: str,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    malformed: MalformedLog,
    counts: ReadCounts | None = None,
    exclude_inference_prefix: str | None = None,
) -> Iterator[CapturedEvent]:
    """Every valid record under `source` with start <= inferenceTime < end, decoded, in file and
    line order; every bad line goes to `malformed` (required: nothing is dropped unseen). Records
    whose InferenceId starts with `exclude_inference_prefix` (if given) are counted, not yielded."""
    _require_log(malformed)
    start, end = _aware(start), _aware(end)
    counts = ReadCounts() if counts is None else counts
    listing = list_capture_files(source, start, end)
    counts.skipped_files += listing.skipped
    for capture_file in listing.files:
        yield from iter_file_events(capture_file.uri, malformed=malformed, counts=counts, start=start, end=end,
                                    exclude_inference_prefix=exclude_inference_prefix)


def _require_log(malformed: object) -> None:
    if not isinstance(malformed, MalformedLog):
        raise TypeError(f"malformed must be a MalformedLog (bad lines are counted there), got {type(malformed).__name__}")


# --- the live diversity pass -------------------------------------------------------------------

@dataclass(frozen=True)
class _Job:
    """Everything a worker needs, handed to each worker once (inherited or pickled)."""

    catalog: CatalogIndex
    k: int
    selection: _Selection
    response_path: str
    location_limit: int


@dataclass
class _Partial:
    accumulator: DiversityAccumulator
    counts: ReadCounts
    malformed: MalformedLog
    unreadable: MalformedLog
    without_output: int = 0

    @classmethod
    def empty(cls, job: _Job) -> _Partial:
        return cls(DiversityAccumulator(job.k, job.catalog), ReadCounts(), MalformedLog(job.location_limit),
                   MalformedLog(job.location_limit))

    def merge(self, other: _Partial) -> _Partial:
        self.accumulator.merge(other.accumulator)
        self.counts.merge(other.counts)
        self.malformed.merge(other.malformed)
        self.unreadable.merge(other.unreadable)
        self.without_output += other.without_output
        return self


@contextmanager
def _collector_paused():
    """Decoding builds a dozen acyclic objects per record; the cyclic collector would scan them
    all for nothing. Reference counting still frees everything."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _RankedItem(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    article_id: str
    score: float | None = None


class _DefaultResponse(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """The reference recommender's response, `recommendations[].article_id` (DEFAULT_RESPONSE_PATH)
    as a type: one C-level decode checks the path and reads the ids. Every member is declared and
    typed, none skipped: a skipped member would escape checks orjson applies (1e400 is refused
    by orjson, skipped by msgspec). A payload this refuses (other members, other types) goes to
    orjson + response_path for the verdict, so this path never accepts more than that one.
    tests/test_capture_typed.py holds it (and the catalog variant below) to the path."""

    recommendations: list[_RankedItem]
    model_version: str | None = None


_catalog_decoders: dict[bytes, msgspec.json.Decoder] = {}  # per process: the last catalog's


def _catalog_response_decoder(index: CatalogIndex) -> msgspec.json.Decoder:
    """_DefaultResponse with `article_id` typed as the catalog's ids (a Literal): msgspec then hands
    back the catalog's own str objects, hashed once, so counting allocates and hashes no string
    per id (about 6% fewer instructions in the pass). An id missing from the catalog makes it refuse; the plain
    _DefaultResponse decoder then reads that response. Derived from _RankedItem's own fields."""
    decoder = _catalog_decoders.get(index.fingerprint)
    if decoder is None:
        article_id = Literal[tuple(index.article_ids)] if len(index) else str
        item = msgspec.defstruct("CatalogRankedItem", [
            (f.name, article_id if f.name == "article_id" else f.type, f.default)
            for f in msgspec.structs.fields(_RankedItem)
        ], forbid_unknown_fields=True, gc=False)
        response = msgspec.defstruct("CatalogResponse", [
            (f.name, list[item] if f.name == "recommendations" else f.type, f.default)
            for f in msgspec.structs.fields(_DefaultResponse)
        ], forbid_unknown_fields=True, gc=False)
        _catalog_decoders.clear()
        decoder = _catalog_decoders[index.fingerprint] = msgspec.json.Decoder(response)
    return decoder


def _scan_files(capture_files: list[CaptureFile], job: _Job) -> _Partial:
    """A run of files' share of the pass: ranked ids of each live response, batched into the accumulator."""
    partial = _Partial.empty(job)
    accumulator, k, unreadable = partial.accumulator, job.k, partial.unreadable
    extract, loads, article_ids = compile_response_path(job.response_path), orjson.loads, attrgetter("article_id")
    decode_catalog_response = decode_response = None
    if job.response_path == DEFAULT_RESPONSE_PATH:
        decode_catalog_response = _catalog_response_decoder(job.catalog).decode
        decode_response = msgspec.json.Decoder(_DefaultResponse).decode
    response_refused = TYPED_DECODE_ERRORS
    batch = k * _BATCH_LISTS
    slots: list[str | None] = []
    without_output = 0
    with _collector_paused():
        for capture_file in capture_files:
            uri = capture_file.uri
            for number, _, _, body in _file_records(uri, job.selection, partial.malformed, partial.counts):
                if body is None:
                    without_output += 1
                    continue
                items = None
                if decode_response is not None:
                    try:
                        items = decode_catalog_response(body).recommendations
                    except response_refused:
                        try:  # e.g. an article missing from the catalog
                            items = decode_response(body).recommendations
                        except response_refused:
                            pass
                if items is not None:
                    slots += map(article_ids, items) if len(items) == k else top_k_slots(list(map(article_ids, items)), k)
                else:
                    try:
                        ranked = extract(loads(body))
                    except ValueError as error:  # orjson.JSONDecodeError is a ValueError too
                        unreadable.add(uri, number, MalformedRecord("bad-response", str(error)))
                        continue
                    slots += ranked if len(ranked) == k else top_k_slots(ranked, k)
                if len(slots) >= batch:
                    accumulator.add_slots(slots)
                    slots = []
        accumulator.add_slots(slots)
    partial.without_output = without_output
    return partial


_worker_job: _Job | None = None


def _init_worker(job: _Job) -> None:
    global _worker_job
    _worker_job = job


def _scan_in_worker(capture_files: list[CaptureFile]) -> _Partial:
    return _scan_files(capture_files, _worker_job)


def _runs(items: list, parts: int) -> list[list]:
    """`items` cut into at most `parts` contiguous runs of near-equal length, in order."""
    parts = max(1, min(parts, len(items)))
    size, extra = divmod(len(items), parts)
    runs, begin = [], 0
    for index in range(parts):
        end = begin + size + (index < extra)
        runs.append(items[begin:end])
        begin = end
    return runs


@dataclass
class CaptureStats:
    source: str
    start: datetime | None
    end: datetime | None
    k: int
    response_path: str
    exclude_inference_prefix: str | None
    files_read: int
    skipped_files: list[str]
    lines_read: int
    records_read: int
    malformed: MalformedLog
    outside_window: int
    replay_excluded: int
    without_output: int
    unreadable_responses: MalformedLog
    accumulator: DiversityAccumulator
    shapes: Counter = field(default_factory=Counter)  # unused fields met in other shapes than a string

    @property
    def live_lists(self) -> int:
        return self.accumulator.lists

    def to_dict(self) -> dict:
        collapse = self.accumulator.collapse()
        return {
            "source": self.source,
            "window": {"start": _iso(self.start), "end": _iso(self.end)},
            "k": self.k,
            "response_path": self.response_path,
            "exclude_inference_prefix": self.exclude_inference_prefix,
            "files_read": self.files_read,
            "skipped_files": {"count": len(self.skipped_files), "files": self.skipped_files[:DEFAULT_LOCATION_LIMIT]},
            "lines_read": self.lines_read,
            "records_read": self.records_read,
            "malformed": self.malformed.to_dict(),
            # Fields the monitor does not read (eventId, customAttributes, observedContentType) accept any
            # JSON value; the shapes met other than a string, with how many records had each.
            "other_field_shapes": dict(sorted(self.shapes.items())),
            "outside_window": self.outside_window,
            "replay_excluded": self.replay_excluded,
            "without_output": self.without_output,
            "unreadable_responses": self.unreadable_responses.to_dict(),
            "live_lists": self.live_lists,
            "diversity": asdict(self.accumulator.diversity()),
            "collapse": {
                "distinct_articles": collapse.distinct_articles,
                "max_slot_concentration": collapse.max_slot_concentration,
                "slots": [asdict(slot) for slot in collapse.slots],
            },
        }


def _process_context(source: str):
    """fork where it is safe: Linux, a single thread (the CLI, the monitoring job) and a local
    source (an S3 source means this process holds boto3 connections a child must not share).
    It spares each worker re-importing boto3 and numpy. Otherwise spawn, which in a script needs
    the usual `if __name__ == "__main__":` guard."""
    if sys.platform == "linux" and threading.active_count() == 1 and not storage.is_s3(source):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def live_diversity(
    source: str,
    catalog: Mapping[str, str] | CatalogIndex,
    k: int = DEFAULT_TOP_K,
    start: datetime | None = None,
    end: datetime | None = None,
    exclude_inference_prefix: str | None = REPLAY_INFERENCE_PREFIX,
    response_path: str = DEFAULT_RESPONSE_PATH,
    workers: int = 1,
    location_limit: int = DEFAULT_LOCATION_LIMIT,
) -> CaptureStats:
    """Diversity and slot collapse of the live traffic captured under `source` in [start, end)."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    start, end = _aware(start), _aware(end)
    compile_response_path(response_path)  # a bad expression fails here, not in every worker
    index = catalog if isinstance(catalog, CatalogIndex) else CatalogIndex(catalog)
    _ = index.fingerprint  # computed once here, carried to the workers, compared on every merge
    job = _Job(index, k, _Selection(start, end, exclude_inference_prefix or None), response_path, location_limit)
    total = _Partial.empty(job)  # also checks k
    listing = list_capture_files(source, start, end)
    if workers == 1 or len(listing.files) < 2:
        total.merge(_scan_files(listing.files, job))
    else:
        runs = _runs(listing.files, workers * _TASKS_PER_WORKER)
        with ProcessPoolExecutor(min(workers, len(runs)), mp_context=_process_context(source),
                                 initializer=_init_worker, initargs=(job,)) as pool:
            for partial in pool.map(_scan_in_worker, runs):  # in file order: deterministic
                total.merge(partial)
    counts = total.counts
    return CaptureStats(
        source=source, start=start, end=end, k=k, response_path=response_path,
        exclude_inference_prefix=job.selection.exclude_prefix, files_read=counts.files_read,
        skipped_files=listing.skipped, lines_read=counts.lines_read, records_read=counts.records_read,
        malformed=total.malformed, outside_window=counts.outside_window,
        replay_excluded=counts.replay_excluded, without_output=total.without_output,
        unreadable_responses=total.unreadable, accumulator=total.accumulator, shapes=counts.shapes,
    )


def _aware(moment: datetime | None) -> datetime | None:
    """Window bounds in UTC; naive ones are taken as UTC, like every instant in the kit."""
    return None if moment is None else as_utc(moment)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()

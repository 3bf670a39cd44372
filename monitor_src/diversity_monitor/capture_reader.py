"""Read an hour (or a range of hours) of data capture: decoded records, and live-traffic diversity.

`iter_capture_records` yields every good record of the window as a `CapturedEvent`; every bad
line goes to the `MalformedLog` with its file and line number (exact count, first `limit` kept).
`live_diversity` runs the monitoring job's metrics over what the endpoint actually served:
replay traffic (InferenceId prefix) is excluded and counted, each response's ranked ids are
read with a response path, and lists are fed to `metrics.DiversityAccumulator`. It streams file
by file, and with `workers=N` spreads files over N processes and merges their accumulators.
Accounting that always holds: lines_read = malformed + records_read, and records_read =
outside_window + replay_excluded + without_output + unreadable_responses + live lists.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import sys
import threading
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Iterator, Mapping

import msgspec
import orjson

from diversity_monitor import clock, storage
from diversity_monitor.capture import (
    REPLAY_INFERENCE_PREFIX, TEXT_ENCODINGS, TYPED_DECODE_ERRORS, CapturedEvent, Location, MalformedRecord, as_utc,
    check_payload, check_record, load_line, parse_inference_time, parse_line, payload_document, typed_record_decoder,
)
from diversity_monitor.capture_lists import CatalogIndex, RankedListFeeder
from diversity_monitor.capture_source import CaptureFile, CaptureSourceError, iter_lines, list_capture_files
from diversity_monitor.inputs import InputError, load_catalog
from diversity_monitor.metrics import DiversityAccumulator
from diversity_monitor.response_path import DEFAULT_RESPONSE_PATH, compile_response_path

__all__ = [
    "CaptureSourceError", "CaptureStats", "MalformedLog", "ReadCounts", "iter_capture_records",
    "live_diversity", "register",
]

DEFAULT_LOCATION_LIMIT = 100


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

    def merge(self, other: "MalformedLog") -> "MalformedLog":
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


def iter_capture_records(
    source: str,
    start: datetime | None = None,
    end: datetime | None = None,
    malformed: MalformedLog | None = None,
    *,
    counts: ReadCounts | None = None,
    exclude_inference_prefix: str | None = None,
) -> Iterator[CapturedEvent]:
    """Every valid record with start <= inferenceTime < end, decoded, in file and line order;
    records whose InferenceId starts with `exclude_inference_prefix` (if given) are counted, not yielded."""
    start, end = _aware(start), _aware(end)
    malformed = MalformedLog() if malformed is None else malformed
    counts = ReadCounts() if counts is None else counts
    listing = list_capture_files(source, start, end)
    counts.skipped_files += listing.skipped
    for capture_file in listing.files:
        counts.files_read += 1
        for number, line in enumerate(iter_lines(capture_file.uri), 1):
            counts.lines_read += 1
            try:
                event = parse_line(line, Location(capture_file.uri, number))
            except MalformedRecord as error:
                malformed.add(capture_file.uri, number, error)
                continue
            counts.records_read += 1
            if (start is not None and event.inference_time < start) or (end is not None and event.inference_time >= end):
                counts.outside_window += 1
                continue
            if exclude_inference_prefix and (event.inference_id or "").startswith(exclude_inference_prefix):
                counts.replay_excluded += 1
                continue
            yield event


# --- the live diversity pass -------------------------------------------------------------------

@dataclass(frozen=True)
class _Job:
    """Everything a worker needs, handed to each worker once (inherited or pickled)."""

    catalog: CatalogIndex
    k: int
    start: datetime | None
    end: datetime | None
    exclude_prefix: str | None
    response_path: str
    location_limit: int


@dataclass
class _Partial:
    accumulator: DiversityAccumulator
    counts: Counter = field(default_factory=Counter)
    malformed: MalformedLog = field(default_factory=MalformedLog)
    unreadable: MalformedLog = field(default_factory=MalformedLog)

    def merge(self, other: "_Partial") -> "_Partial":
        self.accumulator.merge(other.accumulator)
        self.counts.update(other.counts)
        self.malformed.merge(other.malformed)
        self.unreadable.merge(other.unreadable)
        return self


@contextmanager
def _collector_paused():
    """orjson builds ~30 acyclic containers per record; the cyclic collector would scan them all
    for nothing (about a tenth of the pass). Reference counting still frees everything."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _RankedItem(msgspec.Struct, gc=False):
    article_id: str


class _DefaultResponse(msgspec.Struct, gc=False):
    """DEFAULT_RESPONSE_PATH as a type: decoding checks the path and reads only the ids. Other
    members are skipped unparsed; a payload this refuses goes to response_path for the verdict."""

    recommendations: list[_RankedItem]


def _scan_file(capture_file: CaptureFile, job: _Job) -> _Partial:
    """One file's share of the pass.

    The hot loop, per line: one typed msgspec decode of the record (shape checked in C), the
    inference time (cached per second), one typed decode of a text response under the default
    path, and a list.extend into the feeder. A line the typed decode refuses, or one with a
    base64 payload or no output, takes the checked path (capture.py's own rules, orjson), which
    gives exactly the verdict and malformed reason the pass always gave; likewise a response the
    typed decode refuses goes through response_path.
    """
    uri, start, end, prefix = capture_file.uri, job.start, job.end, job.exclude_prefix
    extract = compile_response_path(job.response_path)
    partial = _Partial(DiversityAccumulator(job.k), malformed=MalformedLog(job.location_limit),
                       unreadable=MalformedLog(job.location_limit))
    feeder = RankedListFeeder(partial.accumulator, job.catalog)
    add_list = feeder.add
    loads, check, document = orjson.loads, check_record, payload_document
    decode_record = typed_record_decoder().decode
    decode_response = (msgspec.json.Decoder(_DefaultResponse).decode
                       if job.response_path == DEFAULT_RESPONSE_PATH else None)
    record_refused, response_refused = TYPED_DECODE_ERRORS, TYPED_DECODE_ERRORS
    text_encodings = TEXT_ENCODINGS
    last_time, last_moment = None, None
    number = records = outside = replay = without_output = 0
    with _collector_paused():
        for number, line in enumerate(iter_lines(uri), 1):
            body = None
            try:
                record = decode_record(line)
                output = record.captureData.endpointOutput
                endpoint_input = record.captureData.endpointInput
                if (output is not None and output.encoding in text_encodings
                        and (endpoint_input is None or endpoint_input.encoding in text_encodings)):
                    text = record.eventMetadata.inferenceTime
                    if text != last_time:
                        last_moment, last_time = parse_inference_time(text), text
                    moment, inference_id, body = last_moment, record.eventMetadata.inferenceId, output.data
            except record_refused:
                pass
            except MalformedRecord:  # a bad timestamp: the checked path reports it
                pass
            if body is None:  # the checked path
                try:
                    checked = check(load_line(line))
                    if checked.endpoint_input is not None:
                        check_payload(checked.endpoint_input)  # e.g. bad base64 in the input: malformed
                    output = checked.endpoint_output
                    body = None if output is None else document(output)
                except MalformedRecord as error:
                    partial.malformed.add(uri, number, error)
                    continue
                moment, inference_id = checked.inference_time, checked.metadata.get("inferenceId")
            records += 1
            if (start is not None and moment < start) or (end is not None and moment >= end):
                outside += 1
                continue
            if prefix and inference_id is not None and inference_id.startswith(prefix):
                replay += 1
                continue
            if body is None:
                without_output += 1
                continue
            if decode_response is not None and type(body) is str:
                try:
                    add_list([item.article_id for item in decode_response(body).recommendations])
                    continue
                except response_refused:
                    pass
            try:
                ranked = extract(loads(body))
            except ValueError as error:  # orjson.JSONDecodeError is a ValueError too
                partial.unreadable.add(uri, number, MalformedRecord("bad-response", str(error)))
                continue
            add_list(ranked)
        feeder.flush()
    partial.counts.update(files_read=1, lines_read=number, records_read=records, outside_window=outside,
                          replay_excluded=replay, without_output=without_output)
    return partial


_worker_job: _Job | None = None


def _init_worker(job: _Job) -> None:
    global _worker_job
    _worker_job = job


def _scan_in_worker(capture_file: CaptureFile) -> _Partial:
    return _scan_file(capture_file, _worker_job)


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

    @property
    def live_lists(self) -> int:
        return sum(self.accumulator.histogram)

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
    catalog: Mapping[str, str],
    k: int = 10,
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
    DiversityAccumulator(k)  # likewise for k
    listing = list_capture_files(source, start, end)
    job = _Job(CatalogIndex(catalog), k, start, end, exclude_inference_prefix or None, response_path, location_limit)
    total = _Partial(DiversityAccumulator(k), malformed=MalformedLog(location_limit),
                     unreadable=MalformedLog(location_limit))
    if workers == 1 or len(listing.files) < 2:
        for capture_file in listing.files:
            total.merge(_scan_file(capture_file, job))
    else:
        with ProcessPoolExecutor(min(workers, len(listing.files)), mp_context=_process_context(source),
                                 initializer=_init_worker, initargs=(job,)) as pool:
            for partial in pool.map(_scan_in_worker, listing.files):  # in file order: deterministic
                total.merge(partial)
    counts = total.counts
    return CaptureStats(
        source=source, start=start, end=end, k=k, response_path=response_path,
        exclude_inference_prefix=job.exclude_prefix, files_read=counts["files_read"],
        skipped_files=listing.skipped, lines_read=counts["lines_read"], records_read=counts["records_read"],
        malformed=total.malformed, outside_window=counts["outside_window"],
        replay_excluded=counts["replay_excluded"], without_output=counts["without_output"],
        unreadable_responses=total.unreadable, accumulator=total.accumulator,
    )


def _aware(moment: datetime | None) -> datetime | None:
    """Window bounds in UTC; naive ones are taken as UTC, like every instant in the kit."""
    return None if moment is None else as_utc(moment)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


# --- `diversity-monitor capture-stats` ------------------------------------------------------------

EXIT_SOURCE_ERROR, EXIT_CATALOG_ERROR = 3, 4


def register(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Read captured traffic (an S3 prefix or a local folder) and print a JSON summary: records read, "
        "malformed lines with their locations, replay records excluded, live-traffic diversity and slot collapse."
    )
    parser.add_argument("source", metavar="SOURCE", help="s3://bucket/prefix (DestinationS3Uri, endpoint or variant level) or a local folder")
    parser.add_argument("--catalog", required=True, metavar="URI", help="article catalog (CSV or JSON Lines: article_id, category)")
    parser.add_argument("--start", type=_instant, metavar="T", help="ISO-8601 start of the window (inclusive)")
    parser.add_argument("--end", type=_instant, metavar="T", help="ISO-8601 end of the window (exclusive)")
    parser.add_argument("--exclude-inference-prefix", default=REPLAY_INFERENCE_PREFIX, metavar="P",
                        help=f"InferenceId prefix of replay traffic to exclude (default {REPLAY_INFERENCE_PREFIX!r}; '' excludes nothing)")
    parser.add_argument("--k", type=int, default=10, help="top-k size (default 10)")
    parser.add_argument("--response-path", default=DEFAULT_RESPONSE_PATH, metavar="EXPR",
                        help=f"where the ranked article ids are in a response (default {DEFAULT_RESPONSE_PATH!r})")
    parser.add_argument("--workers", type=int, default=1, help="processes reading files in parallel (default 1)")
    parser.add_argument("--max-locations", type=int, default=DEFAULT_LOCATION_LIMIT, metavar="N",
                        help="malformed locations to list (the count is always exact)")
    parser.set_defaults(handler=_capture_stats)


def _instant(text: str) -> datetime:
    try:
        return clock.parse_instant(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 instant (e.g. 2024-05-01T10:00:00Z)") from None


def _capture_stats(args: argparse.Namespace) -> int:
    try:
        catalog = load_catalog(args.catalog)
    except InputError as error:
        return _fail("CatalogError", str(error), EXIT_CATALOG_ERROR)
    try:
        stats = live_diversity(
            args.source, catalog, k=args.k, start=args.start, end=args.end,
            exclude_inference_prefix=args.exclude_inference_prefix, response_path=args.response_path,
            workers=args.workers, location_limit=args.max_locations,
        )
    except CaptureSourceError as error:
        return _fail("CaptureSourceError", str(error), EXIT_SOURCE_ERROR)
    except ValueError as error:
        return _fail("UsageError", str(error), 2)
    if stats.files_read == 0:
        print(f"capture-stats: warning: no capture files under {args.source} for the window", file=sys.stderr)
    sys.stdout.write(orjson.dumps(stats.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def _fail(name: str, message: str, status: int) -> int:
    print(f"capture-stats: {name}: {message}", file=sys.stderr)
    return status

"""Where capture lives: find the hour folders a time range needs and stream their lines.

A source is an S3 prefix or a local folder laid out as the monitoring container sees it, at one
of these levels: the DestinationS3Uri, an endpoint folder, a variant folder (the "time root",
whose children are year folders), or a year, month, day or hour folder inside a variant. Below a
time root capture objects sit at `yyyy/mm/dd/hh/<file>.jsonl`. Time roots are found by walking at
most two levels of folder names down from the source; a source inside a time root is recognised
by its trailing `yyyy[/mm[/dd[/hh]]]`. A source holding objects in none of these layouts is an
error that says which levels are accepted. With a range, only the hour folders intersecting
[start, end) are listed and read. Files under a time root that are not `yyyy/mm/dd/hh/<name>.jsonl`
are returned as skipped, never dropped unseen. Lines are streamed (1 MiB reads), so memory does
not grow with object size. Every listing or reading failure, S3's included, is a CaptureSourceError
naming the source.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from botocore.exceptions import BotoCoreError, ClientError

from diversity_monitor import storage
from diversity_monitor.capture.record import capture_hour
from diversity_monitor.clock import hours_overlapping
from diversity_monitor.conventions import MAX_CAPTURE_LINE_BYTES, hour_path

_TIME_LEVELS = (re.compile(r"\d{4}"), re.compile(r"\d{2}"), re.compile(r"\d{2}"), re.compile(r"\d{2}"))  # yyyy/mm/dd/hh
_YEAR = _TIME_LEVELS[0]
_ROOT_SEARCH_DEPTH = 2  # source -> endpoint -> variant
ACCEPTED_LEVELS = ("the DestinationS3Uri, an endpoint folder, a variant folder (the one holding yyyy/ folders), "
                   "or a year, month, day or hour folder inside a variant")
_CHUNK = 1 << 20
_HOUR = timedelta(hours=1)


class CaptureSourceError(RuntimeError):
    """A capture source that cannot be listed or read; the message names it."""


@dataclass(frozen=True, order=True)
class CaptureFile:
    uri: str
    hour: datetime


@dataclass
class Listing:
    files: list[CaptureFile] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # objects under a time root outside the layout


class _LocalTree:
    def check(self, base: str) -> None:
        if not os.path.isdir(base):
            raise CaptureSourceError(f"capture source {base} is not a folder")

    def child_dirs(self, base: str) -> list[str]:
        try:
            return sorted(entry.name for entry in os.scandir(base) if entry.is_dir())
        except FileNotFoundError:
            return []
        except OSError as error:
            raise CaptureSourceError(f"cannot list {base}: {error.strerror or error}") from error

    def files(self, base: str) -> list[str]:
        try:
            return list(storage.list_objects(base)) if os.path.isdir(base) else []
        except OSError as error:
            raise CaptureSourceError(f"cannot list {base}: {error.strerror or error}") from error

    def has_objects(self, base: str) -> bool:
        return any(files for _, _, files in os.walk(base))


class _S3Tree:
    def check(self, base: str) -> None:
        location = _parse(base)
        try:
            # A listing of the source's own prefix, not HeadBucket: HeadBucket needs s3:ListBucket with no
            # s3:prefix condition, which the kit's least-privilege policies do not grant (setup/permissions.py).
            storage.s3_client().list_objects_v2(Bucket=location.bucket, Prefix=_folder_key(base), MaxKeys=1)
        except (ClientError, BotoCoreError) as error:
            raise CaptureSourceError(f"capture source {base} cannot be read: {_describe(error)}") from error

    def child_dirs(self, base: str) -> list[str]:
        location, prefix = _parse(base), _folder_key(base)
        names = []
        try:
            paginator = storage.s3_client().get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=location.bucket, Prefix=prefix, Delimiter="/"):
                names += [item["Prefix"][len(prefix):].rstrip("/") for item in page.get("CommonPrefixes", [])]
        except (ClientError, BotoCoreError) as error:
            raise CaptureSourceError(f"cannot list {base}: {_describe(error)}") from error
        return sorted(names)

    def files(self, base: str) -> list[str]:
        try:
            return list(storage.list_objects(base.rstrip("/") + "/"))
        except storage.StorageError as error:  # its message names the prefix
            raise CaptureSourceError(str(error)) from error
        except (ClientError, BotoCoreError) as error:  # storage.list_objects lets BotoCoreError through
            raise CaptureSourceError(f"cannot list {base}: {_describe(error)}") from error

    def has_objects(self, base: str) -> bool:
        location = _parse(base)
        try:
            page = storage.s3_client().list_objects_v2(Bucket=location.bucket, Prefix=_folder_key(base), MaxKeys=1)
        except (ClientError, BotoCoreError) as error:
            raise CaptureSourceError(f"cannot list {base}: {_describe(error)}") from error
        return bool(page.get("KeyCount") or page.get("Contents"))


def _folder_key(base: str) -> str:
    key = _parse(base).key
    return key.rstrip("/") + "/" if key.strip("/") else ""


def _tree(source: str):
    return _S3Tree() if storage.is_s3(source) else _LocalTree()


def list_capture_files(source: str, start: datetime | None = None, end: datetime | None = None) -> Listing:
    """Capture objects under `source` whose hour folder intersects [start, end), in key order."""
    if start is not None and end is not None and not start < end:
        raise ValueError(f"start {start.isoformat()} must be before end {end.isoformat()}")
    tree = _tree(source)
    base = source.rstrip("/")
    tree.check(base)
    listing = Listing()
    roots = _time_roots(tree, base, 0)
    if roots:
        for root in roots:
            if start is not None and end is not None:
                for hour in hours_overlapping(start, end):
                    folder = storage.join(root, hour_path(hour))
                    _classify(tree.files(folder), root, listing, lambda found, hour=hour: found == hour)
            else:
                _classify(tree.files(root), root, listing, lambda found: _intersects(found, start, end))
    elif (root := _enclosing_time_root(base)) is not None:  # a year, month, day or hour folder
        _classify(tree.files(base), root, listing, lambda found: _intersects(found, start, end))
    elif tree.has_objects(base):
        raise CaptureSourceError(
            f"no capture layout under {source}: objects are there, but no <variant>/yyyy/mm/dd/hh/ folders within "
            f"{_ROOT_SEARCH_DEPTH} levels below it. SOURCE must be {ACCEPTED_LEVELS}."
        )
    listing.files.sort()
    return listing


def _enclosing_time_root(base: str) -> str | None:
    """The variant folder above `base` when `base` ends in yyyy, yyyy/mm, yyyy/mm/dd or yyyy/mm/dd/hh."""
    parts = base.split("/")
    for depth in range(len(_TIME_LEVELS), 0, -1):
        tail = parts[-depth:]
        if len(parts) > depth and all(level.fullmatch(name) for level, name in zip(_TIME_LEVELS, tail)):
            return "/".join(parts[:-depth])
    return None


def _time_roots(tree, base: str, depth: int) -> list[str]:
    children = tree.child_dirs(base)
    if any(_YEAR.fullmatch(name) for name in children):
        return [base]
    if depth == _ROOT_SEARCH_DEPTH:
        return []
    return [root for name in children for root in _time_roots(tree, storage.join(base, name), depth + 1)]


def _classify(uris: list[str], root: str, listing: Listing, wanted) -> None:
    for uri in uris:
        relative = uri[len(root):].lstrip("/")
        hour = capture_hour(relative) if relative.count("/") == 4 else None
        if hour is None:
            listing.skipped.append(uri)
        elif wanted(hour):
            listing.files.append(CaptureFile(uri, hour))


def _intersects(hour: datetime, start: datetime | None, end: datetime | None) -> bool:
    return (end is None or hour < end) and (start is None or hour + _HOUR > start)


@contextmanager
def open_lines(uri: str) -> Iterator[Iterator[bytes]]:
    """The lines of one capture object, streamed (a final line without newline is still a line).
    A local file is iterated directly, in C: no Python frame per line on the hot path."""
    if storage.is_s3(uri):
        lines = _s3_lines(uri)
        try:
            yield lines
        finally:
            lines.close()
        return
    try:
        handle = open(uri, "rb", buffering=_CHUNK)
    except OSError as error:
        raise CaptureSourceError(f"cannot read {uri}: {error.strerror or error}") from error
    with handle:
        info = os.fstat(handle.fileno())
        # A regular file no bigger than the cap cannot hold a longer line: iterated directly, in C.
        small = stat.S_ISREG(info.st_mode) and info.st_size <= MAX_CAPTURE_LINE_BYTES
        yield handle if small else _capped_local_lines(handle, uri)


def _too_long(uri: str, number: int) -> CaptureSourceError:
    return CaptureSourceError(f"{uri} line {number} is longer than {MAX_CAPTURE_LINE_BYTES:,} bytes, the most one "
                              "capture record can hold (a request and a response): not a data-capture file")


def _capped_local_lines(handle, uri: str) -> Iterator[bytes]:
    """The file's lines, none read past MAX_CAPTURE_LINE_BYTES (readline's limit, in C)."""
    number = 0
    while True:
        line = handle.readline(MAX_CAPTURE_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_CAPTURE_LINE_BYTES:
            raise _too_long(uri, number)
        yield line


def _s3_lines(uri: str) -> Iterator[bytes]:
    location = _parse(uri)
    number = 0
    try:
        body = storage.s3_client().get_object(Bucket=location.bucket, Key=location.key)["Body"]
        pending = b""
        for chunk in body.iter_chunks(_CHUNK):
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            number += len(lines)
            yield from lines
            if len(pending) > MAX_CAPTURE_LINE_BYTES:
                raise _too_long(uri, number + 1)
    except (ClientError, BotoCoreError) as error:
        raise CaptureSourceError(f"cannot read {uri}: {_describe(error)}") from error
    if pending:
        yield pending


def _parse(uri: str) -> storage.S3Location:
    try:
        return storage.S3Location.parse(uri)
    except storage.StorageError as error:
        raise CaptureSourceError(str(error)) from error


def _describe(error: Exception) -> str:
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        return f"{info.get('Code', 'error')}: {info.get('Message', '')}".rstrip(": ")
    return str(error)

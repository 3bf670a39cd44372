"""Where capture lives: find the hour folders a time range needs and stream their lines.

A source is an S3 prefix (the DestinationS3Uri, or deeper down to endpoint or variant) or a
local folder laid out as the monitoring container sees it. Below it, capture objects sit at
`[<Endpoint>/][<Variant>/]yyyy/mm/dd/hh/<file>.jsonl`. The "time roots" (variant folders, the
ones whose children are year folders) are found by walking at most two levels of folder names;
with a range, only the hour folders intersecting [start, end) are listed and read. Files under
a time root that are not `yyyy/mm/dd/hh/<name>.jsonl` are returned as skipped, never dropped
unseen. Lines are streamed (1 MiB reads), so memory does not grow with object size.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterator

from botocore.exceptions import BotoCoreError, ClientError

from diversity_monitor import storage
from diversity_monitor.capture import capture_hour, hour_path, hours_between

_YEAR = re.compile(r"\d{4}")
_ROOT_SEARCH_DEPTH = 2  # source -> endpoint -> variant
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
        return list(storage.list_objects(base)) if os.path.isdir(base) else []


class _S3Tree:
    def check(self, base: str) -> None:
        location = _parse(base)
        try:
            storage.s3_client().head_bucket(Bucket=location.bucket)
        except (ClientError, BotoCoreError) as error:
            raise CaptureSourceError(f"capture source {base} cannot be read: {_describe(error)}") from error

    def child_dirs(self, base: str) -> list[str]:
        location = _parse(base)
        prefix = location.key.rstrip("/") + "/" if location.key.strip("/") else ""
        paginator = storage.s3_client().get_paginator("list_objects_v2")
        names = []
        try:
            for page in paginator.paginate(Bucket=location.bucket, Prefix=prefix, Delimiter="/"):
                names += [item["Prefix"][len(prefix):].rstrip("/") for item in page.get("CommonPrefixes", [])]
        except (ClientError, BotoCoreError) as error:
            raise CaptureSourceError(f"cannot list {base}: {_describe(error)}") from error
        return sorted(names)

    def files(self, base: str) -> list[str]:
        try:
            return list(storage.list_objects(base.rstrip("/") + "/"))
        except storage.StorageError as error:
            raise CaptureSourceError(str(error)) from error


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
    for root in _time_roots(tree, base, 0):
        if start is not None and end is not None:
            for hour in hours_between(start, end):
                folder = storage.join(root, hour_path(hour))
                _classify(tree.files(folder), root, listing, lambda found: found == hour)
        else:
            _classify(tree.files(root), root, listing, lambda found: _intersects(found, start, end))
    listing.files.sort()
    return listing


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


def iter_lines(uri: str) -> Iterator[bytes]:
    """The lines of one capture object, streamed; a final line without newline is still a line."""
    if storage.is_s3(uri):
        yield from _s3_lines(uri)
        return
    try:
        handle = open(uri, "rb", buffering=_CHUNK)
    except OSError as error:
        raise CaptureSourceError(f"cannot read {uri}: {error.strerror or error}") from error
    with handle:
        yield from handle


def _s3_lines(uri: str) -> Iterator[bytes]:
    location = _parse(uri)
    try:
        body = storage.s3_client().get_object(Bucket=location.bucket, Key=location.key)["Body"]
        pending = b""
        for chunk in body.iter_chunks(_CHUNK):
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            yield from lines
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

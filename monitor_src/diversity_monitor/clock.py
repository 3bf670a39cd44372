"""The kit's notion of "now".

Real time by default. The local stack's simulated clock reaches processes it starts (the
monitoring container, model servers) through `DIVERSITY_MONITOR_NOW`: an ISO-8601 instant the
process's clock starts at, after which it runs forward at real speed. This keeps metric
timestamps, capture timestamps and schedule windows on the same clock in a simulated demo.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

NOW_ENV = "DIVERSITY_MONITOR_NOW"

_started_monotonic = time.monotonic()


def parse_instant(text: str) -> datetime:
    """Parse an ISO-8601 instant ('Z' allowed); naive values are taken as UTC."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def start_at(instant: str | datetime | None) -> datetime:
    """Make this process's "now" `instant`, running forward from there (a notebook's `as_of`: read a
    runbook as of the local stack's simulated moment); None leaves the clock as it is."""
    global _started_monotonic
    if instant is not None:
        moment = parse_instant(instant) if isinstance(instant, str) else as_utc(instant)
        os.environ[NOW_ENV] = moment.isoformat()
        _started_monotonic = time.monotonic()
    return utcnow()


def utcnow() -> datetime:
    start = os.environ.get(NOW_ENV)
    if not start:
        return datetime.now(timezone.utc)
    elapsed = time.monotonic() - _started_monotonic
    return datetime.fromtimestamp(parse_instant(start).timestamp() + elapsed, tz=timezone.utc)


def iso_z(moment: datetime) -> str:
    """`2019-11-26T03:00:00Z`: the timestamp form CloudWatch metric files use."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_utc(moment: datetime) -> datetime:
    """`moment` in UTC; naive values are taken as UTC (as `parse_instant` does).

    botocore parses service timestamps into the machine's local zone (tzlocal), so an hour folder
    or a cron time taken from one on a laptop outside UTC is off by its offset: convert first.
    """
    return moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def hour_of(moment: datetime) -> datetime:
    """The start of the UTC hour holding `moment`."""
    return as_utc(moment).replace(minute=0, second=0, microsecond=0)


def hours_overlapping(start: datetime, end: datetime) -> Iterator[datetime]:
    """Every hour that intersects the half-open range [start, end): the capture folders a window reads."""
    hour, end = hour_of(start), as_utc(end)
    while hour < end:
        yield hour
        hour += timedelta(hours=1)


def hour_marks(start: datetime, end: datetime) -> list[datetime]:
    """Hour marks from the hour of `start` up to and including `end`: the scheduled runs in a range.

    Inclusive, unlike `hours_overlapping`: a run scheduled exactly at `end` belongs to the range.
    """
    hour, end = hour_of(start), as_utc(end)
    marks = []
    while hour <= end:
        marks.append(hour)
        hour += timedelta(hours=1)
    return marks

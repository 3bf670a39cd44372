"""Beside the replay: what real users got this hour, from the window's data capture (`dataset_source`).

The replay answers "what would the model do for 500 known users"; the capture answers "what did
real users get". The platform stages the hour's capture under `dataset_source` as
`<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl` (sometimes more than the window: records outside
[start_time, end_time) are left out). The monitor's own replay traffic, this run's and earlier
runs', is left out by its InferenceId prefix. Every encoding the capture reader accepts is read;
malformed lines are counted with file and line, never dropped unseen.

The pass runs in a thread beside the replay (`start_live_pass`): the replay waits on the network,
the capture pass on CPU, in worker processes when the hour has several files.

Live figures are judged and published only from `conventions.MIN_LIVE_LISTS` lists up; below
that, and when the window holds no capture at all (a normal hour for the replay), the report
says so and nothing is published but the count.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from diversity_monitor.capture.reader import CaptureStats, live_diversity
from diversity_monitor.capture.source import CaptureSourceError
from diversity_monitor.conventions import MIN_LIVE_LISTS, REPLAY_INFERENCE_PREFIX

WORKERS = max(1, min(os.cpu_count() or 1, 4))
# Below this much capture one process reads it in about a fifth of a second (bench_capture: about
# 190,000 records of 1.6 KB a second per core); starting worker processes would cost more than they save.
PARALLEL_FROM_BYTES = 64 << 20


@dataclass(frozen=True)
class LiveMeasurement:
    stats: CaptureStats | None  # None: no capture was read (the note says why)
    note: str | None

    @property
    def lists(self) -> int:
        return self.stats.live_lists if self.stats is not None else 0

    @property
    def reliable(self) -> bool:
        """Enough live lists to judge and publish (see the module doc)."""
        return self.lists >= MIN_LIVE_LISTS


def measure_live(dataset_source: Path | str | None, catalog: Mapping[str, str], k: int, start: datetime | None,
                 end: datetime | None, response_path: str) -> LiveMeasurement:
    if dataset_source is None:
        return LiveMeasurement(None, "no dataset_source (not run by Model Monitor) and no --capture-s3-uri: "
                                     "live traffic not read")
    if str(dataset_source).startswith("s3://"):  # a plain Processing job reads the window from S3 itself
        size = 0
    elif not Path(dataset_source).is_dir() or not any(Path(dataset_source).iterdir()):
        return LiveMeasurement(None, "no capture in the window: live traffic not measured this hour")
    else:
        size = sum(entry.stat().st_size for entry in Path(dataset_source).rglob("*.jsonl") if entry.is_file())
    try:
        stats = live_diversity(str(dataset_source), catalog, k=k, start=start, end=end,
                               exclude_inference_prefix=REPLAY_INFERENCE_PREFIX, response_path=response_path,
                               workers=WORKERS if size >= PARALLEL_FROM_BYTES else 1)
    except CaptureSourceError as error:
        return LiveMeasurement(None, f"the window's capture could not be read: {error}")
    if stats.live_lists == 0:
        note = "the window's capture holds no live top lists (only replay traffic, or none in the window)"
    elif stats.live_lists < MIN_LIVE_LISTS:
        note = (f"only {stats.live_lists} live top lists (fewer than {MIN_LIVE_LISTS}): live figures shown, "
                "not judged or published")
    else:
        note = None
    return LiveMeasurement(stats, note)


def start_live_pass(dataset_source: Path | None, catalog: Mapping[str, str], k: int, start: datetime | None,
                    end: datetime | None, response_path: str) -> Future:
    """`measure_live` on a thread of its own; `.result()` when the replay is done."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="live-capture")
    future = pool.submit(measure_live, dataset_source, catalog, k, start, end, response_path)
    pool.shutdown(wait=False)
    return future

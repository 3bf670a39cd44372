"""Step 4 of the run: replay the validation set and measure the ranked lists it got back.

One path for the hourly run, a baseline build and an ad-hoc replay, so all three are measured
identically; each records which endpoint config served it (`serving`). The hourly run also
measures the hour's live traffic (`live.py`), read from the capture while the replay runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from diversity_monitor.aws.session import require_endpoint
from diversity_monitor.clock import utcnow
from diversity_monitor.job.contract import ReplaySettings
from diversity_monitor.job.inputs import load_catalog, load_validation_set
from diversity_monitor.job.live import LiveMeasurement, start_live_pass
from diversity_monitor.job.replay import (
    EndpointReplayer,
    ReplayResult,
    Serving,
    control_plane_client,
    describe_serving,
    observe_serving,
)
from diversity_monitor.measures.metrics import CatalogIndex, CollapseSummary, DiversitySummary, accumulate


@dataclass(frozen=True)
class Measurement:
    """What one replay measured, before any judgement."""

    k: int
    diversity: DiversitySummary
    collapse: CollapseSummary
    sessions_attempted: int
    sessions_succeeded: int
    measured_at: datetime
    replay_errors: Mapping[str, int]
    serving: Serving | None = None
    live: LiveMeasurement | None = None  # the hour's live traffic (hourly runs only)
    # category -> the catalog's spellings of it, merged (`News`, `news `), when there were several
    merged_category_variants: Mapping[str, list[str]] = field(default_factory=dict)

    @property
    def success_rate(self) -> float:
        return self.sessions_succeeded / self.sessions_attempted if self.sessions_attempted else 0.0


@dataclass(frozen=True)
class LiveWindow:
    """Where the hour's capture is staged and which hour it is: the live pass's inputs."""

    dataset_source: Path | str | None  # staged folder (Model Monitor), or s3://... (plain Processing job)
    start: datetime | None
    end: datetime | None


def measure(endpoint_name: str, settings: ReplaySettings, run_id: str, *, progress: bool = True,
            client=None, control_client=None, live: LiveWindow | None = None,
            confirm_endpoint: bool = False) -> tuple[Measurement, ReplayResult]:
    """Replay the validation set and measure it; `serving` says which endpoint config answered.

    With `live`, the window's capture is measured too, on a thread beside the replay. With
    `confirm_endpoint` (the ad-hoc commands), a missing endpoint is one SetupError after the inputs
    are read and before any call is replayed, instead of 500 failed sessions.
    """
    sessions = load_validation_set(settings.validation_set)
    catalog = load_catalog(settings.catalog)
    if confirm_endpoint:
        require_endpoint(endpoint_name)
    live_pass = (start_live_pass(live.dataset_source, catalog, settings.top_k, live.start, live.end,
                                 settings.response_path) if live is not None else None)
    control_client = control_client or control_plane_client()
    with EndpointReplayer(endpoint_name, settings, run_id, client=client) as replayer:
        before = describe_serving(endpoint_name, control_client)
        result = replayer.replay(sessions, progress=progress)
    after = describe_serving(endpoint_name, control_client, with_models=False)
    index = CatalogIndex(catalog)
    accumulator = accumulate(result.ranked_lists(), index, settings.top_k)
    measurement = Measurement(
        k=settings.top_k,
        diversity=accumulator.diversity(),
        collapse=accumulator.collapse(),
        sessions_attempted=result.attempted,
        sessions_succeeded=result.succeeded,
        measured_at=utcnow(),
        replay_errors=result.errors(),
        serving=observe_serving(before, after),
        live=live_pass.result() if live_pass is not None else None,
        merged_category_variants=index.merged_variants,
    )
    return measurement, result

"""What the report notebook runs each hour: inputs -> replay -> measure -> compare -> Model Monitor files.

`preflight` (called by the entrypoint before the report kernel starts) checks every input once;
`run_monitoring` (called by the report notebook) replays, judges and writes statistics.json and
constraint_violations.json into the run's report folder; `evaluate` is the same judgement without
writing, for the runbook's replay.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

from diversity_monitor import storage
from diversity_monitor.conventions import RUNBOOKS_README, STATISTICS_FILE, VIOLATIONS_FILE
from diversity_monitor.job.baseline import dumps, load_baseline
from diversity_monitor.job.compare import check
from diversity_monitor.job.contract import Limits, MonitoringContext, ReplaySettings
from diversity_monitor.job.inputs import load_catalog, load_validation_set
from diversity_monitor.job.measure import LiveWindow, Measurement, measure
from diversity_monitor.job.model_monitor_files import Violation, statistics_document, violations_document
from diversity_monitor.job.replay import ReplayResult, inference_ids


@dataclass(frozen=True)
class RunOutcome:
    measurement: Measurement
    replay: ReplayResult
    statistics: dict
    violations: list[Violation]
    baseline_statistics: dict | None
    constraints: dict | None


def run_id_for(context: MonitoringContext | None = None) -> str:
    """Short and readable: the scheduled hour when there is one, else a random id."""
    if context is not None and context.end_time is not None:
        return context.end_time.strftime("%Y%m%dT%H%M")
    return uuid.uuid4().hex[:10]


def live_start(context: MonitoringContext):
    """Where the live pass starts: `--live-window` before the window's end, or the window's start."""
    if context.live_window is None or context.end_time is None:
        return context.start_time
    start = context.end_time - timedelta(seconds=context.live_window)
    return start if context.start_time is None else max(start, context.start_time)


def preflight(context: MonitoringContext) -> None:
    """Load and check every input once before the report kernel starts: bad input fails fast, by name."""
    sessions = load_validation_set(context.replay.validation_set)
    # Without end_time the run id is random, but of fixed length: the same ids collide or not.
    inference_ids(run_id_for(context), sessions)
    load_catalog(context.replay.catalog)
    load_baseline(context)


@dataclass(frozen=True)
class Evaluation:
    """A replay judged the way the hourly run judges it: the floor, the success rate, the baseline."""

    measurement: Measurement
    replay: ReplayResult
    statistics: dict
    violations: list[Violation]


def evaluate(endpoint_name: str, settings: ReplaySettings, run_id: str, *, min_diversity: float,
             min_success_rate: float, constraints: dict | None, constraints_source: str,
             context: Mapping[str, object], progress: bool = False, live: LiveWindow | None = None,
             limits: Limits = Limits()) -> Evaluation:
    """Replay (and read the hour's live traffic, given `live`), check, and build the statistics
    document; writes nothing (the runbook's replay uses it too)."""
    measurement, result = measure(endpoint_name, settings, run_id, progress=progress, live=live)
    violations = check(measurement, min_diversity=min_diversity, min_success_rate=min_success_rate,
                       constraints=constraints, constraints_source=constraints_source, limits=limits)
    statistics = statistics_document(measurement, reliable=measurement.success_rate >= min_success_rate,
                                     context=context)
    return Evaluation(measurement, result, statistics, violations)


def run_monitoring(context: MonitoringContext, *, progress: bool = False) -> RunOutcome:
    """The hourly job: replay, compare with the baseline and the floor, write the files."""
    baseline_statistics, constraints = load_baseline(context)
    evaluation = evaluate(
        context.endpoint_name, context.replay, run_id_for(context),
        min_diversity=context.min_diversity,
        min_success_rate=context.min_success_rate,
        constraints=constraints,
        constraints_source=f"baseline_constraints {context.baseline_constraints}",
        context={
            "endpoint": context.endpoint_name,
            "monitoring_schedule": context.schedule_name,
            "window_start": context.start_time.isoformat() if context.start_time else None,
            "window_end": context.end_time.isoformat() if context.end_time else None,
            "min_diversity": context.min_diversity,
            "min_success_rate": context.min_success_rate,
            "limits": asdict(context.limits),
            "runbook": RUNBOOKS_README,
        },
        limits=context.limits,
        progress=progress,
        live=LiveWindow(context.dataset_source or context.capture_source, live_start(context), context.end_time),
    )
    folder = context.report_folder
    folder.mkdir(parents=True, exist_ok=True)
    _write_json(folder / STATISTICS_FILE, evaluation.statistics)
    _write_json(folder / VIOLATIONS_FILE, violations_document(evaluation.violations))
    return RunOutcome(evaluation.measurement, evaluation.replay, evaluation.statistics, evaluation.violations,
                      baseline_statistics, constraints)


def _write_json(path: Path, document: dict) -> None:
    storage.write_file_atomically(path, dumps(document), exclusive=True)  # never over another run's file

"""One monitoring run and one baseline build: inputs -> replay -> metrics -> Model Monitor files.

The report notebook calls `run_monitoring`; the `baseline` and `replay` commands call `measure`
and `build_baseline`. All three take the same path through replay and the metric functions, so a
baseline and an hourly run are measured identically, and each records which endpoint config
served it (`serving`).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import orjson
from botocore.exceptions import BotoCoreError

from diversity_monitor import storage
from diversity_monitor.clock import utcnow
from diversity_monitor.contract import RUNBOOK, MonitoringContext, ReplaySettings
from diversity_monitor.inputs import load_catalog, load_validation_set
from diversity_monitor.metrics import accumulate
from diversity_monitor.model_monitor_files import (
    BaselineError,
    Measurement,
    Violation,
    check,
    constraint_bounds,
    constraints_document,
    figures,
    statistics_document,
    violations_document,
)
from diversity_monitor.replay import (
    EndpointReplayer,
    ReplayResult,
    control_plane_client,
    describe_serving,
    inference_ids,
    observe_serving,
)

STATISTICS_FILE = "statistics.json"
CONSTRAINTS_FILE = "constraints.json"
VIOLATIONS_FILE = "constraint_violations.json"
EXECUTED_NOTEBOOK = "report.ipynb"
EXECUTED_HTML = "report.html"
PARAMETERS_FILE = "parameters.json"
# Every file a run writes to its report folder: none may be there before it starts.
RUN_OUTPUT_FILES = (STATISTICS_FILE, VIOLATIONS_FILE, EXECUTED_NOTEBOOK, EXECUTED_HTML, PARAMETERS_FILE)


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


def measure(endpoint_name: str, settings: ReplaySettings, run_id: str, *, progress: bool = True,
            client=None, control_client=None) -> tuple[Measurement, ReplayResult]:
    """Replay the validation set and measure it; `serving` says which endpoint config answered."""
    sessions = load_validation_set(settings.validation_set)
    catalog = load_catalog(settings.catalog)
    control_client = control_client or control_plane_client()
    with EndpointReplayer(endpoint_name, settings, run_id, client=client) as replayer:
        before = describe_serving(endpoint_name, control_client)
        result = replayer.replay(sessions, progress=progress)
    after = describe_serving(endpoint_name, control_client, with_models=False)
    accumulator = accumulate(result.ranked_lists(), catalog, settings.top_k)
    measurement = Measurement(
        k=settings.top_k,
        diversity=accumulator.diversity(),
        collapse=accumulator.collapse(),
        sessions_attempted=result.attempted,
        sessions_succeeded=result.succeeded,
        measured_at=utcnow(),
        replay_errors=result.errors(),
        serving=observe_serving(before, after),
    )
    return measurement, result


def load_json_document(path: Path | str, what: str) -> dict:
    try:
        document = orjson.loads(storage.read_bytes(str(path)))
    except storage.StorageError as error:
        raise BaselineError(f"{what}: {error}") from error
    except BotoCoreError as error:  # storage names ClientErrors only
        raise BaselineError(f"{what}: cannot read {path}: {type(error).__name__}: {error}") from error
    except orjson.JSONDecodeError as error:
        raise BaselineError(f"{what} {path} is not valid JSON ({error})") from error
    if not isinstance(document, dict):
        raise BaselineError(f"{what} {path}: expected a JSON object, got {type(document).__name__}")
    return document


def load_baseline(context: MonitoringContext) -> tuple[dict | None, dict | None]:
    """The baseline documents the platform staged, checked whole (every bound, the same k as the run)."""
    k = context.replay.top_k
    statistics = constraints = None
    if context.baseline_statistics:
        source = f"baseline_statistics {context.baseline_statistics}"
        statistics = load_json_document(context.baseline_statistics, "baseline_statistics")
        figures(statistics, source, k=k)
    if context.baseline_constraints:
        source = f"baseline_constraints {context.baseline_constraints}"
        constraints = load_json_document(context.baseline_constraints, "baseline_constraints")
        constraint_bounds(constraints, k, source)
    return statistics, constraints


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
             context: Mapping[str, object], progress: bool = False) -> Evaluation:
    """Replay, check, and build the statistics document; writes nothing (the runbook's replay uses it too)."""
    measurement, result = measure(endpoint_name, settings, run_id, progress=progress)
    violations = check(measurement, min_diversity=min_diversity, min_success_rate=min_success_rate,
                       constraints=constraints, constraints_source=constraints_source)
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
            "runbook": RUNBOOK,
        },
        progress=progress,
    )
    folder = context.report_folder
    folder.mkdir(parents=True, exist_ok=True)
    _write_json(folder / STATISTICS_FILE, evaluation.statistics)
    _write_json(folder / VIOLATIONS_FILE, violations_document(evaluation.violations))
    return RunOutcome(evaluation.measurement, evaluation.replay, evaluation.statistics, evaluation.violations,
                      baseline_statistics, constraints)


def build_baseline(endpoint_name: str, settings: ReplaySettings, output_uri: str, *, mean_tolerance: float,
                   slot_margin: float, overwrite: bool = False, progress: bool = True,
                   context: Mapping | None = None) -> tuple[dict, dict, ReplayResult]:
    """Replay at training time and write statistics.json + constraints.json under `output_uri`.

    Baselines are versioned records: an existing one is never replaced unless `overwrite`.
    """
    if str(output_uri).lower().startswith("s3:"):  # "s3://" alone would quietly become a local folder "s3:"
        try:
            storage.S3Location.parse(output_uri)
        except storage.StorageError as error:
            raise BaselineError(f"baseline output: {error}") from None
    existing = [name for name in (STATISTICS_FILE, CONSTRAINTS_FILE) if storage.exists(storage.join(output_uri, name))]
    if existing and not overwrite:
        raise BaselineError(f"{output_uri} already exists with {', '.join(existing)}; not overwriting it "
                            "(pass overwrite to replace a baseline on purpose)")
    measurement, result = measure(endpoint_name, settings, f"baseline-{uuid.uuid4().hex[:8]}", progress=progress)
    if measurement.sessions_succeeded < measurement.sessions_attempted:
        raise BaselineError(
            f"baseline replay against {endpoint_name}: only {measurement.sessions_succeeded} of "
            f"{measurement.sessions_attempted} sessions succeeded ({result.errors()}); a baseline needs all of them"
        )
    statistics = statistics_document(measurement, reliable=True, context={"endpoint": endpoint_name, **dict(context or {})})
    constraints = constraints_document(statistics, mean_tolerance=mean_tolerance, slot_margin=slot_margin)
    for name, document in ((STATISTICS_FILE, statistics), (CONSTRAINTS_FILE, constraints)):
        try:
            storage.write_bytes(storage.join(output_uri, name), _dumps(document), overwrite=overwrite)
        except storage.StorageError as error:
            raise BaselineError(f"{error} (pass overwrite to replace a baseline on purpose)") from error
    return statistics, constraints, result


def _dumps(document: dict) -> bytes:
    return json.dumps(document, indent=2, sort_keys=False).encode("utf-8") + b"\n"


def _write_json(path: Path, document: dict) -> None:
    path.write_bytes(_dumps(document))

"""Baselines: building one (the `baseline` command, notebook 02) and loading the one a run was given.

A baseline is `statistics.json` + `constraints.json` from a replay at training time, stored as
a versioned record (`.../baselines/<model-version>/`): an existing one is never replaced unless
asked. The run checks the staged baseline whole before it replays anything.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from pathlib import Path

import orjson
from botocore.exceptions import BotoCoreError

from diversity_monitor import storage
from diversity_monitor.conventions import CONSTRAINTS_FILE, CUSTOM_BLOCK, MAX_JSON_DOCUMENT_BYTES, STATISTICS_FILE
from diversity_monitor.job.contract import Limits, MonitoringContext, ReplaySettings
from diversity_monitor.job.measure import measure
from diversity_monitor.job.model_monitor_files import (
    BaselineError,
    constraint_bounds,
    constraints_document,
    figures,
    statistics_document,
)
from diversity_monitor.job.replay import ReplayResult


def load_json_document(path: Path | str, what: str) -> dict:
    try:
        document = orjson.loads(storage.read_bytes(str(path), MAX_JSON_DOCUMENT_BYTES))
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


def build_baseline(endpoint_name: str, settings: ReplaySettings, output_uri: str, *, mean_tolerance: float,
                   slot_margin: float, overwrite: bool = False, progress: bool = True,
                   context: Mapping | None = None, limits: Limits = Limits()) -> tuple[dict, dict, ReplayResult]:
    """Replay at training time and write statistics.json + constraints.json under `output_uri`.

    Baselines are versioned records: an existing one is never replaced unless `overwrite`. A
    replay the monitor cannot vouch for (a catalog that misses what is served, short lists) is
    refused: its bounds would judge every hour against noise. Every suggested upper bound is
    capped by `limits`.
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
    measurement, result = measure(endpoint_name, settings, f"baseline-{uuid.uuid4().hex[:8]}", progress=progress,
                                  confirm_endpoint=True)
    if measurement.sessions_succeeded < measurement.sessions_attempted:
        raise BaselineError(
            f"baseline replay against {endpoint_name}: only {measurement.sessions_succeeded} of "
            f"{measurement.sessions_attempted} sessions succeeded ({result.errors()}); a baseline needs all of them"
        )
    statistics = statistics_document(measurement, reliable=True, context={"endpoint": endpoint_name, **dict(context or {})})
    blind = statistics[CUSTOM_BLOCK]["blind_reasons"]
    if blind:
        raise BaselineError(f"baseline replay against {endpoint_name}: {'; '.join(blind)}; a baseline needs figures "
                            "the monitor can vouch for")
    constraints = constraints_document(statistics, mean_tolerance=mean_tolerance, slot_margin=slot_margin, limits=limits)
    for name, document in ((STATISTICS_FILE, statistics), (CONSTRAINTS_FILE, constraints)):
        try:
            storage.write_bytes(storage.join(output_uri, name), dumps(document), overwrite=overwrite)
        except storage.StorageError as error:
            raise BaselineError(f"{error} (pass overwrite to replace a baseline on purpose)") from error
    return statistics, constraints, result


def dumps(document: dict) -> bytes:
    return json.dumps(document, indent=2, sort_keys=False).encode("utf-8") + b"\n"

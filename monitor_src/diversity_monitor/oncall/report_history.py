"""The hourly reports a schedule left in S3, read back for a time range, and what they say happened.

Model Monitor's layout: `<S3Uri>/<endpoint>/<schedule>/yyyy/mm/dd/hh/` per scheduled hour, holding
statistics.json, constraint_violations.json and (ours) report.ipynb / report.html. Only the hour
folders inside the range are listed, so a day's view reads 24 prefixes, not the whole bucket.

Each report records which endpoint config served its replay (`serving` in the custom block,
observed by the job around the replay). That is the deployment history the on-call needs:
SageMaker keeps none, and a config's creation time says nothing about whether or when it
served. `served_spans` / `config_changes` read it back; the runbook and notebook 04 both use them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone

import boto3
import orjson
import pandas as pd

from diversity_monitor import storage
from diversity_monitor.clock import as_utc, hour_marks, parse_instant
from diversity_monitor.conventions import (
    CUSTOM_BLOCK,
    EXECUTED_HTML,
    EXECUTED_NOTEBOOK,
    STATISTICS_FILE,
    VIOLATIONS_FILE,
    report_hour_prefix,
)

# A run's outcome as its folder shows it. A failed run leaves no statistics.json (at most a partial
# notebook): it is neither good nor bad evidence about the endpoint.
OK, VIOLATIONS_FOUND, FAILED = "ok", "violations", "failed"


@dataclass(frozen=True)
class HourReport:
    hour: datetime  # the scheduled hour (end of the analysed window), UTC
    prefix: str
    statistics: dict | None
    violations: list[dict]
    files: tuple[str, ...]

    @property
    def figures(self) -> dict:
        return (self.statistics or {}).get(CUSTOM_BLOCK, {})

    @property
    def status(self) -> str:
        if self.statistics is None:
            return FAILED
        return VIOLATIONS_FOUND if self.violations else OK

    @property
    def serving(self) -> dict:
        """What the run recorded about the config that served its replay ({} for older reports)."""
        return self.figures.get("serving") or {}

    @property
    def serving_config(self) -> str | None:
        """The endpoint config that served the whole replay; None when unknown or it changed mid-replay."""
        serving = self.serving
        return None if serving.get("changed_during_replay") else serving.get("endpoint_config")

    @property
    def measured_at(self) -> datetime:
        text = self.figures.get("measured_at")
        return parse_instant(text) if text else self.hour

    def file(self, name: str) -> str | None:
        return next((uri for uri in self.files if uri.rsplit("/", 1)[-1] == name), None)


def load_reports(reports_s3_uri: str, endpoint: str, schedule: str, start: datetime, end: datetime) -> list[HourReport]:
    reports = []
    for hour in hour_marks(start, end):
        prefix = report_hour_prefix(reports_s3_uri, endpoint, schedule, hour)
        files = tuple(storage.list_objects(prefix + "/"))
        if files:
            reports.append(read_hour_report(hour, prefix, files))
    return reports


def read_hour_report(hour: datetime, prefix: str, files: tuple[str, ...]) -> HourReport:
    """One hour folder's report from the files listed in it."""
    names = {uri.rsplit("/", 1)[-1]: uri for uri in files}
    statistics = _json(names[STATISTICS_FILE]) if STATISTICS_FILE in names else None
    violations = _json(names[VIOLATIONS_FILE]).get("violations", []) if VIOLATIONS_FILE in names else []
    return HourReport(hour, prefix, statistics, violations, files)


# An hour folder: Model Monitor's `.../yyyy/mm/dd/HH/<file>`, or the demo's flattened copy `.../yyyy-mm-dd-HH/<file>`.
_HOUR_FOLDER = re.compile(r"^(?P<parent>.*?)/?(?P<y>\d{4})(?P<sep>[/-])(?P<m>\d{2})(?P=sep)(?P<d>\d{2})(?P=sep)(?P<h>\d{2})/[^/]+$")


def reports_under(root: str) -> list[HourReport]:
    """Every hour folder's report under `root`, oldest first, without knowing the range beforehand.

    `root` is a schedule's folder in Model Monitor's layout (`<S3Uri>/<endpoint>/<schedule>/`), a
    reports prefix holding exactly one schedule, or a folder of flattened `yyyy-mm-dd-HH/` copies
    (what `diversity-monitor demo` leaves in `reports/`); S3 or local. Files outside hour folders
    (incident summaries) are not reports. Hour folders under two schedules are refused, naming both.
    """
    base = root.rstrip("/") + "/" if storage.is_s3(root) else root
    folders: dict[tuple[str, datetime], list[str]] = {}
    for uri in storage.list_objects(base):
        relative = uri[len(base):].lstrip("/") if uri.startswith(base) else uri
        match = _HOUR_FOLDER.match(relative)
        if not match:
            continue
        hour = datetime(int(match["y"]), int(match["m"]), int(match["d"]), int(match["h"]), tzinfo=timezone.utc)
        folders.setdefault((match["parent"], hour), []).append(uri)
    parents = sorted({parent for parent, _ in folders})
    if len(parents) > 1:
        raise storage.StorageError(f"{root} holds hour folders under {len(parents)} folders ({', '.join(parents)}): "
                                   "point at one schedule's folder")
    return [read_hour_report(hour, files[0].rsplit("/", 1)[0], tuple(sorted(files)))
            for (_, hour), files in sorted(folders.items(), key=lambda item: item[0][1])]


def _json(uri: str) -> dict:
    try:
        document = orjson.loads(storage.read_bytes(uri))
    except orjson.JSONDecodeError as error:
        raise storage.StorageError(f"{uri} is not valid JSON ({error})") from error
    if not isinstance(document, dict):
        raise storage.StorageError(f"{uri}: expected a JSON object, got {type(document).__name__}")
    return document


def reports_frame(reports: list[HourReport]) -> pd.DataFrame:
    """One row per scheduled run: outcome, figures, the config that served it, violations, the report."""
    columns = ["hour", "outcome", "mean", "min", "p5", "max slot share", "replayed", "served by", "violations", "report"]
    rows = []
    for report in reports:
        figures = report.figures
        reliable = figures.get("diversity_reliable", True)
        rows.append({
            "hour": report.hour,
            "outcome": report.status,
            "mean": round(figures["mean"], 2) if reliable and figures.get("mean") is not None else None,
            "min": figures.get("min") if reliable else None,
            "p5": figures.get("p5") if reliable else None,
            "max slot share": figures.get("max_slot_concentration"),
            "replayed": figures.get("success_rate"),
            "served by": report.serving_config or _unknown_serving(report),
            "violations": "; ".join(v.get("description", "") for v in report.violations) or
                          ("run failed: no statistics" if report.status == FAILED else "none"),
            "report": report.file(EXECUTED_NOTEBOOK) or report.file(EXECUTED_HTML) or "(no report)",
        })
    return pd.DataFrame(rows, columns=columns)


def _unknown_serving(report: HourReport) -> str:
    if report.status == FAILED:
        return ""
    if report.serving.get("changed_during_replay"):
        return "changed during the replay"
    return f"unknown ({report.serving.get('error') or 'not recorded'})"


# --- which config served which runs --------------------------------------------------------------

@dataclass(frozen=True)
class ServedSpan:
    """Consecutive runs (failed runs skipped) whose replay one endpoint config served."""

    config: str | None  # None: not recorded
    models: dict
    first: HourReport
    last: HourReport
    runs: int


def served_spans(reports: list[HourReport]) -> list[ServedSpan]:
    spans: list[ServedSpan] = []
    for report in sorted((r for r in reports if r.status != FAILED), key=lambda r: r.hour):
        config = report.serving_config
        if spans and spans[-1].config == config:
            last = spans[-1]
            spans[-1] = ServedSpan(config, last.models, last.first, report, last.runs + 1)
        else:
            spans.append(ServedSpan(config, dict(report.serving.get("models") or {}), report, report, 1))
    return spans


@dataclass(frozen=True)
class ConfigChange:
    """The endpoint moved to another config between two runs."""

    before: ServedSpan
    after: ServedSpan
    at: datetime  # exact when the endpoint says so, else the first run on the new config
    exact: bool

    @property
    def evidence(self) -> str:
        if self.exact:
            return "DescribeEndpoint LastModifiedTime (the last UpdateEndpoint)"
        return (f"between the runs at {self.before.last.hour:%H:%M} and {self.after.first.hour:%H:%M} "
                "(each report records the config that served it)")


def config_changes(reports: list[HourReport], endpoint: dict | None = None) -> list[ConfigChange]:
    """Changes of serving config between runs; `endpoint` (DescribeEndpoint) makes the latest one exact."""
    spans = [span for span in served_spans(reports) if span.config is not None]
    changes = []
    for before, after in zip(spans, spans[1:]):
        if before.config == after.config:
            continue  # runs with an unknown config in between
        at, exact = after.first.measured_at, False
        if endpoint and endpoint.get("EndpointConfigName") == after.config:
            modified = as_utc(endpoint["LastModifiedTime"])
            if before.last.measured_at < modified <= after.first.measured_at:
                at, exact = modified, True
        changes.append(ConfigChange(before, after, at, exact))
    return changes


# --- alarm history ------------------------------------------------------------------------------

@dataclass(frozen=True)
class AlarmChange:
    time: datetime  # UTC
    old: str
    new: str
    reason: str


def alarm_history(alarm_name: str, client=None) -> list[AlarmChange]:
    """Every state change, oldest first, from DescribeAlarmHistory (CloudWatch keeps two weeks)."""
    client = client or boto3.client("cloudwatch")
    changes = []
    for page in client.get_paginator("describe_alarm_history").paginate(
            AlarmName=alarm_name, HistoryItemType="StateUpdate", ScanBy="TimestampAscending"):
        for item in page["AlarmHistoryItems"]:
            data = json.loads(item["HistoryData"])
            changes.append(AlarmChange(as_utc(item["Timestamp"]), data["oldState"]["stateValue"],
                                       data["newState"]["stateValue"], data["newState"].get("stateReason", "")))
    return changes


def alarm_states(alarm_name: str, client=None) -> list[tuple[datetime, str]]:
    """(time, new state) for every state change, oldest first."""
    return [(change.time, change.new) for change in alarm_history(alarm_name, client)]


def state_at(changes: list[tuple[datetime, str]], moment: datetime) -> str:
    """The alarm's state at `moment` from its state changes (INSUFFICIENT_DATA before the first)."""
    state = "INSUFFICIENT_DATA"
    for when, new_state in changes:
        if when <= moment:
            state = new_state
    return state


def history_frame(changes: list[AlarmChange]) -> pd.DataFrame:
    return pd.DataFrame([{"time": c.time, "from": c.old, "to": c.new, "reason": c.reason} for c in changes],
                        columns=["time", "from", "to", "reason"])

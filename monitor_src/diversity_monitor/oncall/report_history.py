"""What the hourly reports a schedule left say happened: outcomes, who served, the alarm's history.

Reading the reports back (Model Monitor's layout, only the hour folders of a range) is
`job.past_reports`; this module interprets them for the on-call.

Each report records which endpoint config served its replay (`serving` in the custom block,
observed by the job around the replay). That is the deployment history the on-call needs:
SageMaker keeps none, and a config's creation time says nothing about whether or when it
served. `served_spans` / `config_changes` read it back; the runbook and notebook 04 both use them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import boto3
import pandas as pd

from diversity_monitor import storage
from diversity_monitor.clock import as_utc
from diversity_monitor.conventions import (
    EXECUTED_HTML,
    EXECUTED_NOTEBOOK,
)
from diversity_monitor.job.past_reports import FAILED, HourReport


def reports_frame(reports: list[HourReport]) -> pd.DataFrame:
    """One row per scheduled run: outcome, figures, the config that served it, violations, the report."""
    columns = ["hour", "outcome", "mean", "min", "p5", "max slot share", "replayed", "served by", "violations", "report",
               "open"]
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
            "open": _browser_link(report.file(EXECUTED_HTML) or report.file(EXECUTED_NOTEBOOK)),
        })
    return pd.DataFrame(rows, columns=columns)


def _browser_link(uri: str | None) -> str:
    """The report as a browser opens it (S3 console on AWS, the object itself on the local stack)."""
    return storage.browser_url(uri) if uri else ""


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
    at: datetime  # exact when the endpoint says so, else the latest it can be: the first replay on the new config
    exact: bool
    earliest: datetime | None = None  # inexact: the last replay on the old config (the change came after it)
    rollback: bool = False  # back to a config that served earlier runs

    @property
    def what(self) -> str:
        return "rollback" if self.rollback else "deploy"

    @property
    def evidence(self) -> str:
        if self.exact:
            return "DescribeEndpoint LastModifiedTime (the last UpdateEndpoint)"
        return (f"between the runs at {self.before.last.hour:%H:%M} and {self.after.first.hour:%H:%M} "
                "(each report records the config that served it)")

    @property
    def when(self) -> str:
        """When it went live, as exactly as the evidence allows (UTC)."""
        if self.exact or self.earliest is None:
            return f"at {self.at:%Y-%m-%dT%H:%M:%SZ}"
        return f"between {self.earliest:%Y-%m-%dT%H:%M:%SZ} and {self.at:%Y-%m-%dT%H:%M:%SZ}"


def replayed_at(report: HourReport) -> datetime:
    """When a run's replay measured the endpoint: its `measured_at`, unless that lies outside the run's
    hour (a report of an old hour produced later): then the scheduled hour, so the timeline keeps its span."""
    measured = report.measured_at
    if measured is None or not report.hour <= measured < report.hour + timedelta(hours=1):
        return report.hour
    return measured


def config_changes(reports: list[HourReport], endpoint: dict | None = None) -> list[ConfigChange]:
    """Changes of serving config between runs; `endpoint` (DescribeEndpoint) makes the latest one exact."""
    spans = [span for span in served_spans(reports) if span.config is not None]
    changes = []
    served_before = {spans[0].config} if spans else set()
    for before, after in zip(spans, spans[1:]):
        if before.config == after.config:
            continue  # runs with an unknown config in between
        earliest, at, exact = replayed_at(before.last), replayed_at(after.first), False
        if endpoint and endpoint.get("EndpointConfigName") == after.config:
            modified = as_utc(endpoint["LastModifiedTime"])
            if earliest < modified <= at:
                at, exact = modified, True
        changes.append(ConfigChange(before, after, at, exact, None if exact else earliest, after.config in served_before))
        served_before.add(after.config)
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
            AlarmName=alarm_name, HistoryItemType="StateUpdate", ScanBy="TimestampAscending",
            AlarmTypes=["MetricAlarm", "CompositeAlarm"]):  # without it, only metric alarms [API]
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

"""The alarms on what the hourly run publishes, and the pager topic they notify (notebook 03).

Two alarms per endpoint, named without their thresholds (`alarm_names`), so re-applying the set-up
with another floor or k updates them in place. PutMetricAlarm is an upsert.
- the diversity alarm: the mean categories per top-k below the floor for 2 of 3 one-hour periods.
  It watches `conventions.diversity_metric(spec.top_k)`, the very name the job publishes for that
  k. TreatMissingData=missing: a missing hour is neither healthy nor broken (an outage publishes
  no diversity, see job/metrics_file.py); the monitor-health alarm owns that case;
- the monitor-health alarm: `replay_success_rate < 0.95` for 2 of 2 hours, with
  TreatMissingData=breaching: a monitor that stops running or stops publishing is itself an
  incident, because the diversity alarm would otherwise stay quiet forever. 2 of 2 rather than
  2 of 3: with missing = breaching, a 2-of-3 alarm created next to a new schedule pages at once
  (two of its three periods are still empty); 2 of 2 pages after two silent or failed hours.
  Like any heartbeat alarm it is in ALARM while its window holds no point at all, so
  `apply_alarms` creates it with its actions disabled until the schedule has a completed
  execution (it has published), and says so; running it again after the first run arms it.
  Arming it by hand: `aws cloudwatch enable-alarm-actions --alarm-names <name>`.

Earlier versions of the kit put the floor in the diversity alarm's name (`<endpoint>-diversity-
below-4`). `apply_alarms` deletes such an alarm when it watches this endpoint and schedule, so
a floor change never leaves the old alarm paging on the old floor.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import boto3

from diversity_monitor import storage
from diversity_monitor.conventions import (
    DEFAULT_MIN_SUCCESS_RATE,
    METRIC_PERIOD_SECONDS,
    METRICS_NAMESPACE,
    SUCCESS_RATE_METRIC,
    metric_dimensions,
)
from diversity_monitor.setup.schedule import MonitorSpec, schedule_has_published

LEGACY_DIVERSITY_PREFIX = "-diversity-below-"  # `<endpoint>-diversity-below-<floor>`, before names lost their floor


def alarm_names(endpoint_name: str) -> dict[str, str]:
    """The names `apply_alarms` gives this endpoint's alarms (the one place that decides them)."""
    return {"diversity": f"{endpoint_name}-diversity-below-floor",
            "health": f"{endpoint_name}-diversity-monitor-unhealthy"}


def metric_alarm_request(endpoint: str, schedule: str, topic_arn: str | None, *, name: str, description: str,
                         metric: str, statistic: str, periods: int, datapoints: int, threshold: float, missing: str,
                         armed: bool = True, comparison: str = "LessThanThreshold",
                         period: int = METRIC_PERIOD_SECONDS) -> dict:
    """PutMetricAlarm on one of the run's metrics: its namespace, its dimensions, one period per run
    (no actions when `topic_arn` is None)."""
    actions = {"AlarmActions": [topic_arn], "OKActions": [topic_arn]} if topic_arn else {}
    return {
        "AlarmName": name,
        "AlarmDescription": description,
        "ActionsEnabled": armed,
        **actions,
        "Namespace": METRICS_NAMESPACE,
        "MetricName": metric,
        "Dimensions": metric_dimensions(endpoint, schedule),
        "Statistic": statistic,
        "Period": period,
        "EvaluationPeriods": periods,
        "DatapointsToAlarm": datapoints,
        "Threshold": threshold,
        "ComparisonOperator": comparison,
        "TreatMissingData": missing,
    }


def _alarm_request(spec: MonitorSpec, topic_arn: str, *, description: str, **fields) -> dict:
    return metric_alarm_request(spec.endpoint_name, spec.schedule_name, topic_arn,
                                description=f"{description} {spec.runbook_hint}", **fields)


def diversity_alarm_request(spec: MonitorSpec, topic_arn: str, tuned: Mapping | None = None) -> dict:
    """The diversity alarm; `tuned` (a PutMetricAlarm request from notebook 05 / `alarm-backtest`, for
    this very alarm) sets its threshold, comparison, M of N and missing-data treatment."""
    rule = {"Threshold": spec.min_diversity, "ComparisonOperator": "LessThanThreshold", "EvaluationPeriods": 3,
            "DatapointsToAlarm": 2, "TreatMissingData": "missing"}
    if tuned is not None:
        rule = _tuned_rule(tuned, _alarm_request(spec, topic_arn, description="", **_diversity_fields(spec, rule)))
    relation = "below" if rule["ComparisonOperator"] == "LessThanThreshold" else rule["ComparisonOperator"]
    return _alarm_request(
        spec, topic_arn,
        description=(f"Mean distinct categories per top-{spec.top_k} on {spec.endpoint_name} {relation} "
                     f"{rule['Threshold']:g} for {rule['DatapointsToAlarm']} of {rule['EvaluationPeriods']} hours "
                     f"(schedule {spec.schedule_name})."),
        **_diversity_fields(spec, rule),
    )


def _diversity_fields(spec: MonitorSpec, rule: Mapping) -> dict:
    return {"name": alarm_names(spec.endpoint_name)["diversity"], "metric": spec.diversity_metric,
            "statistic": "Average", "periods": rule["EvaluationPeriods"], "datapoints": rule["DatapointsToAlarm"],
            "threshold": rule["Threshold"], "missing": rule["TreatMissingData"], "comparison": rule["ComparisonOperator"]}


# What a tuned request sets, and what must match for it to be about this schedule's diversity alarm.
TUNED_FIELDS = ("Threshold", "ComparisonOperator", "EvaluationPeriods", "DatapointsToAlarm", "TreatMissingData")
TUNED_IDENTITY = ("AlarmName", "Namespace", "MetricName", "Dimensions", "Statistic", "Period")


def _tuned_rule(tuned: Mapping, base: Mapping) -> dict:
    def same(key: str) -> bool:
        if key == "Dimensions":
            return sorted(map(str, tuned.get(key) or [])) == sorted(map(str, base[key]))
        return tuned.get(key) == base[key]

    problems = [f"{key} is {tuned.get(key)!r}, this schedule's diversity alarm has {base[key]!r}"
                for key in TUNED_IDENTITY if not same(key)]
    problems += [f"{key} is missing" for key in TUNED_FIELDS if tuned.get(key) is None]
    if problems:
        raise ValueError("the tuned alarm request does not fit this schedule's diversity alarm: " + "; ".join(problems))
    return {key: tuned[key] for key in TUNED_FIELDS}


def read_tuned_request(uri: str) -> dict:
    """A PutMetricAlarm request saved by notebook 05 (`alarm_backtest.write_request`)."""
    try:
        request = json.loads(storage.read_text(uri))
    except json.JSONDecodeError as error:
        raise ValueError(f"{uri} is not a JSON PutMetricAlarm request ({error})") from None
    if not isinstance(request, dict):
        raise ValueError(f"{uri}: expected a JSON object (a PutMetricAlarm request), got {type(request).__name__}")
    return request


def health_alarm_request(spec: MonitorSpec, topic_arn: str, min_success_rate: float = DEFAULT_MIN_SUCCESS_RATE, *,
                         armed: bool = True) -> dict:
    return _alarm_request(
        spec, topic_arn, name=alarm_names(spec.endpoint_name)["health"],
        description=(f"The diversity monitor for {spec.endpoint_name} is failing or silent: replay success below "
                     f"{min_success_rate:.0%} or no result for 2 hours in a row."),
        metric=SUCCESS_RATE_METRIC, statistic="Minimum", periods=2, datapoints=2,
        threshold=min_success_rate, missing="breaching", armed=armed,
    )


@dataclass(frozen=True)
class AlarmsApplied:
    names: list[str]  # diversity alarm, then health alarm
    health_armed: bool
    removed: tuple[str, ...] = ()  # superseded alarms deleted (old names that carried a floor)
    tuned: str = ""  # what a tuned request (notebook 05) changed, in words

    @property
    def message(self) -> str:
        lines = [f"alarms (created or updated in place): {', '.join(self.names)}"]
        if self.tuned:
            lines.append(self.tuned)
        if self.removed:
            lines.append(f"removed superseded alarms on this schedule: {', '.join(self.removed)}")
        if self.health_armed:
            lines.append(f"health alarm {self.names[1]} ARMED: the schedule has published, so silence now pages")
        else:
            lines.append(f"health alarm {self.names[1]} NOT ARMED YET (actions disabled): the schedule has no completed "
                         "run, and a heartbeat alarm with no data is in ALARM. Run this again after the first hourly "
                         f"run completes (or: aws cloudwatch enable-alarm-actions --alarm-names {self.names[1]}).")
        return "\n".join(lines)


def superseded_alarms(spec: MonitorSpec, keep: str, client) -> list[str]:
    """Diversity alarms from older set-ups (floor in the name) that watch this endpoint and schedule."""
    dimensions = sorted((d["Name"], d["Value"]) for d in metric_dimensions(spec.endpoint_name, spec.schedule_name))
    found = []
    pages = client.get_paginator("describe_alarms").paginate(
        AlarmNamePrefix=f"{spec.endpoint_name}{LEGACY_DIVERSITY_PREFIX}", AlarmTypes=["MetricAlarm"])
    for page in pages:
        for alarm in page["MetricAlarms"]:
            watched = sorted((d["Name"], d["Value"]) for d in alarm.get("Dimensions", []))
            if alarm["AlarmName"] != keep and alarm.get("Namespace") == METRICS_NAMESPACE and watched == dimensions:
                found.append(alarm["AlarmName"])
    return found


def apply_alarms(spec: MonitorSpec, topic_arn: str, client=None, *, health_armed: bool | None = None,
                 tuned_request_uri: str | None = None) -> AlarmsApplied:
    """Create or update both alarms in place, and delete the ones they supersede.

    The health alarm is armed only once the schedule has published (`health_armed=None` asks the
    service), so creating it next to a new schedule does not page the on-call. `tuned_request_uri`:
    notebook 05's PutMetricAlarm request, whose rule the diversity alarm takes (checked first: it
    must be for this alarm, metric and dimensions).
    """
    tuned = read_tuned_request(tuned_request_uri) if tuned_request_uri else None
    diversity = diversity_alarm_request(spec, topic_arn, tuned)
    client = client or boto3.client("cloudwatch")
    armed = schedule_has_published(spec.schedule_name) if health_armed is None else health_armed
    names = []
    for request in (diversity, health_alarm_request(spec, topic_arn, armed=armed)):
        client.put_metric_alarm(**request)
        names.append(request["AlarmName"])
    removed = superseded_alarms(spec, names[0], client)
    if removed:
        client.delete_alarms(AlarmNames=removed)
    return AlarmsApplied(names, armed, tuple(removed), _tuned_note(spec, diversity, tuned_request_uri))


def _tuned_note(spec: MonitorSpec, request: Mapping, uri: str | None) -> str:
    if not uri:
        return ""
    note = (f"diversity alarm TUNED by {uri}: {request['ComparisonOperator']} {request['Threshold']:g}, "
            f"{request['DatapointsToAlarm']} of {request['EvaluationPeriods']}, TreatMissingData={request['TreatMissingData']}")
    if request["Threshold"] != spec.min_diversity:
        note += (f" (the job's --min-diversity stays {spec.min_diversity:g}, so the reports' floor violation and the "
                 f"alarm now differ; set min_diversity to {request['Threshold']:g} to align them)")
    return note


def ensure_topic(name: str, client=None) -> str:
    """CreateTopic is idempotent for the same name and returns the existing ARN."""
    client = client or boto3.client("sns")
    return client.create_topic(Name=name)["TopicArn"]

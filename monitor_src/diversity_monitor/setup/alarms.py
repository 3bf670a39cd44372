"""The alarms on what the hourly run publishes, and the pager topic they notify (notebook 03).

One page per incident: one metric alarm per signal, none with actions of its own, and one
CloudWatch composite alarm over them (`composite_alarm_request`: `ALARM("a") OR ALARM("b") ...`)
that alone notifies the pager topic. A collapse that trips the category floor, the list overlap
and the slot freeze in the same hours is one incident and pages once; the notification's
NewStateReason and StateReasonData (`triggeringAlarms`) name the child alarm that fired, and the
alarm runbook starts from it. All are named without their thresholds (`alarm_names`), so
re-applying the set-up with another floor or k updates them in place (Put* is an upsert).

The signals, each a child alarm:
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
  Arming it by hand: `aws cloudwatch enable-alarm-actions --alarm-names <name>`. With the composite,
  "not armed" means: not in the composite's rule yet (the child has no actions to disable).
- sameness (`list_overlap`, `top_list`, `slot_freeze`): the mean list overlap, the share of
  sessions served the same list, the most frozen supported slot above the spec's `Limits`, 2 of 3
  hours, missing = missing, like the diversity alarm: a popularity-only ranking keeps the category
  count healthy and only these see it;
- blindness (`catalog`, `short_lists`): the share of served articles missing from the catalog, or
  of short lists, above the job's stated limits for 2 of 2 hours. They are monitor-health alarms:
  the run withholds its diversity figures then (so no diversity alarm fires on a stale catalog),
  and these page instead.

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
    MAX_SHORT_LIST_SHARE,
    MAX_UNKNOWN_ARTICLE_SHARE,
    METRIC_PERIOD_SECONDS,
    METRICS_NAMESPACE,
    SHORT_LIST_SHARE_METRIC,
    SUCCESS_RATE_METRIC,
    UNKNOWN_ARTICLE_SHARE_METRIC,
    list_overlap_feature,
    metric_dimensions,
    slot_feature,
    top_list_share_feature,
)
from diversity_monitor.setup.schedule import MonitorSpec, schedule_has_published

LEGACY_DIVERSITY_PREFIX = "-diversity-below-"  # `<endpoint>-diversity-below-<floor>`, before names lost their floor


def alarm_names(endpoint_name: str) -> dict[str, str]:
    """The names `apply_alarms` gives this endpoint's alarms (the one place that decides them): the
    child alarms, signal by signal, then `page`, the composite alarm that notifies the pager."""
    return {"diversity": f"{endpoint_name}-diversity-below-floor",
            "health": f"{endpoint_name}-diversity-monitor-unhealthy",
            "list_overlap": f"{endpoint_name}-lists-overlap-above-limit",
            "top_list": f"{endpoint_name}-same-list-above-limit",
            "slot_freeze": f"{endpoint_name}-slot-frozen-above-limit",
            "catalog": f"{endpoint_name}-catalog-misses-served-articles",
            "short_lists": f"{endpoint_name}-short-lists-above-limit",
            "page": f"{endpoint_name}-diversity-page"}


# Which children say the recommendations collapsed, and which say the monitor cannot see (the
# runbooks: diversity_alarm.ipynb for the first, monitor_job_failed.ipynb for the second).
DIVERSITY_SIGNALS = ("diversity", "list_overlap", "top_list", "slot_freeze")
HEALTH_SIGNALS = ("health", "catalog", "short_lists")


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


def _alarm_request(spec: MonitorSpec, topic_arn: str | None, *, description: str, **fields) -> dict:
    return metric_alarm_request(spec.endpoint_name, spec.schedule_name, topic_arn,
                                description=f"{description} {spec.runbook_hint}", **fields)


def _above_limit_request(spec: MonitorSpec, signal: str, metric: str, threshold: float, what: str, *,
                         periods: int, datapoints: int) -> dict:
    """A child alarm on a share that must stay at or under `threshold` (no actions: the composite pages)."""
    return _alarm_request(
        spec, None, name=alarm_names(spec.endpoint_name)[signal],
        description=(f"{what} on {spec.endpoint_name} above {threshold:g} for {datapoints} of {periods} hours "
                     f"(schedule {spec.schedule_name}). Pages through {alarm_names(spec.endpoint_name)['page']}."),
        metric=metric, statistic="Maximum", periods=periods, datapoints=datapoints, threshold=threshold,
        missing="missing", comparison="GreaterThanThreshold",
    )


def sameness_alarm_requests(spec: MonitorSpec) -> list[dict]:
    """The list-overlap, same-list and slot-freeze child alarms, on the spec's absolute limits."""
    k, limits = spec.top_k, spec.limits
    return [
        _above_limit_request(spec, "list_overlap", list_overlap_feature(k), limits.max_list_overlap,
                             f"Mean overlap of two sessions' top-{k} lists", periods=3, datapoints=2),
        _above_limit_request(spec, "top_list", top_list_share_feature(k), limits.max_top_list_share,
                             f"Share of sessions served the single most common top-{k} list", periods=3, datapoints=2),
        _above_limit_request(spec, "slot_freeze", slot_feature(k), limits.max_slot_share,
                             "Share of lists showing the most frozen slot's article", periods=3, datapoints=2),
    ]


def blindness_alarm_requests(spec: MonitorSpec) -> list[dict]:
    """The monitor-health children for a monitor that cannot see: a stale catalog, short lists."""
    return [
        _above_limit_request(spec, "catalog", UNKNOWN_ARTICLE_SHARE_METRIC, MAX_UNKNOWN_ARTICLE_SHARE,
                             "Share of served articles missing from the monitor's catalog (diversity withheld)",
                             periods=2, datapoints=2),
        _above_limit_request(spec, "short_lists", SHORT_LIST_SHARE_METRIC, MAX_SHORT_LIST_SHARE,
                             "Share of replayed lists shorter than k (diversity withheld)", periods=2, datapoints=2),
    ]


def alarm_rule(children: list[str]) -> str:
    """The composite's AlarmRule: ALARM of any child (names quoted, as the API documents)."""
    return " OR ".join(f'ALARM("{name}")' for name in children)


def composite_alarm_request(spec: MonitorSpec, topic_arn: str, *, health_armed: bool = True) -> dict:
    """PutCompositeAlarm: the one alarm that notifies the pager, over every child alarm. The
    heartbeat child (`health`, missing = breaching) joins the rule only once armed (see above)."""
    names = alarm_names(spec.endpoint_name)
    signals = DIVERSITY_SIGNALS + tuple(s for s in HEALTH_SIGNALS if health_armed or s != "health")
    return {
        "AlarmName": names["page"],
        "AlarmDescription": (f"Recommendation diversity or its monitor on {spec.endpoint_name} needs the on-call "
                             "(one page per incident). The notification's NewStateReason names the child alarm "
                             f"that fired: {', '.join(names[s] for s in DIVERSITY_SIGNALS)} -> diversity_alarm.ipynb; "
                             f"{', '.join(names[s] for s in HEALTH_SIGNALS)} -> monitor_job_failed.ipynb. "
                             f"{spec.runbook_hint}"),
        "ActionsEnabled": True,
        "AlarmActions": [topic_arn],
        "OKActions": [topic_arn],
        "AlarmRule": alarm_rule([names[s] for s in signals]),
    }


def diversity_alarm_request(spec: MonitorSpec, topic_arn: str | None = None, tuned: Mapping | None = None) -> dict:
    """The diversity alarm (a child: no actions unless `topic_arn`); `tuned` (a PutMetricAlarm request from notebook 05 / `alarm-backtest`, for
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


def health_alarm_request(spec: MonitorSpec, topic_arn: str | None = None,
                         min_success_rate: float = DEFAULT_MIN_SUCCESS_RATE, *, armed: bool = True) -> dict:
    return _alarm_request(
        spec, topic_arn, name=alarm_names(spec.endpoint_name)["health"],
        description=(f"The diversity monitor for {spec.endpoint_name} is failing or silent: replay success below "
                     f"{min_success_rate:.0%} or no result for 2 hours in a row."),
        metric=SUCCESS_RATE_METRIC, statistic="Minimum", periods=2, datapoints=2,
        threshold=min_success_rate, missing="breaching", armed=armed,
    )


@dataclass(frozen=True)
class AlarmsApplied:
    names: list[str]  # the child alarms (diversity, health, then the others), then the composite last
    health_armed: bool
    removed: tuple[str, ...] = ()  # superseded alarms deleted (old names that carried a floor)
    tuned: str = ""  # what a tuned request (notebook 05) changed, in words

    @property
    def page(self) -> str:
        """The composite alarm: the only one that notifies the pager."""
        return self.names[-1]

    @property
    def message(self) -> str:
        lines = [f"child alarms (created or updated in place, no actions of their own): {', '.join(self.names[:-1])}",
                 f"composite alarm {self.page}: the only one that notifies the pager, once per incident, naming "
                 "the child alarm that fired"]
        if self.tuned:
            lines.append(self.tuned)
        if self.removed:
            lines.append(f"removed superseded alarms on this schedule: {', '.join(self.removed)}")
        if self.health_armed:
            lines.append(f"health alarm {self.names[1]} ARMED (in {self.page}'s rule): the schedule has published, "
                         "so silence now pages")
        else:
            lines.append(f"health alarm {self.names[1]} NOT ARMED YET (left out of {self.page}'s rule): the schedule "
                         "has no completed run, and a heartbeat alarm with no data is in ALARM. Run this again after "
                         "the first hourly run completes.")
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


def child_alarm_requests(spec: MonitorSpec, tuned: Mapping | None = None) -> list[dict]:
    """Every child alarm's PutMetricAlarm request (no actions), the diversity alarm first."""
    return [diversity_alarm_request(spec, None, tuned), health_alarm_request(spec),
            *sameness_alarm_requests(spec), *blindness_alarm_requests(spec)]


def apply_alarms(spec: MonitorSpec, topic_arn: str, client=None, *, health_armed: bool | None = None,
                 tuned_request_uri: str | None = None) -> AlarmsApplied:
    """Create or update every child alarm and the composite in place, and delete the ones they supersede.

    The children come first (a composite's rule may only name alarms that exist). The health child
    joins the composite's rule only once the schedule has published (`health_armed=None` asks the
    service), so creating it next to a new schedule does not page the on-call. `tuned_request_uri`:
    notebook 05's PutMetricAlarm request, whose rule the diversity alarm takes (checked first: it
    must be for this alarm, metric and dimensions).
    """
    tuned = read_tuned_request(tuned_request_uri) if tuned_request_uri else None
    client = client or boto3.client("cloudwatch")
    armed = schedule_has_published(spec.schedule_name) if health_armed is None else health_armed
    children = child_alarm_requests(spec, tuned)
    diversity = children[0]
    for request in children:
        client.put_metric_alarm(**request)
    composite = composite_alarm_request(spec, topic_arn, health_armed=armed)
    client.put_composite_alarm(**composite)
    names = [request["AlarmName"] for request in children] + [composite["AlarmName"]]
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

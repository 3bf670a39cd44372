"""Before the alarms are armed: are the metrics they watch really published? (notebook 03)

AWS's pages disagree on the namespace and dimension names a custom container's metrics land in;
the kit follows AWS's own sample code (`conventions.METRICS_NAMESPACE`, `Endpoint` +
`MonitoringSchedule`, README "Contract"). If a real account publishes elsewhere, an alarm on the
kit's names waits in INSUFFICIENT_DATA forever and nobody is paged. So once the schedule has a
completed run, `check_published` asks CloudWatch (ListMetrics) for exactly the metric, namespace
and dimensions each alarm names, and when one is missing, what was published instead: the
monitor's metric names in any namespace, and anything in the kit's namespace for this endpoint.
`hold_alarms` then keeps the composite alarm's actions disabled (only it pages; the child alarms
have none), so nobody trusts an alarm that cannot fire.
"""

from __future__ import annotations

from dataclasses import dataclass

import boto3

from diversity_monitor.conventions import ENDPOINT_DIMENSION, METRICS_NAMESPACE
from diversity_monitor.setup.alarms import AlarmsApplied, apply_alarms, child_alarm_requests
from diversity_monitor.setup.schedule import MonitorSpec, schedule_has_published

_SHOWN = 10  # metrics listed per "found instead" line


@dataclass(frozen=True)
class WatchedMetric:
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]

    def __str__(self) -> str:
        return f"{self.namespace} {self.name} {{{', '.join(f'{k}={v}' for k, v in self.dimensions)}}}"


@dataclass(frozen=True)
class PublishedCheck:
    ran: bool  # the schedule has a completed run (else nothing could be published yet)
    watched: tuple[WatchedMetric, ...]
    missing: tuple[WatchedMetric, ...]
    found_instead: tuple[str, ...]  # what ListMetrics holds that looks like the monitor's metrics

    @property
    def armable(self) -> bool:
        """Arm only when a run has published and every watched metric is there."""
        return self.ran and not self.missing

    @property
    def message(self) -> str:
        if not self.ran:
            return ("metrics check: the schedule has no completed run yet, so nothing is published; run this again after "
                    "the first hourly run to check the metrics and arm the alarms")
        if not self.missing:
            return "metrics check: every metric the alarms watch is published: " + "; ".join(map(str, self.watched))
        lines = ["ALARMS NOT ARMED: the schedule has run, but CloudWatch has no metric the alarms watch:",
                 *(f"  missing: {metric}" for metric in self.missing)]
        if self.found_instead:
            lines += ["found instead (point the alarms there, see README 'Contract'):",
                      *(f"  {item}" for item in self.found_instead)]
        else:
            lines.append("nothing like the monitor's metrics was found in any namespace: check the run's "
                         "cloudwatch_metrics.jsonl and publish_cloudwatch_metrics")
        return "\n".join(lines)


def watched_metrics(spec: MonitorSpec) -> tuple[WatchedMetric, ...]:
    """What the child alarms name, from the very requests `alarms.apply_alarms` sends."""
    requests = child_alarm_requests(spec)
    return tuple(dict.fromkeys(WatchedMetric(r["Namespace"], r["MetricName"], tuple((d["Name"], d["Value"]) for d in r["Dimensions"]))
                 for r in requests))


def _describe(metric: dict) -> str:
    dimensions = ", ".join(f"{d['Name']}={d['Value']}" for d in metric.get("Dimensions", []))
    return f"{metric['Namespace']} {metric['MetricName']} {{{dimensions}}}"


def _list(client, **filters) -> list[dict]:
    return [metric for page in client.get_paginator("list_metrics").paginate(**filters) for metric in page["Metrics"]]


def check_published(spec: MonitorSpec, client=None, *, ran: bool | None = None) -> PublishedCheck:
    """ListMetrics for each alarm's metric; on a miss, what is published instead."""
    client = client or boto3.client("cloudwatch")
    ran = schedule_has_published(spec.schedule_name) if ran is None else ran
    watched = watched_metrics(spec)
    if not ran:
        return PublishedCheck(False, watched, (), ())
    missing = tuple(metric for metric in watched if not _list(
        client, Namespace=metric.namespace, MetricName=metric.name,
        Dimensions=[{"Name": name, "Value": value} for name, value in metric.dimensions]))
    found: list[str] = []
    if missing:
        for metric in missing:  # the same metric name anywhere (another namespace, other dimension names)
            found += [_describe(m) for m in _list(client, MetricName=metric.name)[:_SHOWN]]
        # the kit's namespace, this endpoint, any schedule or other metric names
        found += [_describe(m) for m in _list(client, Namespace=METRICS_NAMESPACE, Dimensions=[
            {"Name": ENDPOINT_DIMENSION, "Value": spec.endpoint_name}])[:_SHOWN]]
    return PublishedCheck(True, watched, missing, tuple(dict.fromkeys(found)))


def hold_alarms(alarm_names: list[str], client=None) -> None:
    """Keep the alarms' actions disabled (they stay defined, in whatever state, paging nobody)."""
    (client or boto3.client("cloudwatch")).disable_alarm_actions(AlarmNames=list(alarm_names))


def apply_checked_alarms(spec: MonitorSpec, topic_arn: str, *, tuned_request_uri: str | None = None,
                         client=None) -> tuple[AlarmsApplied, PublishedCheck]:
    """`alarms.apply_alarms`, armed only when `check_published` finds every watched metric after a
    completed run; held (actions disabled) when the run published elsewhere. Before the first run
    the alarms are applied as `apply_alarms` does (the health alarm not armed yet)."""
    client = client or boto3.client("cloudwatch")
    check = check_published(spec, client)
    applied = apply_alarms(spec, topic_arn, client, health_armed=check.armable, tuned_request_uri=tuned_request_uri)
    if check.ran and not check.armable:
        hold_alarms([applied.page], client)
    return applied, check

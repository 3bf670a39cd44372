"""The endpoint's CloudWatch dashboard: one board for the on-call (notebook 03).

`dashboard_body` is pure: from the monitor's spec, the region, the alarms' ARNs and the other
monitors' metrics it lays out, on CloudWatch's 24-column grid:

    y=0   [ text: what this board is, links to the runbooks (16) ][ alarm status (8)        ]
    y=3   [ replay diversity mean/p5/min, floor annotation (12) ][ replay success rate (12) ]
    y=9   [ most concentrated slot share (12)                   ][ distinct articles (12)   ]
    y=15  [ the built-in monitors' metrics on this endpoint, or a note that there are none (24) ]

Which metrics each graph draws is not written here: `PANELS` names groups of
`conventions.published_metrics(k)`, the one owner of the names the job publishes (the job writes the
same names, `job/metrics_file.metric_values`), the live-traffic ones (`live_`) included.

The body is checked against CloudWatch's documented structure (`aws.dashboard_body`) before it is
sent, and PutDashboard against botocore's model. `apply_dashboard` is idempotent: it compares
the body with what GetDashboard returns and sends nothing when they are equal.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import boto3
from botocore.exceptions import ClientError

from diversity_monitor.aws import dashboard_body as body_rules
from diversity_monitor.aws.service_schema import validate_request
from diversity_monitor.conventions import (
    DEFAULT_MIN_SUCCESS_RATE,
    DIVERSITY_ALARM_RUNBOOK,
    ENDPOINT_DIMENSION,
    FAILED_RUN_RUNBOOK,
    METRIC_PERIOD_SECONDS,
    METRICS_NAMESPACE,
    RUNBOOKS_README,
    SCHEDULE_DIMENSION,
    dashboard_name,
    published_metrics,
)
from diversity_monitor.setup.schedule import MonitorSpec

FULL, HALF = body_rules.GRID_COLUMNS, body_rules.GRID_COLUMNS // 2
GRAPH_HEIGHT = 6
HEADER_HEIGHT = 3
FLOOR_COLOR = "#d62728"
# CloudWatch's own palette, so the stand-in's pictures and the console agree on colours.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
MAX_OTHER_METRICS = 50  # the built-in monitors' graph stays readable


@dataclass(frozen=True)
class Panel:
    """One graph: a group of `conventions.published_metrics`, where it goes, how it is drawn."""

    group: str
    title: str  # formatted with k
    x: int
    y: int
    width: int = HALF
    y_range: str = "none"  # "k": 0..k; "share": 0..1; "none": CloudWatch's automatic axis
    floor: str | None = None  # "diversity" / "live": the spec's --min-diversity; "success": the success-rate threshold
    labels: tuple[str, ...] = ()  # one per metric of the group, else the metric name


PANELS = (
    Panel("diversity", "Replay: distinct categories per top-{k} (hourly)", 0, HEADER_HEIGHT, y_range="k",
          floor="diversity", labels=("mean", "p5", "min")),
    Panel("replay_success", "Replay success rate (below it, no diversity is published)", HALF, HEADER_HEIGHT,
          y_range="share", floor="success"),
    Panel("sameness", "Sameness across sessions: slot freeze, list overlap, same-list share", 0,
          HEADER_HEIGHT + GRAPH_HEIGHT, y_range="share", labels=("slot freeze", "list overlap", "same list")),
    Panel("distinct_articles", "Distinct articles across all replayed top-{k} lists", HALF,
          HEADER_HEIGHT + GRAPH_HEIGHT),
    Panel("live_diversity", "Live traffic: distinct categories per top-{k} (from capture; 100+ lists)", 0,
          HEADER_HEIGHT + 2 * GRAPH_HEIGHT, y_range="k", floor="live", labels=("live mean", "live p5")),
    Panel("live_lists", "Live top lists read from each hour's capture", HALF, HEADER_HEIGHT + 2 * GRAPH_HEIGHT),
)
OTHER_MONITORS_Y = HEADER_HEIGHT + 3 * GRAPH_HEIGHT
# Groups of `published_metrics` the board leaves out, and why. Every other group must have a panel
# (tests/unit/test_dashboard.py), so a group added to conventions is drawn or left out on purpose.
NOT_DRAWN = {"replay_sessions": "the success rate says the same, scaled to the validation set",
             "blindness": "unknown-article and short-list shares page through their own monitor-health alarms "
                          "(the alarm status row) and are in each hour's report",
             "live_collapse": "live min, slot share and distinct articles are in each hour's report; the board "
                              "keeps live traffic to its mean and p5 beside the replay"}


@dataclass(frozen=True)
class OtherMetric:
    """A metric of another monitor (the built-in data or model quality ones) on the same endpoint."""

    name: str
    dimensions: tuple[tuple[str, str], ...]  # (Name, Value) in ListMetrics' order


def _metric_row(name: str, dimensions: Iterable[tuple[str, str]], rendering: Mapping) -> list:
    row: list = [METRICS_NAMESPACE, name]
    for dimension_name, value in dimensions:
        row += [dimension_name, value]
    return [*row, dict(rendering)] if rendering else row


def _graph(spec: MonitorSpec, region: str, panel: Panel) -> dict:
    names = published_metrics(spec.top_k)[panel.group]
    dimensions = ((ENDPOINT_DIMENSION, spec.endpoint_name), (SCHEDULE_DIMENSION, spec.schedule_name))
    rows = [_metric_row(name, dimensions, {"label": panel.labels[n] if n < len(panel.labels) else name,
                                           "color": PALETTE[n % len(PALETTE)]})
            for n, name in enumerate(names)]
    properties: dict = {
        "title": panel.title.format(k=spec.top_k),
        "view": "timeSeries",
        "stacked": False,
        "region": region,
        "stat": "Average",
        "period": METRIC_PERIOD_SECONDS,
        "metrics": rows,
        "legend": {"position": "bottom"},
    }
    top = {"k": spec.top_k, "share": 1, "none": None}[panel.y_range]
    if top is not None:
        properties["yAxis"] = {"left": {"min": 0, "max": top}}
    floor = {"diversity": (spec.min_diversity, f"floor {spec.min_diversity:g} (the diversity alarm's threshold)"),
             "live": (spec.min_diversity, f"floor {spec.min_diversity:g} (checked in each report; no alarm)"),
             "success": (DEFAULT_MIN_SUCCESS_RATE, f"{DEFAULT_MIN_SUCCESS_RATE:.0%}: below it the monitor is blind"),
             None: None}[panel.floor]
    if floor is not None:
        properties["annotations"] = {"horizontal": [
            {"value": floor[0], "label": floor[1], "color": FLOOR_COLOR, "fill": "below"}]}
    return {"type": "metric", "x": panel.x, "y": panel.y, "width": panel.width, "height": GRAPH_HEIGHT,
            "properties": properties}


def _header(spec: MonitorSpec) -> dict:
    where = (f"[{RUNBOOKS_README}]({spec.runbook_url})" if spec.runbook_url
             else f"`{RUNBOOKS_README}` in the diversity-monitor repository")
    markdown = "\n".join((
        f"## Recommendation diversity: {spec.endpoint_name}",
        f"Hourly replay of the held-out sessions by schedule `{spec.schedule_name}`: distinct categories per "
        f"top-{spec.top_k} (floor {spec.min_diversity:g}), slot concentration, replay success.",
        f"**Paged?** Runbooks: {where}: `{DIVERSITY_ALARM_RUNBOOK}` (diversity below the floor), "
        f"`{FAILED_RUN_RUNBOOK}` (the monitor failing or silent).",
    ))
    return {"type": "text", "x": 0, "y": 0, "width": FULL - 8, "height": HEADER_HEIGHT,
            "properties": {"markdown": markdown}}


def _alarm_status(alarm_arns: Sequence[str]) -> dict:
    return {"type": "alarm", "x": FULL - 8, "y": 0, "width": 8, "height": HEADER_HEIGHT,
            "properties": {"title": "Alarms", "alarms": list(alarm_arns), "sortBy": "stateUpdatedTimestamp"}}


def _other_monitors(spec: MonitorSpec, region: str, others: Sequence[OtherMetric]) -> dict:
    if not others:
        markdown = "\n".join((
            "### Other monitors on this endpoint",
            f"No other metric in `{METRICS_NAMESPACE}` names `{ENDPOINT_DIMENSION}={spec.endpoint_name}` yet. "
            "When a built-in Model Monitor schedule (data quality, model quality, bias, explainability) runs on "
            "this endpoint, re-run notebook 03 and its metrics appear here.",
        ))
        return {"type": "text", "x": 0, "y": OTHER_MONITORS_Y, "width": FULL, "height": 2,
                "properties": {"markdown": markdown}}
    rows = [_metric_row(metric.name, metric.dimensions, {}) for metric in others[:MAX_OTHER_METRICS]]
    title = f"Other monitors on {spec.endpoint_name} (built-in Model Monitor metrics)"
    if len(others) > MAX_OTHER_METRICS:
        title += f": first {MAX_OTHER_METRICS} of {len(others)}"
    return {"type": "metric", "x": 0, "y": OTHER_MONITORS_Y, "width": FULL, "height": GRAPH_HEIGHT,
            "properties": {"title": title, "view": "timeSeries", "stacked": False, "region": region,
                           "stat": "Average", "period": METRIC_PERIOD_SECONDS, "metrics": rows,
                           "legend": {"position": "right"}}}


def dashboard_body(spec: MonitorSpec, region: str, alarm_arns: Sequence[str] = (),
                   others: Sequence[OtherMetric] = ()) -> dict:
    """The dashboard body (parsed JSON), checked against CloudWatch's structure."""
    widgets = [_header(spec)]
    if alarm_arns:
        widgets.append(_alarm_status(alarm_arns))
    else:
        widgets[0]["width"] = FULL
    widgets += [_graph(spec, region, panel) for panel in PANELS]
    widgets.append(_other_monitors(spec, region, others))
    return dict(body_rules.check_body({"widgets": widgets}))


def named_metrics(body: Mapping) -> set[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """(namespace, metric, dimensions) of every metric row in a body's metric widgets."""
    found = set()
    for widget in body.get("widgets", []):
        for row in widget.get("properties", {}).get("metrics", []) if widget.get("type") == "metric" else []:
            strings = [item for item in row if isinstance(item, str)]
            pairs = tuple(zip(strings[2::2], strings[3::2], strict=True))
            found.add((strings[0], strings[1], pairs))
    return found


# --- talking to CloudWatch -----------------------------------------------------------------------

def other_monitor_metrics(spec: MonitorSpec, client) -> list[OtherMetric]:
    """Metrics in the namespace on this endpoint that are not this monitor's own (the built-in
    monitors publish there with the same Endpoint and MonitoringSchedule dimensions)."""
    found = []
    pages = client.get_paginator("list_metrics").paginate(
        Namespace=METRICS_NAMESPACE, Dimensions=[{"Name": ENDPOINT_DIMENSION, "Value": spec.endpoint_name}])
    for page in pages:
        for metric in page["Metrics"]:
            dimensions = tuple((d["Name"], d["Value"]) for d in metric.get("Dimensions", []))
            if dict(dimensions).get(SCHEDULE_DIMENSION) != spec.schedule_name:  # a schedule runs one monitor: ours
                found.append(OtherMetric(metric["MetricName"], dimensions))
    return sorted(set(found), key=lambda metric: (metric.dimensions, metric.name))


@dataclass(frozen=True)
class DashboardApplied:
    name: str
    outcome: str  # "created", "updated" or "unchanged"
    region: str
    widgets: int
    others: int
    warnings: tuple[str, ...] = ()  # DashboardValidationMessages PutDashboard answered with

    @property
    def console_url(self) -> str:
        return (f"https://{self.region}.console.aws.amazon.com/cloudwatch/home?region={self.region}"
                f"#dashboards/dashboard/{self.name}")

    @property
    def message(self) -> str:
        others = (f"{self.others} metric(s) of other monitors on the endpoint" if self.others
                  else "no other monitor's metrics on the endpoint yet")
        lines = [f"dashboard {self.name}: {self.outcome} ({self.widgets} widgets; {others})",
                 f"open it: {self.console_url}"]
        lines += [f"CloudWatch warns: {warning}" for warning in self.warnings]
        return "\n".join(lines)


def _current_body(client, name: str) -> dict | None:
    try:
        return json.loads(client.get_dashboard(DashboardName=name)["DashboardBody"])
    except ClientError as error:
        if error.response["Error"]["Code"] in ("ResourceNotFound", "DashboardNotFoundError"):
            return None
        raise


def apply_dashboard(spec: MonitorSpec, alarm_names: Sequence[str], client=None) -> DashboardApplied:
    """Create the dashboard, update it when its body differs, or leave it: idempotent."""
    client = client or boto3.client("cloudwatch")
    region = client.meta.region_name
    found = client.describe_alarms(AlarmNames=list(alarm_names), AlarmTypes=["MetricAlarm", "CompositeAlarm"]) \
        if alarm_names else {}
    # the children and the composite that pages: the status row shows which signal fired
    alarm_arns = [alarm["AlarmArn"] for alarm in found.get("MetricAlarms", []) + found.get("CompositeAlarms", [])]
    others = other_monitor_metrics(spec, client)
    body = dashboard_body(spec, region, sorted(alarm_arns), others)
    name = dashboard_name(spec.endpoint_name)
    current = _current_body(client, name)
    applied = DashboardApplied(name, "unchanged", region, len(body["widgets"]), len(others))
    if current == body:
        return applied
    request = validate_request("cloudwatch", "PutDashboard", {
        "DashboardName": name, "DashboardBody": json.dumps(body, separators=(",", ":"))})
    answer = client.put_dashboard(**request)
    warnings = tuple(f"{w.get('DataPath', '')}: {w.get('Message', '')}" for w in answer.get("DashboardValidationMessages") or [])
    return DashboardApplied(name, "created" if current is None else "updated", region, len(body["widgets"]),
                            len(others), warnings)

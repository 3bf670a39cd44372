"""CloudWatch dashboards in the local stack: moto stores them, this validates, keeps and draws them.

moto 5.x implements PutDashboard, GetDashboard, ListDashboards and DeleteDashboards over its
server, but checks only that the body is JSON, keeps dashboards in memory only (a restart loses
them), stamps them with the wall clock, and has no GetMetricWidgetImage. This module fills that in
from the outside, with plain CloudWatch calls to moto (the layout of `alarms` and `metric_data`):

- PutDashboard: the name (alphanumerics, `-` and `_`, at most 255) and the body (size, JSON, then
  the documented structure, `aws.dashboard_body`, every problem at once) are checked as CloudWatch
  checks them; a refusal is CloudWatch's `InvalidParameterInput` (the `DashboardInvalidInputError`
  shape) with its `dashboardValidationMessages`. Then moto stores it, and so does the store
  (kind "Dashboard", with the stack clock's time), so `install` puts dashboards back after a restart.
- DeleteDashboards: moto deletes (all or nothing, `ResourceNotFound` naming the missing ones), then
  the store forgets. ListDashboards: moto's answer with the stack clock's LastModified.
  GetDashboard: moto's, as it is.
- GetMetricWidgetImage: the `MetricWidget` JSON is checked against the documented metric widget
  structure, its metrics are read from moto with GetMetricData (dimensions in `metric_data`'s
  canonical order) over the widget's start/end (relative times count back from the stack's
  clock; default the last 3 hours, period 300 s, Average, as CloudWatch; at most 100,800 points a
  metric, GetMetricData's limit, so a hostile range cannot make the stack count for hours), and drawn with
  matplotlib at the widget's width and height in pixels: the `timeSeries` view (lines with a
  marker per point, horizontal and vertical annotations with their fills, the left y-axis range,
  the legend where asked) and `singleValue` (each metric's latest value). Only `png` output, as
  CloudWatch. Math expressions and the other views are refused with a message saying so.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import matplotlib.dates as mdates
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from diversity_monitor.aws import dashboard_body as rules
from diversity_monitor.local import errors
from diversity_monitor.local.metric_data import canonical_dimensions

DASHBOARD_KIND = "Dashboard"
DEFAULT_WIDTH, DEFAULT_HEIGHT = 600, 400  # GetMetricWidgetImage's defaults, in pixels
DEFAULT_PERIOD = 300
DEFAULT_START = "-PT3H"
DPI = 100
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
DRAWN_VIEWS = ("timeSeries", "singleValue")
MAX_POINTS = 100_800  # GetMetricData's most data points a call returns: a widget asking for more is refused
_DRAWING = threading.Lock()  # matplotlib's font and text caches are shared by every figure


class InvalidParameterInput(errors.ServiceError):
    """CloudWatch's refusal of a dashboard or widget (wire code `InvalidParameterInput`)."""

    code = "InvalidParameterInput"
    status = 400


class DashboardInvalidInput(InvalidParameterInput):
    """PutDashboard's modelled error, carrying every (DataPath, Message) problem."""

    code = "DashboardInvalidInputError"

    def __init__(self, message: str, problems: Sequence[tuple[str, str]]) -> None:
        super().__init__(message)
        self.problems = list(problems)

    def body(self) -> dict:
        messages = [{"DataPath": path, "Message": message} for path, message in self.problems]
        return {**super().body(), "dashboardValidationMessages": messages}


# --- dashboards ----------------------------------------------------------------------------------

def _checked_body(name: str, text: str) -> dict:
    if not rules.DASHBOARD_NAME.fullmatch(name):
        raise InvalidParameterInput(f"The value {name!r} for field DashboardName is invalid: it can contain only "
                                    "alphanumerics, dash (-) and underscore (_), at most 255 characters")
    try:
        body = rules.parse_json_object(text, "DashboardBody")
        return dict(rules.check_body(body))
    except rules.DashboardBodyInvalid as invalid:
        raise DashboardInvalidInput(str(invalid), invalid.problems) from None


def put_dashboard(platform, params: dict) -> dict:
    name, text = params["DashboardName"], params["DashboardBody"]
    _checked_body(name, text)
    with errors.refused_by_moto():
        platform.aws_client("cloudwatch").put_dashboard(DashboardName=name, DashboardBody=text)
    platform.store.put(DASHBOARD_KIND, name, {"DashboardName": name, "DashboardBody": text,
                                              "LastModified": platform.timestamp()})
    return {"DashboardValidationMessages": []}


def delete_dashboards(platform, params: dict) -> dict:
    with errors.refused_by_moto():
        platform.aws_client("cloudwatch").delete_dashboards(DashboardNames=params["DashboardNames"])
    for name in params["DashboardNames"]:
        platform.store.delete(DASHBOARD_KIND, name)
    return {}


def list_dashboards(platform, params: dict) -> dict:
    with errors.refused_by_moto():
        answer = platform.aws_client("cloudwatch").list_dashboards(**params)
    answer.pop("ResponseMetadata", None)
    for entry in answer.get("DashboardEntries", []):
        record = platform.store.get(DASHBOARD_KIND, entry["DashboardName"])
        if record is not None:
            entry["LastModified"] = datetime.fromisoformat(record["LastModified"])
    return answer


def restore(platform) -> int:
    """Put the store's dashboards back into a fresh moto (after a restart); returns how many."""
    client = platform.aws_client("cloudwatch")
    present = {entry["DashboardName"] for entry in client.list_dashboards().get("DashboardEntries", [])}
    missing = [record for record in platform.store.list(DASHBOARD_KIND) if record["DashboardName"] not in present]
    for record in missing:
        client.put_dashboard(DashboardName=record["DashboardName"], DashboardBody=record["DashboardBody"])
    return len(missing)


# --- metric widget images ------------------------------------------------------------------------

@dataclass
class Series:
    label: str
    color: str
    times: list[datetime] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


def metric_rows(metrics: Sequence) -> list[tuple[list[str], dict]]:
    """(strings, rendering) of each row, "." replaced by the previous row's item at that place."""
    rows, previous = [], []
    for number, row in enumerate(metrics):
        strings, rendering = (row[:-1], row[-1]) if isinstance(row[-1], dict) else (row, {})
        if not strings or "expression" in rendering:
            raise InvalidParameterInput(f"metrics/{number}: math expressions are not drawn by the local stack")
        if strings[0] == "...":
            raise InvalidParameterInput(f"metrics/{number}: the \"...\" shorthand is not drawn by the local stack")
        strings = [previous[i] if item == "." and i < len(previous) else item for i, item in enumerate(strings)]
        rows.append((strings, rendering))
        previous = strings
    return rows


def widget_series(platform, widget: Mapping, start: datetime, end: datetime) -> list[Series]:
    """Each metric row's points between start and end, read from moto."""
    period, stat = widget.get("period", DEFAULT_PERIOD), widget.get("stat", "Average")
    queries, series = [], []
    for number, (strings, rendering) in enumerate(metric_rows(widget["metrics"])):
        points = (end - start).total_seconds() / rendering.get("period", period)
        if points > MAX_POINTS:
            raise InvalidParameterInput(f"metrics/{number}: {points:.0f} data points from start to end at this period; "
                                        f"at most {MAX_POINTS}: use a longer period or a shorter time range")
        dimensions = [{"Name": n, "Value": v} for n, v in zip(strings[2::2], strings[3::2], strict=True)]
        queries.append({"Id": f"m{number}", "ReturnData": True, "MetricStat": {
            "Metric": {"Namespace": strings[0], "MetricName": strings[1], "Dimensions": canonical_dimensions(dimensions)},
            "Period": rendering.get("period", period), "Stat": rendering.get("stat", stat)}})
        series.append(Series(rendering.get("label", strings[1]), rendering.get("color", PALETTE[number % len(PALETTE)])))
    if not queries:
        return series
    client = platform.aws_client("cloudwatch")
    token = None
    while True:
        with errors.refused_by_moto():
            answer = client.get_metric_data(MetricDataQueries=queries, StartTime=start, EndTime=end,
                                             **({"NextToken": token} if token else {}))
        for result in answer["MetricDataResults"]:
            target = series[int(result["Id"][1:])]
            target.times += [moment.astimezone(timezone.utc) for moment in result["Timestamps"]]
            target.values += result["Values"]
        token = answer.get("NextToken")
        if not token:
            break
    for item in series:
        ordered = sorted(zip(item.times, item.values, strict=True))
        item.times, item.values = [t for t, _ in ordered], [v for _, v in ordered]
    return series


def _timezone(widget: Mapping) -> timezone:
    text = widget.get("timezone", "UTC")
    if text in ("UTC", "LOCAL"):
        return timezone.utc
    sign = -1 if text[0] == "-" else 1
    return timezone(sign * timedelta(hours=int(text[1:3]), minutes=int(text[3:5])))


def _draw_time_series(axes, widget: Mapping, series: Sequence[Series], start: datetime, end: datetime) -> None:
    drawn = False
    for item in series:
        if item.times:
            axes.plot(item.times, item.values, color=item.color, label=item.label, linewidth=2, marker="o", markersize=4,
                      zorder=3)  # over the frame: a share of 1 on a 0..1 axis stays visible
            drawn = True
    annotations = widget.get("annotations", {})
    for entry in annotations.get("horizontal", []):
        for line in entry if isinstance(entry, list) else [entry]:
            if line.get("visible", True):
                color = line.get("color", "#7f7f7f")
                axes.axhline(line["value"], color=color, linewidth=1.5, label=line.get("label"))
    for entry in annotations.get("vertical", []):
        for line in entry if isinstance(entry, list) else [entry]:
            if line.get("visible", True):
                moment = rules.parse_time(line["value"], end)
                axes.axvline(moment, color=line.get("color", "#7f7f7f"), linewidth=1.5, label=line.get("label"))
    left = widget.get("yAxis", {}).get("left", {})
    low, high = axes.get_ylim()
    axes.set_ylim(left.get("min", low), left.get("max", high))
    low, high = axes.get_ylim()
    for entry in annotations.get("horizontal", []):
        line = entry if isinstance(entry, dict) else None
        if line and line.get("visible", True) and line.get("fill") in ("above", "below"):
            span = (line["value"], high) if line["fill"] == "above" else (low, line["value"])
            axes.axhspan(*span, color=line.get("color", "#7f7f7f"), alpha=0.08, linewidth=0)
    axes.set_xlim(start, end)
    if left.get("label"):
        axes.set_ylabel(left["label"])
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=_timezone(widget)))
    axes.grid(True, color="#e0e0e0", linewidth=0.8)
    if not drawn:
        axes.text(0.5, 0.5, "No data available.", transform=axes.transAxes, ha="center", va="center", color="#7f7f7f")
    position = widget.get("legend", {}).get("position", "bottom")
    if position != "hidden" and axes.get_legend_handles_labels()[0]:
        if position == "right":
            axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
        else:
            axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=4, fontsize=7, frameon=False)


def _draw_single_value(axes, widget: Mapping, series: Sequence[Series], start: datetime, end: datetime) -> None:
    axes.set_axis_off()
    for number, item in enumerate(series):
        latest = f"{item.values[-1]:.4g}" if item.values else "-"
        x = (number + 0.5) / max(1, len(series))
        axes.text(x, 0.55, latest, ha="center", va="center", fontsize=24, color=item.color, transform=axes.transAxes)
        axes.text(x, 0.25, item.label, ha="center", va="center", fontsize=8, transform=axes.transAxes)


_VIEWS = {"timeSeries": _draw_time_series, "singleValue": _draw_single_value}


def render_png(widget: Mapping, series: Sequence[Series], start: datetime, end: datetime) -> bytes:
    """The widget drawn at exactly `width` x `height` pixels, as PNG bytes."""
    width, height = widget.get("width", DEFAULT_WIDTH), widget.get("height", DEFAULT_HEIGHT)
    with _DRAWING:
        figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        _VIEWS[widget.get("view", "timeSeries")](axes, widget, series, start, end)
        if widget.get("title"):
            axes.set_title(widget["title"], fontsize=9, loc="left")
        axes.tick_params(labelsize=7)
        legend_right = widget.get("legend", {}).get("position") == "right"
        figure.subplots_adjust(left=0.08, right=0.72 if legend_right else 0.97, top=0.88, bottom=0.25)
        out = io.BytesIO()
        figure.savefig(out, format="png", dpi=DPI)
    return out.getvalue()


def get_metric_widget_image(platform, params: dict) -> dict:
    if params.get("OutputFormat") not in (None, "png"):
        raise InvalidParameterInput(f"OutputFormat {params['OutputFormat']!r}: the SDKs take png (the only image format)")
    try:
        widget = rules.parse_json_object(params["MetricWidget"], "MetricWidget")
    except rules.DashboardBodyInvalid as invalid:
        raise InvalidParameterInput(invalid.problems[0][1]) from None
    problems = rules.widget_image_problems(widget)
    if problems:
        raise InvalidParameterInput("The MetricWidget is invalid: " + "; ".join(
            f"{path or '/'}: {message}" for path, message in problems))
    view = widget.get("view", "timeSeries")
    if view not in DRAWN_VIEWS:
        raise InvalidParameterInput(f"view {view!r} is not drawn by the local stack (it draws {', '.join(DRAWN_VIEWS)})")
    now = platform.clock.now()
    start = rules.parse_time(widget.get("start", DEFAULT_START), now)
    end = rules.parse_time(widget["end"], now) if "end" in widget else now
    if start >= end:
        raise InvalidParameterInput(f"The MetricWidget is invalid: start {start.isoformat()} is not before end {end.isoformat()}")
    series = widget_series(platform, widget, start, end)
    return {"MetricWidgetImage": render_png(widget, series, start, end)}


def install(platform) -> None:
    """Put stored dashboards back into moto, then serve what moto lacks."""
    restore(platform)
    platform.register_operations("cloudwatch", {
        "PutDashboard": put_dashboard,
        "DeleteDashboards": delete_dashboards,
        "ListDashboards": list_dashboards,
        "GetMetricWidgetImage": get_metric_widget_image,
    })


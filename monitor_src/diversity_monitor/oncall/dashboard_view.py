"""The endpoint's dashboard as pictures, for the alarm runbook and the demo.

GetDashboard gives the body notebook 03 wrote (`setup/dashboard.py`); each of its metric widgets
becomes one GetMetricWidgetImage request (the widget's properties, an absolute start and end
around the alarm, its size in pixels from its grid size), so the on-call sees the board's graphs
in the notebook, exactly as CloudWatch draws them (or as the local stack draws the same call).
Text and alarm-status widgets have no image API: the runbook shows the alarm itself in its next
section. `board_picture` puts the widget images together on the board's grid, one PNG (the demo
saves it next to timeline.png).
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import boto3
import numpy as np
from botocore.exceptions import ClientError
from matplotlib import image as mpimg

from diversity_monitor.aws.service_schema import validate_request
from diversity_monitor.clock import as_utc, iso_z, utcnow
from diversity_monitor.conventions import dashboard_name

COLUMN_PIXELS = 50  # one grid column: a 12-column widget is 600 px wide
ROW_PIXELS = 50  # one grid row: a 6-row widget is 300 px high
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class WidgetImage:
    title: str
    x: int
    y: int
    png: bytes
    request: dict  # the GetMetricWidgetImage MetricWidget, parsed


@dataclass(frozen=True)
class Board:
    name: str
    start: datetime
    end: datetime
    images: list[WidgetImage]
    missing: str | None = None  # why there is no board to show

    @property
    def markdown(self) -> str:
        if self.missing:
            return f"**No dashboard to show**: {self.missing}"
        return (f"Dashboard `{self.name}`, {iso_z(self.start)} to {iso_z(self.end)} (UTC): "
                f"{len(self.images)} graph(s). The alarm states are in the next section.")


def widget_requests(body: dict, start: datetime, end: datetime) -> list[tuple[dict, dict]]:
    """(widget, MetricWidget) for each metric widget of a dashboard body."""
    requests = []
    for widget in body.get("widgets", []):
        if widget.get("type") != "metric":
            continue
        metric_widget = {key: value for key, value in widget["properties"].items() if key not in ("region",)}
        metric_widget.update(start=iso_z(start), end=iso_z(end),
                             width=widget.get("width", 6) * COLUMN_PIXELS, height=widget.get("height", 6) * ROW_PIXELS)
        requests.append((widget, metric_widget))
    return requests


def window_around(moment: datetime, hours_before: int, now: datetime | None = None) -> tuple[datetime, datetime]:
    """From `hours_before` whole hours before `moment` to an hour after it, not past now (whole minutes:
    graphs have no finer period, and the caption then reads the same however long the kernel took)."""
    now = as_utc(now or utcnow())
    start = as_utc(moment).replace(minute=0, second=0, microsecond=0) - hours_before * HOUR
    return start, min(now, as_utc(moment) + HOUR).replace(second=0, microsecond=0)


def board(endpoint_name: str, start: datetime, end: datetime, client=None) -> Board:
    """The endpoint's dashboard's metric widgets as PNG images, for start..end."""
    client = client or boto3.client("cloudwatch")
    name = dashboard_name(endpoint_name)
    try:
        body = json.loads(client.get_dashboard(DashboardName=name)["DashboardBody"])
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("ResourceNotFound", "DashboardNotFoundError"):
            raise
        return Board(name, start, end, [], f"`{name}` does not exist in this account and region: "
                                            "notebook 03 creates it (run it again).")
    images = []
    for widget, metric_widget in widget_requests(body, start, end):
        request = validate_request("cloudwatch", "GetMetricWidgetImage",
                                   {"MetricWidget": json.dumps(metric_widget), "OutputFormat": "png"})
        png = client.get_metric_widget_image(**request)["MetricWidgetImage"]
        images.append(WidgetImage(metric_widget.get("title", ""), widget.get("x", 0), widget.get("y", 0), png,
                                  metric_widget))
    return Board(name, start, end, images)


def board_around_alarm(endpoint_name: str, alarm: dict | None, hours_before: int, now: datetime | None = None) -> Board:
    """The board for the hours around the alarm's last state change (now, without an alarm)."""
    now = as_utc(now or utcnow())
    moment = as_utc(alarm["StateUpdatedTimestamp"]) if alarm else now
    return board(endpoint_name, *window_around(moment, hours_before, now))


def board_outputs(shown: Board) -> list:
    """What the runbook displays: the caption, then each graph."""
    from IPython.display import Image, Markdown

    return [Markdown(shown.markdown), *(Image(data=image.png, format="png") for image in shown.images)]


def board_picture(images: Sequence[WidgetImage]) -> bytes:
    """The widget images on the board's grid (x, y in columns and rows), as one PNG."""
    if not images:
        raise ValueError("no widget images to put together")
    decoded = [(image, mpimg.imread(io.BytesIO(image.png), format="png")) for image in images]
    top = min(image.y for image in images)
    height = max((image.y - top) * ROW_PIXELS + pixels.shape[0] for image, pixels in decoded)
    width = max(image.x * COLUMN_PIXELS + pixels.shape[1] for image, pixels in decoded)
    canvas = np.ones((height, width, 4), dtype=np.float32)
    for image, pixels in decoded:
        row, column = (image.y - top) * ROW_PIXELS, image.x * COLUMN_PIXELS
        rgba = pixels if pixels.shape[2] == 4 else np.dstack([pixels, np.ones(pixels.shape[:2], dtype=np.float32)])
        canvas[row:row + rgba.shape[0], column:column + rgba.shape[1]] = rgba
    out = io.BytesIO()
    mpimg.imsave(out, canvas, format="png")
    return out.getvalue()

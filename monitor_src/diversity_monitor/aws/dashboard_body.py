"""CloudWatch's dashboard body structure, as the CloudWatch API reference documents it, checked as data.

Sources: "Dashboard Body Structure and Syntax" (CloudWatch API reference: the widgets array, each
widget's type, x, y, width and height on a 24-column grid, and the properties of metric, text
and alarm widgets), "GetMetricWidgetImage: Metric Widget Structure and Syntax" (the same metric
properties plus the image's width and height in pixels), and the CloudWatch quotas page (500
widgets a dashboard, 500 metrics a widget, 2500 metrics a dashboard, 100 alarms an alarm widget).

The rules are data (`DASHBOARD`, `METRIC_WIDGET_IMAGE` and the widget tables below): a small
schema of nested `Rule`s, read by one checker that dispatches on the rule's type
(`_check_<type>`, as botocore's validator dispatches on the shape's), collects every problem
with its JSON path and never stops at the first: a caller fixes everything at once. Problems are
`(DataPath, Message)` pairs in the shape of PutDashboard's `DashboardValidationMessages`, worded
as CloudWatch words them ("Should be integer", "Should have required property 'markdown'").

Strictness: the properties of the widget types the kit writes (metric, text, alarm) are checked
member by member, and an unknown member is a problem (a typo such as `annotation` would silently
draw nothing on AWS). Widget types the kit never writes (log, explorer, custom) are accepted with
any properties. Pure: no I/O, knows nothing of diversity; the set-up code checks what it builds
and the local stack checks what it is sent, with the same rules.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

GRID_COLUMNS = 24
MAX_WIDGETS = 500
MAX_METRICS_PER_WIDGET = 500
MAX_METRICS_PER_DASHBOARD = 2500
MAX_ALARMS_PER_WIDGET = 100
MAX_IMAGE_PIXELS = 2000  # GetMetricWidgetImage: width and height at most 2000 px
MAX_DIMENSIONS = 30
MAX_BODY_CHARACTERS = 1_000_000  # no figure in the API reference; the local stack refuses larger bodies
DASHBOARD_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")

STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
_EXTENDED_STATISTIC = re.compile(r"(p|tm|wm|tc|ts)\d{1,2}(\.\d{1,2})?|(p|tm|wm|tc|ts)100|IQM|PR\(.+\)|TM\(.+\)|TC\(.+\)|TS\(.+\)|WM\(.+\)")
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
_RELATIVE_TIME = re.compile(r"-P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?")


class DashboardBodyInvalid(ValueError):
    """A body CloudWatch would refuse; `problems` holds every (DataPath, Message)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__(invalid_message(problems))


def invalid_message(problems: list[tuple[str, str]]) -> str:
    """CloudWatch's wording: "The dashboard body is invalid, there are N validation errors: [...]"."""
    listed = json.dumps([{"dataPath": path, "message": message} for path, message in problems], indent=1)
    return f"The dashboard body is invalid, there are {len(problems)} validation errors:\n{listed}"


# --- the rules ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    """One JSON value's rule. `type`: object, array, string, integer, number, boolean, any, or a
    custom check's name (`CUSTOM`); `members` (objects) name their rules, `required` the members
    that must be there; `extra=False` refuses members not named; `items` is an array's item rule."""

    type: str
    members: Mapping[str, Rule] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    extra: bool = False
    items: Rule | None = None
    enum: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None
    max_items: int | None = None
    pattern: re.Pattern | None = None


ANY = Rule("any")
TEXT = Rule("string")
FLAG = Rule("boolean")
NUMBER = Rule("number")
COLOR = Rule("string", pattern=_COLOR)
Y_AXIS_SIDE = Rule("string", enum=("left", "right"))
TIME = Rule("time")  # ISO 8601 instant, or a relative time such as -PT3H
PERIOD = Rule("period")
STAT = Rule("stat")

HORIZONTAL_ANNOTATION = Rule("object", {
    "value": NUMBER, "label": TEXT, "color": COLOR, "fill": Rule("string", enum=("above", "below")),
    "visible": FLAG, "yAxis": Y_AXIS_SIDE,
}, required=("value",))
VERTICAL_ANNOTATION = Rule("object", {
    "value": TIME, "label": TEXT, "color": COLOR, "fill": Rule("string", enum=("before", "after")), "visible": FLAG,
}, required=("value",))
AXIS = Rule("object", {"min": NUMBER, "max": NUMBER, "label": TEXT, "showUnits": FLAG})

METRIC_PROPERTIES = {
    "accountId": TEXT,
    "annotations": Rule("object", {
        "horizontal": Rule("array", items=Rule("annotation", items=HORIZONTAL_ANNOTATION)),
        "vertical": Rule("array", items=Rule("annotation", items=VERTICAL_ANNOTATION)),
        "alarms": Rule("array", items=TEXT, max_items=1),
    }),
    "end": TIME,
    "legend": Rule("object", {"position": Rule("string", enum=("right", "bottom", "hidden"))}),
    "liveData": FLAG,
    "metrics": Rule("array", items=Rule("metric"), max_items=MAX_METRICS_PER_WIDGET),
    "period": PERIOD,
    "region": TEXT,
    "setPeriodToTimeRange": FLAG,
    "singleValueFullPrecision": FLAG,
    "sparkline": FLAG,
    "stacked": FLAG,
    "start": TIME,
    "stat": STAT,
    "table": Rule("object", extra=True),
    "timezone": Rule("string", pattern=re.compile(r"[+-]\d{4}|LOCAL|UTC")),
    "title": TEXT,
    "trend": FLAG,
    "view": Rule("string", enum=("timeSeries", "singleValue", "gauge", "bar", "pie", "table")),
    "yAxis": Rule("object", {"left": AXIS, "right": AXIS}),
}
# The last item of a metric row: how that metric is drawn.
RENDERING_PROPERTIES = Rule("object", {
    "accountId": TEXT, "color": COLOR, "expression": TEXT, "id": Rule("string", pattern=re.compile(r"[a-z][A-Za-z0-9_]*")),
    "label": TEXT, "period": PERIOD, "region": TEXT, "stat": STAT, "visible": FLAG, "yAxis": Y_AXIS_SIDE,
})

# Each widget type's properties. `None`: a type the kit does not write, accepted with any properties.
WIDGET_PROPERTIES: dict[str, Rule | None] = {
    "metric": Rule("object", METRIC_PROPERTIES, required=("metrics", "region")),
    "text": Rule("object", {"markdown": TEXT, "background": Rule("string", enum=("solid", "transparent"))},
                 required=("markdown",)),
    "alarm": Rule("object", {
        "alarms": Rule("array", items=TEXT, max_items=MAX_ALARMS_PER_WIDGET),
        "sortBy": Rule("string", enum=("default", "stateUpdatedTimestamp")),
        "states": Rule("array", items=Rule("string", enum=("ALARM", "INSUFFICIENT_DATA", "OK"))),
        "title": TEXT,
    }, required=("alarms",)),
    "log": None,
    "explorer": None,
    "custom": None,
}

WIDGET = Rule("widget", {
    "type": Rule("string", enum=tuple(WIDGET_PROPERTIES)),
    "x": Rule("integer", minimum=0, maximum=GRID_COLUMNS - 1),
    "y": Rule("integer", minimum=0),
    "width": Rule("integer", minimum=1, maximum=GRID_COLUMNS),
    "height": Rule("integer", minimum=1, maximum=1000),
    "properties": Rule("object", extra=True),
}, required=("type", "properties"))

DASHBOARD = Rule("dashboard", {
    "widgets": Rule("array", items=WIDGET, max_items=MAX_WIDGETS),
    "start": TIME,
    "end": TIME,
    "periodOverride": Rule("string", enum=("auto", "inherit")),
    "variables": Rule("array", items=Rule("object", extra=True)),
}, required=("widgets",))

METRIC_WIDGET_IMAGE = Rule("object", {
    **METRIC_PROPERTIES,
    "width": Rule("integer", minimum=1, maximum=MAX_IMAGE_PIXELS),
    "height": Rule("integer", minimum=1, maximum=MAX_IMAGE_PIXELS),
}, required=("metrics",))


# --- the checker -------------------------------------------------------------------------------

Problems = list[tuple[str, str]]


def body_problems(body) -> Problems:
    """Every way `body` (the parsed JSON) breaks the dashboard body structure; [] when it is valid."""
    problems: Problems = []
    _check(body, DASHBOARD, "", problems)
    return problems


def widget_image_problems(widget) -> Problems:
    """Every way a GetMetricWidgetImage `MetricWidget` (parsed) breaks its structure."""
    problems: Problems = []
    _check(widget, METRIC_WIDGET_IMAGE, "", problems)
    return problems


def parse_json_object(text: str, what: str) -> dict:
    """The JSON object in `text`, or DashboardBodyInvalid naming why it is not one."""
    if len(text) > MAX_BODY_CHARACTERS:
        raise DashboardBodyInvalid([("", f"{what} is {len(text)} characters; at most {MAX_BODY_CHARACTERS}")])
    try:
        value = json.loads(text)
    except ValueError as error:
        raise DashboardBodyInvalid([("", f"{what} is not valid JSON: {error}")]) from None
    if not isinstance(value, dict):
        raise DashboardBodyInvalid([("", f"{what} must be a JSON object")])
    return value


def check_body(body: Mapping) -> Mapping:
    """`body` unchanged when CloudWatch would accept it; DashboardBodyInvalid listing every problem otherwise."""
    problems = body_problems(body)
    if problems:
        raise DashboardBodyInvalid(problems)
    return body


def _check(value, rule: Rule, path: str, problems: Problems) -> None:
    _CHECKS[rule.type](value, rule, path, problems)


def _check_any(value, rule, path, problems) -> None:
    pass


def _check_object(value, rule: Rule, path: str, problems: Problems) -> None:
    if not isinstance(value, dict):
        problems.append((path, "Should be object"))
        return
    for name in rule.required:
        if name not in value:
            problems.append((path, f"Should have required property '{name}'"))
    for name, item in value.items():
        member = rule.members.get(name)
        if member is None:
            if not rule.extra:
                problems.append((f"{path}/{name}", "Should NOT have additional properties"))
            continue
        _check(item, member, f"{path}/{name}", problems)


def _check_array(value, rule: Rule, path: str, problems: Problems) -> None:
    if not isinstance(value, list):
        problems.append((path, "Should be array"))
        return
    if rule.max_items is not None and len(value) > rule.max_items:
        problems.append((path, f"Should NOT have more than {rule.max_items} items"))
    for index, item in enumerate(value):
        _check(item, rule.items or ANY, f"{path}/{index}", problems)


def _check_string(value, rule: Rule, path: str, problems: Problems) -> None:
    if not isinstance(value, str):
        problems.append((path, "Should be string"))
    elif rule.enum is not None and value not in rule.enum:
        problems.append((path, f"Should be equal to one of the allowed values: {', '.join(rule.enum)}"))
    elif rule.pattern is not None and not rule.pattern.fullmatch(value):
        problems.append((path, f'Should match pattern "{rule.pattern.pattern}"'))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_number(value, rule: Rule, path: str, problems: Problems) -> None:
    if not _is_number(value):
        problems.append((path, "Should be number"))
        return
    if rule.minimum is not None and value < rule.minimum:
        problems.append((path, f"Should be >= {rule.minimum:g}"))
    if rule.maximum is not None and value > rule.maximum:
        problems.append((path, f"Should be <= {rule.maximum:g}"))


def _check_integer(value, rule: Rule, path: str, problems: Problems) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        problems.append((path, "Should be integer"))
        return
    _check_number(value, rule, path, problems)


def _check_boolean(value, rule, path, problems) -> None:
    if not isinstance(value, bool):
        problems.append((path, "Should be boolean"))


def _check_time(value, rule, path: str, problems: Problems) -> None:
    if not isinstance(value, str) or parse_time(value, datetime(2000, 1, 1, tzinfo=timezone.utc)) is None:
        problems.append((path, "Should be an ISO 8601 time (2027-10-31T06:00:00Z) or a relative time (-PT3H)"))


def _check_period(value, rule, path: str, problems: Problems) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not (value in (1, 5, 10, 30) or (value > 0 and value % 60 == 0)):
        problems.append((path, "Should be 1, 5, 10, 30 or a multiple of 60 seconds"))


def _check_stat(value, rule, path: str, problems: Problems) -> None:
    if not isinstance(value, str) or not (value in STATISTICS or _EXTENDED_STATISTIC.fullmatch(value)):
        problems.append((path, f"Should be one of {', '.join(STATISTICS)} or an extended statistic (p99, tm90...)"))


def _check_annotation(value, rule: Rule, path: str, problems: Problems) -> None:
    """A horizontal or vertical annotation: one line, or a band of two."""
    if isinstance(value, list):
        if len(value) != 2:
            problems.append((path, "Should be an annotation or a band of exactly 2 annotations"))
            return
        for index, item in enumerate(value):
            _check(item, rule.items, f"{path}/{index}", problems)
        return
    _check(value, rule.items, path, problems)


def _check_metric(value, rule, path: str, problems: Problems) -> None:
    """A metric row: [Namespace, MetricName, DimensionName, DimensionValue, ..., {rendering}], where "."
    repeats the previous row's item at that place and "..." its leading items; or [{"expression": ...}]."""
    if not isinstance(value, list) or not value:
        problems.append((path, "Should be a non-empty array"))
        return
    strings, rendering = (value[:-1], value[-1]) if isinstance(value[-1], dict) else (value, None)
    if rendering is not None:
        _check(rendering, RENDERING_PROPERTIES, f"{path}/{len(value) - 1}", problems)
    if not strings:
        if rendering is not None and "expression" not in rendering:
            problems.append((f"{path}/0", "Should have required property 'expression'"))
        return
    for index, item in enumerate(strings):
        if not isinstance(item, str) or not item:
            problems.append((f"{path}/{index}", "Should be a non-empty string"))
    if strings[0] == "...":
        return
    if len(strings) < 2 or len(strings) % 2:
        problems.append((path, "Should be [Namespace, MetricName] followed by DimensionName, DimensionValue pairs"))
    elif (len(strings) - 2) // 2 > MAX_DIMENSIONS:
        problems.append((path, f"Should NOT have more than {MAX_DIMENSIONS} dimensions"))


def _check_widget(value, rule: Rule, path: str, problems: Problems) -> None:
    _check_object(value, rule, path, problems)
    if not isinstance(value, dict):
        return
    x, width = value.get("x", 0), value.get("width", 6)
    if _is_number(x) and _is_number(width) and x + width > GRID_COLUMNS:
        problems.append((f"{path}/width", f"Should fit the {GRID_COLUMNS}-column grid: x + width <= {GRID_COLUMNS}"))
    properties_rule = WIDGET_PROPERTIES.get(value.get("type"))
    if properties_rule is not None and "properties" in value:
        _check(value["properties"], properties_rule, f"{path}/properties", problems)


def _check_dashboard(value, rule: Rule, path: str, problems: Problems) -> None:
    _check_object(value, rule, path, problems)
    widgets = value.get("widgets") if isinstance(value, dict) else None
    if isinstance(widgets, list):
        metrics = sum(len(w["properties"].get("metrics") or []) for w in widgets
                      if isinstance(w, dict) and isinstance(w.get("properties"), dict)
                      and isinstance(w["properties"].get("metrics"), list))
        if metrics > MAX_METRICS_PER_DASHBOARD:
            problems.append(("/widgets", f"Should NOT name more than {MAX_METRICS_PER_DASHBOARD} metrics in all"))


_CHECKS: dict[str, Callable] = {
    name.removeprefix("_check_"): function for name, function in globals().items() if name.startswith("_check_")
}


# --- times, as widgets give them -------------------------------------------------------------

def parse_time(text: str, now: datetime) -> datetime | None:
    """An ISO 8601 instant, or a relative time (`-PT3H`, `-P1D`) counted back from `now`; None if neither."""
    relative = _RELATIVE_TIME.fullmatch(text)
    if relative and any(relative.groups()):
        weeks, days, hours, minutes, seconds = (int(part or 0) for part in relative.groups())
        return now - timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)

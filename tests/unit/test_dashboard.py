"""The dashboard body: built from the one owner of the metric names, laid out on the grid, checked
against CloudWatch's documented structure; the structure rules themselves; the runbook's requests."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone

import pytest

from diversity_monitor import conventions
from diversity_monitor.aws import dashboard_body as rules
from diversity_monitor.job.measure import Measurement
from diversity_monitor.job.metrics_file import metric_values
from diversity_monitor.job.model_monitor_files import statistics_document
from diversity_monitor.measures.metrics import CollapseSummary, SlotCollapse, summarize_histogram
from diversity_monitor.oncall import dashboard_view
from diversity_monitor.setup import dashboard
from diversity_monitor.setup.schedule import MonitorSpec
from helpers.images import decode_png

WHEN = datetime(2027, 10, 31, 9, 0, tzinfo=timezone.utc)
ALARMS = ["arn:aws:cloudwatch:eu-west-1:123456789012:alarm:recs-diversity-below-floor"]


def spec(k: int = 10, floor: float = 4.0) -> MonitorSpec:
    return MonitorSpec(endpoint_name="recs", schedule_name="recs-hourly", image_uri="image", role_arn="role",
                       validation_set="s3://b/v.jsonl", catalog="s3://b/c.csv", reports_s3_uri="s3://b/reports",
                       min_diversity=floor, top_k=k, runbook_url="https://git.example.com/runbooks/README.md")


def published(k: int) -> set[str]:
    """What a run with top-k publishes: metric_values on a real statistics document."""
    histogram = [0] * (k + 1)
    histogram[min(k, 5)], histogram[min(k, 3)] = 80, 20
    summary = summarize_histogram(histogram)
    collapse = CollapseSummary((SlotCollapse(1, summary.lists, "a1", 0.2, 20),), 150, 0.2,
                               list_overlap=0.2, top_list_share=0.01, top_list_lists=1)
    document = statistics_document(Measurement(k, summary, collapse, summary.lists, summary.lists, WHEN, {}),
                                   reliable=True)
    # An hour whose capture held enough live lists to publish (job/live.py): its block as the run writes it.
    document["diversity_monitor"]["live"] = {
        "lists": 150, "reliable": True, "mean": 5.2, "min": 2, "p5": 3, "max": 8, "max_slot_concentration": 0.2,
        "distinct_articles": 120}
    return set(metric_values(document))


def unpublished(body: dict, k: int) -> set[str]:
    return {name for _, name, _ in dashboard.named_metrics(body)} - published(k)


@pytest.mark.parametrize("k", [10, 5])
def test_every_metric_the_dashboard_names_is_one_the_job_publishes(k):
    body = dashboard.dashboard_body(spec(k), "eu-west-1", ALARMS)
    named = dashboard.named_metrics(body)
    assert conventions.diversity_metric(k) in {name for _, name, _ in named}
    assert unpublished(body, k) == set()
    assert {(namespace, dimensions) for namespace, _, dimensions in named} == {
        (conventions.METRICS_NAMESPACE, (("Endpoint", "recs"), ("MonitoringSchedule", "recs-hourly")))}


def test_every_group_of_published_metrics_is_drawn_or_left_out_on_purpose():
    groups = set(conventions.published_metrics(10))
    drawn = [panel.group for panel in dashboard.PANELS]
    assert len(drawn) == len(set(drawn)) and set(drawn) | set(dashboard.NOT_DRAWN) == groups
    assert not set(drawn) & set(dashboard.NOT_DRAWN)


def test_a_renamed_metric_is_caught():
    body = dashboard.dashboard_body(spec(), "eu-west-1", ALARMS)
    renamed = json.loads(json.dumps(body).replace(conventions.diversity_metric(10, "p5"), "top10_diversity_p05"))
    assert unpublished(renamed, 10) == {"top10_diversity_p05", "live_top10_diversity_p05"}  # replay and live graphs


def test_the_body_is_valid_and_laid_out_on_the_grid_without_overlaps():
    body = dashboard.dashboard_body(spec(), "eu-west-1", ALARMS)
    assert rules.body_problems(body) == []
    cells = {}
    for number, widget in enumerate(body["widgets"]):
        assert widget["x"] + widget["width"] <= rules.GRID_COLUMNS
        for x in range(widget["x"], widget["x"] + widget["width"]):
            for y in range(widget["y"], widget["y"] + widget["height"]):
                assert (x, y) not in cells, f"widget {number} overlaps widget {cells[(x, y)]}"
                cells[(x, y)] = number
    assert [w["type"] for w in body["widgets"]] == ["text", "alarm", *["metric"] * 6, "text"]
    assert body["widgets"][1]["properties"]["alarms"] == ALARMS
    assert "https://git.example.com/runbooks/README.md" in body["widgets"][0]["properties"]["markdown"]
    assert conventions.DIVERSITY_ALARM_RUNBOOK in body["widgets"][0]["properties"]["markdown"]


def test_the_floor_is_an_annotation_on_the_diversity_graph():
    body = dashboard.dashboard_body(spec(k=5, floor=2.5), "eu-west-1", ALARMS)
    diversity = next(w["properties"] for w in body["widgets"]
                     if w["type"] == "metric" and w["properties"]["metrics"][0][1] == conventions.diversity_metric(5))
    assert [line["value"] for line in diversity["annotations"]["horizontal"]] == [2.5]
    assert diversity["yAxis"]["left"] == {"min": 0, "max": 5}
    assert (diversity["period"], diversity["region"]) == (conventions.METRIC_PERIOD_SECONDS, "eu-west-1")


def test_other_monitors_get_a_graph_and_without_them_a_note():
    others = [dashboard.OtherMetric("feature_baseline_drift_age", (("Endpoint", "recs"), ("MonitoringSchedule", "dq")))]
    with_others = dashboard.dashboard_body(spec(), "eu-west-1", ALARMS, others)
    assert with_others["widgets"][-1]["properties"]["metrics"] == [
        [conventions.METRICS_NAMESPACE, "feature_baseline_drift_age", "Endpoint", "recs", "MonitoringSchedule", "dq"]]
    alone = dashboard.dashboard_body(spec(), "eu-west-1")
    assert alone["widgets"][-1]["type"] == "text" and "alarm" not in [w["type"] for w in alone["widgets"]]
    assert alone["widgets"][0]["width"] == rules.GRID_COLUMNS


def test_the_rules_report_every_problem_with_its_path():
    body = {"widgets": [
        {"type": "metric", "x": 24, "y": -1, "width": 6, "height": 6.5, "properties": {
            "region": "eu-west-1", "metrics": [["ns", "m", "OnlyAName"], [{"label": "x"}]], "stat": "Mean",
            "annotations": {"horizontal": [{"label": "no value"}], "vertical": [{"value": "yesterday"}]},
            "yAxis": {"left": {"min": "0"}}, "view": "map"}},
        {"type": "alarm", "properties": {"alarms": "not-a-list"}},
    ], "periodOverride": "always"}
    assert rules.body_problems(body) == [
        ("/widgets/0/x", "Should be <= 23"),
        ("/widgets/0/y", "Should be >= 0"),
        ("/widgets/0/height", "Should be integer"),
        ("/widgets/0/width", "Should fit the 24-column grid: x + width <= 24"),
        ("/widgets/0/properties/metrics/0", "Should be [Namespace, MetricName] followed by DimensionName, DimensionValue pairs"),
        ("/widgets/0/properties/metrics/1/0", "Should have required property 'expression'"),
        ("/widgets/0/properties/stat", "Should be one of SampleCount, Average, Sum, Minimum, Maximum or an extended "
                                       "statistic (p99, tm90...)"),
        ("/widgets/0/properties/annotations/horizontal/0", "Should have required property 'value'"),
        ("/widgets/0/properties/annotations/vertical/0/value",
         "Should be an ISO 8601 time (2027-10-31T06:00:00Z) or a relative time (-PT3H)"),
        ("/widgets/0/properties/yAxis/left/min", "Should be number"),
        ("/widgets/0/properties/view", "Should be equal to one of the allowed values: timeSeries, singleValue, gauge, "
                                       "bar, pie, table"),
        ("/widgets/1/properties/alarms", "Should be array"),
        ("/periodOverride", "Should be equal to one of the allowed values: auto, inherit"),
    ]
    with pytest.raises(rules.DashboardBodyInvalid, match="there are 13 validation errors"):
        rules.check_body(body)


def test_relative_and_absolute_times():
    now = datetime(2027, 10, 31, 12, 0, tzinfo=timezone.utc)
    assert rules.parse_time("-PT3H", now) == datetime(2027, 10, 31, 9, 0, tzinfo=timezone.utc)
    assert rules.parse_time("-P1DT30M", now) == datetime(2027, 10, 30, 11, 30, tzinfo=timezone.utc)
    assert rules.parse_time("2027-10-31T06:00:00Z", now) == datetime(2027, 10, 31, 6, 0, tzinfo=timezone.utc)
    assert rules.parse_time("-P", now) is None and rules.parse_time("soon", now) is None


def test_the_runbook_asks_for_each_graph_at_its_size_and_window():
    body = dashboard.dashboard_body(spec(), "eu-west-1", ALARMS)
    start, end = dashboard_view.window_around(datetime(2027, 10, 31, 10, 3, tzinfo=timezone.utc), 6,
                                              now=datetime(2027, 10, 31, 10, 5, tzinfo=timezone.utc))
    assert (start, end) == (datetime(2027, 10, 31, 4, 0, tzinfo=timezone.utc), datetime(2027, 10, 31, 10, 5, tzinfo=timezone.utc))
    requests = dashboard_view.widget_requests(body, start, end)
    assert len(requests) == 6
    for widget, metric_widget in requests:
        assert rules.widget_image_problems(metric_widget) == []
        assert (metric_widget["width"], metric_widget["height"]) == (widget["width"] * 50, widget["height"] * 50)
        assert (metric_widget["start"], metric_widget["end"]) == ("2027-10-31T04:00:00Z", "2027-10-31T10:05:00Z")


def test_the_board_picture_puts_the_graphs_on_the_grid():
    import numpy as np
    from matplotlib import image as mpimg

    def png(color: float) -> bytes:
        out = io.BytesIO()
        mpimg.imsave(out, np.full((300, 600, 3), color), format="png")
        return out.getvalue()

    images = [dashboard_view.WidgetImage("a", 0, 3, png(0.0), {}), dashboard_view.WidgetImage("b", 12, 9, png(0.5), {})]
    picture = decode_png(dashboard_view.board_picture(images))
    assert picture.shape[:2] == (600, 1200)
    assert picture[150, 300, :3] == pytest.approx([0, 0, 0], abs=0.01)  # graph a, top left
    assert picture[450, 900, :3] == pytest.approx([0.5, 0.5, 0.5], abs=0.01)  # graph b, a row lower, right
    assert picture[450, 300, :3] == pytest.approx([1, 1, 1], abs=0.01)  # nothing there: white

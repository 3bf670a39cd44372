"""CloudWatch dashboards on the embedded local stack, over real HTTP with plain boto3.

One stack for the module (simulated clock). Dashboards are stored by moto and checked, kept and
drawn by local/dashboards.py: PutDashboard refuses what CloudWatch refuses (every structural
problem at once, in PutDashboard's error shape), the kit's own body goes in and comes back as
sent, set-up re-applied changes nothing, GetMetricWidgetImage draws the stored data (read back
from the PNG's pixels), and dashboards survive a restart.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from botocore.exceptions import ClientError

from diversity_monitor.conventions import METRICS_NAMESPACE, dashboard_name, diversity_metric, metric_dimensions
from diversity_monitor.setup import dashboard
from diversity_monitor.setup.schedule import MonitorSpec
from helpers.aws import REGION, stack_client
from helpers.images import Scale, color_mask, decode_png, line_column, line_row, series_value_at
from helpers.stack import StackHolder

pytestmark = pytest.mark.slow

NOW = datetime(2027, 10, 31, 12, 0, tzinfo=timezone.utc)
SPEC = MonitorSpec(endpoint_name="recs", schedule_name="recs-hourly", image_uri="image", role_arn="role",
                   validation_set="s3://b/v.jsonl", catalog="s3://b/c.csv", reports_s3_uri="s3://b/reports")
SERIES = "#ff0000"
LOW, HIGH = "#0000ff", "#00c000"  # horizontal annotations at 2 and 8
EARLY, LATE = "#ff00ff", "#00c0c0"  # vertical annotations at 05:30 and 10:30
# Hourly means, 05:00..11:00, one hour missing (08:00): what the graph must show, where.
POINTS = {NOW - timedelta(hours=7): 6.0, NOW - timedelta(hours=6): 6.5, NOW - timedelta(hours=5): 5.5,
          NOW - timedelta(hours=3): 2.0, NOW - timedelta(hours=2): 1.5, NOW - timedelta(hours=1): 7.0}


def client(stack):
    return stack_client("cloudwatch", stack)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with StackHolder(tmp_path_factory.mktemp("dashboards"), NOW) as holder:
        yield holder


@pytest.fixture(scope="module")
def cloudwatch(stack):
    return client(stack)


def refusal(call) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value


def test_the_kits_body_is_stored_listed_and_deleted(cloudwatch):
    body = json.dumps(dashboard.dashboard_body(SPEC, REGION, ["arn:aws:cloudwatch:eu-west-1:123456789012:alarm:a"]))
    assert cloudwatch.put_dashboard(DashboardName="kit-body", DashboardBody=body)["DashboardValidationMessages"] == []
    assert cloudwatch.get_dashboard(DashboardName="kit-body")["DashboardBody"] == body
    [entry] = cloudwatch.list_dashboards(DashboardNamePrefix="kit-")["DashboardEntries"]
    assert entry["DashboardName"] == "kit-body" and entry["LastModified"] == NOW  # the stack's clock, not the wall's
    cloudwatch.delete_dashboards(DashboardNames=["kit-body"])
    assert refusal(lambda: cloudwatch.get_dashboard(DashboardName="kit-body")).response["Error"]["Code"] == "ResourceNotFound"
    missing = refusal(lambda: cloudwatch.delete_dashboards(DashboardNames=["never-there"]))
    assert missing.response["Error"]["Code"] == "ResourceNotFound" and "never-there" in str(missing)


def test_put_dashboard_reports_every_problem_at_once_in_cloudwatchs_shape(cloudwatch):
    body = {"widgets": [
        {"type": "text", "x": 0, "y": 0, "width": 6, "height": 2, "properties": {}},
        {"type": "metric", "x": 20, "y": 0, "width": 8, "height": 6,
         "properties": {"metrics": [[METRICS_NAMESPACE]], "annotation": {}, "period": 7}},
        {"type": "gauge", "properties": {}},
    ]}
    error = refusal(lambda: cloudwatch.put_dashboard(DashboardName="broken", DashboardBody=json.dumps(body)))
    assert error.response["Error"]["Code"] == "InvalidParameterInput"
    assert "there are 7 validation errors" in error.response["Error"]["Message"]
    assert [m["DataPath"] for m in error.response["dashboardValidationMessages"]] == [
        "/widgets/0/properties", "/widgets/1/width", "/widgets/1/properties", "/widgets/1/properties/metrics/0",
        "/widgets/1/properties/annotation", "/widgets/1/properties/period", "/widgets/2/type"]
    for text, name in (("{not json", "broken"), ("[]", "broken"), (json.dumps({"widgets": []}), "no spaces allowed")):
        assert refusal(lambda t=text, n=name: cloudwatch.put_dashboard(DashboardName=n, DashboardBody=t)).response[
            "Error"]["Code"] == "InvalidParameterInput"
    assert cloudwatch.list_dashboards(DashboardNamePrefix="broken")["DashboardEntries"] == []  # nothing stored


def test_apply_dashboard_creates_then_changes_nothing_then_adds_other_monitors(cloudwatch):
    first = dashboard.apply_dashboard(SPEC, [], client=cloudwatch)
    again = dashboard.apply_dashboard(SPEC, [], client=cloudwatch)
    assert (first.name, first.outcome, again.outcome) == (dashboard_name("recs"), "created", "unchanged")
    # a built-in data-quality schedule on the same endpoint publishes: its metrics join the board
    builtin = [{"Name": "Endpoint", "Value": "recs"}, {"Name": "MonitoringSchedule", "Value": "recs-data-quality"}]
    cloudwatch.put_metric_data(Namespace=METRICS_NAMESPACE, MetricData=[
        {"MetricName": "feature_baseline_drift_age", "Dimensions": builtin, "Value": 0.1, "Timestamp": NOW},
        {"MetricName": diversity_metric(10), "Dimensions": metric_dimensions("recs", "recs-hourly"),
         "Value": 6.0, "Timestamp": NOW}])  # our own: never listed as another monitor's
    updated = dashboard.apply_dashboard(SPEC, [], client=cloudwatch)
    assert (updated.outcome, updated.others) == ("updated", 1)
    body = json.loads(cloudwatch.get_dashboard(DashboardName=first.name)["DashboardBody"])
    assert body["widgets"][-1]["properties"]["metrics"] == [
        [METRICS_NAMESPACE, "feature_baseline_drift_age", "Endpoint", "recs", "MonitoringSchedule", "recs-data-quality"]]


@pytest.fixture(scope="module")
def widget_image(cloudwatch):
    dimensions = metric_dimensions("recs", "image-test")
    cloudwatch.put_metric_data(Namespace=METRICS_NAMESPACE, MetricData=[
        {"MetricName": diversity_metric(10), "Dimensions": dimensions, "Value": value, "Timestamp": moment}
        for moment, value in POINTS.items()])
    widget = {
        "metrics": [[METRICS_NAMESPACE, diversity_metric(10), "Endpoint", "recs", "MonitoringSchedule", "image-test",
                     {"color": SERIES, "label": "mean"}]],
        "view": "timeSeries", "stat": "Average", "period": 3600, "start": "-PT8H", "width": 700, "height": 350,
        "yAxis": {"left": {"min": 0, "max": 10}}, "legend": {"position": "hidden"},
        "annotations": {
            "horizontal": [{"value": 2, "color": LOW}, {"value": 8, "color": HIGH}],
            "vertical": [{"value": "2027-10-31T05:30:00Z", "color": EARLY},
                         {"value": "2027-10-31T10:30:00Z", "color": LATE}]},
    }
    png = cloudwatch.get_metric_widget_image(MetricWidget=json.dumps(widget), OutputFormat="png")["MetricWidgetImage"]
    return decode_png(png)


def test_widget_image_is_a_png_of_the_asked_size(widget_image):
    assert widget_image.shape == (350, 700, 4)


def test_widget_image_draws_the_stored_points_where_they_belong(widget_image):
    scale = Scale({2.0: line_row(widget_image, LOW), 8.0: line_row(widget_image, HIGH)},
                  {datetime(2027, 10, 31, 5, 30, tzinfo=timezone.utc): line_column(widget_image, EARLY),
                   datetime(2027, 10, 31, 10, 30, tzinfo=timezone.utc): line_column(widget_image, LATE)})
    shown = {moment: series_value_at(widget_image, SERIES, scale.column(moment), scale) for moment in POINTS}
    assert shown == pytest.approx(POINTS, abs=0.2)
    # nothing drawn before the first point or after the last one
    drawn = color_mask(widget_image, SERIES).any(axis=0).nonzero()[0]
    assert scale.column(min(POINTS)) - 6 <= drawn.min() and drawn.max() <= scale.column(max(POINTS)) + 6


def test_widget_image_refuses_what_cloudwatch_refuses(cloudwatch):
    error = refusal(lambda: cloudwatch.get_metric_widget_image(MetricWidget=json.dumps({"width": 5000, "stat": "Mean"})))
    assert error.response["Error"]["Code"] == "InvalidParameterInput"
    assert all(part in error.response["Error"]["Message"] for part in ("'metrics'", "/width", "/stat"))
    years = {"metrics": [[METRICS_NAMESPACE, "x"]], "start": "-P520W", "period": 1}  # billions of points
    assert "at most 100800" in str(refusal(lambda: cloudwatch.get_metric_widget_image(MetricWidget=json.dumps(years))))
    pie = {"metrics": [[METRICS_NAMESPACE, "x"]], "view": "pie"}
    assert "not drawn by the local stack" in str(refusal(
        lambda: cloudwatch.get_metric_widget_image(MetricWidget=json.dumps(pie))))


def test_dashboards_survive_a_restart(stack):
    stack.restart()
    body = json.loads(client(stack).get_dashboard(DashboardName=dashboard_name("recs"))["DashboardBody"])
    assert body["widgets"][0]["type"] == "text"

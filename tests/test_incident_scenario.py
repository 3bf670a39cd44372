"""The main job: the incident from the design notes, end to end on the embedded local stack.

Runs exactly what `make demo` runs (smaller: 100 sessions, 40 live requests an hour) and checks
what a user would: statuses per hour, the metric's direction, when the alarm changed state, the
pager message, the reports in S3 and on disk, the live traffic each hour's capture holds, the
progress lines printed.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections import defaultdict
from datetime import timedelta

import pytest

from diversity_monitor.conventions import dashboard_name
from diversity_monitor.demo.command import DASHBOARD_PICTURE, run_demo
from diversity_monitor.demo.scenario import CAPTURE_BUCKET, ENDPOINT, VARIANT, ScenarioPlan
from diversity_monitor.local.clock import SimulatedClock
from diversity_monitor.local.stack import start_stack
from diversity_monitor.setup.dashboard import FLOOR_COLOR, PALETTE
from helpers.aws import stack_client
from helpers.images import decode_png, line_row, series_rows

PLAN = ScenarioPlan(sessions=100, live_requests_per_hour=40)
# A developer's shell may carry AWS settings that would divert boto3 from the demo's stack.
FOREIGN_AWS = {
    "AWS_PROFILE": "no-such-profile",
    "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9",
    "AWS_ENDPOINT_URL_SAGEMAKER": "http://127.0.0.1:9",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true",
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    output = tmp_path_factory.mktemp("demo")
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        for key in [key for key in os.environ if key.startswith("AWS_")]:
            patch.delenv(key)
        for key, value in FOREIGN_AWS.items():
            patch.setenv(key, value)
        with contextlib.redirect_stdout(printed):
            result = run_demo(output, PLAN, progress=False)  # progress=False: what a pipe or a CI log gets
        # The process's own settings are back once the demo is over.
        assert {key: value for key, value in os.environ.items() if key.startswith("AWS_")} == FOREIGN_AWS
    return output, result, printed.getvalue()


def test_statuses_per_hour_follow_the_deploys(demo):
    _, result, _ = demo
    table = result["timeline"]
    assert list(table["hour"].str[-5:]) == ["07:00", "08:00", "09:00", "10:00", "11:00", "12:00"]
    assert list(table["endpoint config"]) == ["recommender-prod-v1"] * 2 + ["recommender-prod-v2"] * 2 + ["recommender-prod-v1"] * 2
    assert list(table["status"]) == ["Completed"] * 2 + ["CompletedWithViolations"] * 2 + ["Completed"] * 2


def test_metric_collapses_under_the_regression_and_recovers(demo):
    _, result, _ = demo
    mean = list(result["timeline"]["mean"])
    assert all(6 <= value <= 8 for value in mean[:2] + mean[4:])  # healthy band from the design notes
    assert all(value <= 2.5 for value in mean[2:4])  # broken: 1-2 categories
    assert all(result["timeline"]["max slot share"][2:4] == 1.0)


def test_alarm_fires_after_the_second_bad_hour_and_clears_after_recovery(demo):
    _, result, _ = demo
    assert list(result["timeline"]["alarm"]) == ["OK", "OK", "OK", "ALARM", "ALARM", "OK"]
    # Only the composite alarm notifies the pager: one page for the incident, naming its children.
    assert {m["AlarmName"] for m in result["pager"]} == {"recommender-prod-diversity-page"}
    assert [(m["OldStateValue"], m["NewStateValue"]) for m in result["pager"]] == [
        ("INSUFFICIENT_DATA", "OK"), ("OK", "ALARM"), ("ALARM", "OK")]
    fired = result["pager"][1]
    assert fired["StateChangeTime"].startswith("2027-10-31T10:")
    assert fired["Subject"].startswith('ALARM: "recommender-prod-diversity-page"')
    children = [child["Arn"].rsplit(":", 1)[-1] for child in fired["TriggeringChildren"]]
    assert "recommender-prod-diversity-below-floor" in children  # the category count collapsed
    assert "recommender-prod-diversity-below-floor" in fired["NewStateReason"] or children[0] in fired["NewStateReason"]
    assert "runbooks/README.md" in fired["AlarmDescription"]
    # the monitor itself stayed healthy throughout: no health child fired the page
    assert not [c for c in children if "unhealthy" in c or "catalog" in c or "short-lists" in c]


def test_reports_are_left_where_the_readme_says(demo):
    output, result, _ = demo
    assert result["reports"] == 6
    hours = sorted(path.name for path in (output / "reports").iterdir())
    assert hours[0] == "2027-10-31-07" and hours[-1] == "2027-10-31-12"
    for hour in hours:
        files = {path.name for path in (output / "reports" / hour).iterdir()}
        assert {"statistics.json", "constraint_violations.json", "report.ipynb", "report.html"} <= files
    bad = json.loads((output / "reports/2027-10-31-10/constraint_violations.json").read_text())
    assert any("below the floor 4" in v["description"] for v in bad["violations"])
    assert (output / "timeline.png").stat().st_size > 10_000
    # the dashboard's six graphs on its grid: three rows of two 600 x 300 graphs
    board = decode_png((output / DASHBOARD_PICTURE).read_bytes())
    assert board.shape[:2] == (900, 1200)
    diversity = board[:300, :600]  # top left: the mean crossed the floor both ways
    mean_rows = series_rows(diversity, PALETTE[0])
    assert mean_rows.min() < line_row(diversity, FLOOR_COLOR) < mean_rows.max()
    assert (output / "timeline.csv").exists() and (output / "pager.json").exists()


def test_progress_counts_every_step_without_a_terminal(demo):
    _, result, printed = demo
    steps = result["steps"]
    total = len(steps)
    assert [line.split("]")[0] for line in steps] == [f"[{n}/{total}" for n in range(1, total + 1)]
    assert printed.splitlines()[:total] == steps
    assert any("regressed model v2 deployed" in line for line in steps)


def test_users_call_the_endpoint_every_hour_and_the_deploy_hours_see_both_models(demo):
    """The demo's state folder brings the run back; its capture holds live traffic (calls without
    an InferenceId) in every hour, from v1 and v2 in the deploy and the rollback hours."""
    output, result, _ = demo
    end = PLAN.start + timedelta(hours=7)
    with start_stack(output / ".local-stack", port=0, clock=SimulatedClock(end)) as stack:
        s3, cloudwatch = (stack_client(service, stack) for service in ("s3", "cloudwatch"))
        assert cloudwatch.get_dashboard(DashboardName=dashboard_name(ENDPOINT))["DashboardBody"]  # back with the run
        versions_by_hour = defaultdict(set)
        prefix = f"datacapture/{ENDPOINT}/{VARIANT}/"
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=CAPTURE_BUCKET, Prefix=prefix):
            for item in page.get("Contents", []):
                hour = item["Key"][len(prefix):].rsplit("/", 1)[0]  # yyyy/mm/dd/hh
                for line in s3.get_object(Bucket=CAPTURE_BUCKET, Key=item["Key"])["Body"].read().splitlines():
                    record = json.loads(line)
                    if "inferenceId" not in record["eventMetadata"]:
                        output_data = json.loads(record["captureData"]["endpointOutput"]["data"])
                        versions_by_hour[hour[-2:]].add(output_data["model_version"])
    deploys = {event["what"]: event["at"][11:13] for event in result["events"] if event["what"] in ("deploy", "rollback")}
    assert deploys == {"deploy": "08", "rollback": "10"}
    assert dict(versions_by_hour) == {
        "06": {"v1"}, "07": {"v1"}, "08": {"v1", "v2"}, "09": {"v2"}, "10": {"v1", "v2"}, "11": {"v1"}, "12": {"v1"},
    }

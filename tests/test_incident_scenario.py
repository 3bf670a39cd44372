"""The main job: the incident from the design notes, end to end on the embedded local stack.

Runs exactly what `make demo` runs (smaller: 100 sessions, 40 live requests an hour) and checks
what a user would: statuses per hour, the metric's direction, when the alarm changed state, the
pager message, the reports in S3 and on disk.
"""

from __future__ import annotations

import json

import pytest

from diversity_monitor.demo import run_demo
from diversity_monitor.scenario import ScenarioPlan


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    output = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as patch:
        for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_REGION"):
            patch.delenv(key, raising=False)  # run_demo points boto3 at its own stack
        result = run_demo(output, ScenarioPlan(sessions=100, live_requests_per_hour=40), progress=False)
    return output, result


def test_statuses_per_hour_follow_the_deploys(demo):
    _, result = demo
    table = result["timeline"]
    assert list(table["hour"].str[-5:]) == ["07:00", "08:00", "09:00", "10:00", "11:00", "12:00"]
    assert list(table["endpoint config"]) == ["recommender-prod-v1"] * 2 + ["recommender-prod-v2"] * 2 + ["recommender-prod-v1"] * 2
    assert list(table["status"]) == ["Completed"] * 2 + ["CompletedWithViolations"] * 2 + ["Completed"] * 2


def test_metric_collapses_under_the_regression_and_recovers(demo):
    _, result = demo
    mean = list(result["timeline"]["mean"])
    assert all(6 <= value <= 8 for value in mean[:2] + mean[4:])  # healthy band from the design notes
    assert all(value <= 2.5 for value in mean[2:4])  # broken: 1-2 categories
    assert all(result["timeline"]["max slot share"][2:4] == 1.0)


def test_alarm_fires_after_the_second_bad_hour_and_clears_after_recovery(demo):
    _, result = demo
    assert list(result["timeline"]["alarm"]) == ["OK", "OK", "OK", "ALARM", "ALARM", "OK"]
    diversity = [m for m in result["pager"] if "diversity-below-4" in m["AlarmName"]]
    assert [(m["OldStateValue"], m["NewStateValue"]) for m in diversity] == [
        ("INSUFFICIENT_DATA", "OK"), ("OK", "ALARM"), ("ALARM", "OK")]
    fired = diversity[1]
    assert fired["StateChangeTime"].startswith("2027-10-31T10:")
    assert fired["Subject"].startswith('ALARM: "recommender-prod-diversity-below-4"')
    assert fired["Trigger"]["MetricName"] == "top10_category_diversity_mean"
    assert "runbooks/README.md" in fired["AlarmDescription"]
    # the monitor itself stayed healthy throughout: its alarm never fired
    assert not [m for m in result["pager"] if "unhealthy" in m["AlarmName"] and m["NewStateValue"] == "ALARM"]


def test_reports_are_left_where_the_readme_says(demo):
    output, result = demo
    assert result["reports"] == 6
    hours = sorted(path.name for path in (output / "reports").iterdir())
    assert hours[0] == "2027-10-31-07" and hours[-1] == "2027-10-31-12"
    for hour in hours:
        files = {path.name for path in (output / "reports" / hour).iterdir()}
        assert {"statistics.json", "constraint_violations.json", "report.ipynb", "report.html"} <= files
    bad = json.loads((output / "reports/2027-10-31-10/constraint_violations.json").read_text())
    assert any("below the floor 4" in v["description"] for v in bad["violations"])
    assert (output / "timeline.png").stat().st_size > 10_000
    assert (output / "timeline.csv").exists() and (output / "pager.json").exists()

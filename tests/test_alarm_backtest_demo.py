"""The alarm backtest against the real thing: the demo's incident on the local stack.

One demo run (the module's fixture), then its stack brought back on the demo's state folder. The
backtest of the reports the runs wrote (Model Monitor's layout in the stack's S3, and the demo's
flattened reports/ folder) must give the alarm's real state history from DescribeAlarmHistory:
the same transitions at the same minutes. The sweep must show that the design notes' setting pages
once, at that minute, and name a setting that pages sooner with its cost. Notebook 05 runs on the
demo's history and writes the request notebook 03 then applies to the stack's alarm.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from datetime import timedelta

import boto3
import pytest

from diversity_monitor import cli
from diversity_monitor.clock import iso_z
from diversity_monitor.conventions import schedule_reports_prefix
from diversity_monitor.demo.command import run_demo
from diversity_monitor.demo.scenario import ENDPOINT, REPORTS_URI, SCHEDULE, ScenarioPlan
from diversity_monitor.local.clock import SimulatedClock
from diversity_monitor.local.stack import start_stack
from diversity_monitor.oncall import alarm_backtest as bt
from diversity_monitor.oncall.report_history import alarm_history
from diversity_monitor.setup.alarms import alarm_names
from helpers.notebooks import execute_notebook
from helpers.paths import AUDIT_DIR, NOTEBOOKS, ROOT
from helpers.stack import point_process_at

pytestmark = pytest.mark.slow

PLAN = ScenarioPlan(sessions=100, live_requests_per_hour=40)
DEMO_END = PLAN.start + timedelta(hours=6, minutes=5)  # the demo stops five minutes after its last run
ALARM = alarm_names(ENDPOINT)["diversity"]
MINUTE = timedelta(minutes=1)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo's folder and, on its state, the stack brought back (this process's boto3 points at it)."""
    output = tmp_path_factory.mktemp("demo")
    with contextlib.redirect_stdout(io.StringIO()):
        result = run_demo(output, PLAN, progress=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join([str(AUDIT_DIR), str(ROOT), os.environ.get("PYTHONPATH", "")]))
        with start_stack(output / ".local-stack", port=0, clock=SimulatedClock(DEMO_END)) as stack:
            point_process_at(stack, patch)
            yield {"output": output, "result": result, "stack": stack}


@pytest.fixture(scope="module")
def real_alarm(demo):
    """The diversity alarm as the stack has it: its definition, creation time and state changes."""
    cloudwatch = boto3.client("cloudwatch")
    definition = cloudwatch.describe_alarms(AlarmNames=[ALARM])["MetricAlarms"][0]
    created = [item["Timestamp"] for item in cloudwatch.describe_alarm_history(
        AlarmName=ALARM, HistoryItemType="ConfigurationUpdate", ScanBy="TimestampAscending")["AlarmHistoryItems"]
        if "created" in item["HistorySummary"]]
    changes = [(c.time, c.old, c.new) for c in alarm_history(ALARM, cloudwatch) if c.time <= DEMO_END]
    setting = bt.Setting(definition["Threshold"], definition["DatapointsToAlarm"], definition["EvaluationPeriods"],
                         definition["TreatMissingData"], definition["ComparisonOperator"], definition["Period"],
                         definition["Statistic"])
    return {"setting": setting, "created": created[0], "changes": changes}


def as_moves(backtest: bt.Backtest) -> list[tuple]:
    return [(t.at, t.old, t.new) for t in backtest.transitions]


def test_backtest_of_the_s3_reports_reproduces_the_alarms_history(real_alarm):
    # The design notes' alarm, as notebook 03 created it, and what the stack did with it.
    assert real_alarm["setting"] == bt.Setting(4.0, 2, 3, "missing", "LessThanThreshold", 3600, "Average")
    assert [(f"{at:%H:%M}", old, new) for at, old, new in real_alarm["changes"]] == [
        ("07:05", "INSUFFICIENT_DATA", "OK"), ("10:01", "OK", "ALARM"), ("12:01", "ALARM", "OK")]
    history = bt.read_reports(schedule_reports_prefix(REPORTS_URI, ENDPOINT, SCHEDULE))
    assert len(history.published) == 6 and history.timing == "6 point(s) stamped at their run's measured_at"
    backtest = bt.replay(history, [real_alarm["setting"]], real_alarm["created"], DEMO_END)[0]
    assert as_moves(backtest) == real_alarm["changes"]


def test_command_on_the_demos_folder_prints_the_same_transitions(demo, real_alarm):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["alarm-backtest", str(demo["output"] / "reports"), "--json",
                         "--start", iso_z(real_alarm["created"]), "--end", iso_z(DEMO_END)])
    assert code == 0
    assert json.loads(out.getvalue()) == {"transitions": [
        {"at": iso_z(at), "from": old, "to": new} for at, old, new in real_alarm["changes"]]}
    # The page is the one the pager received: the composite's, naming this child alarm.
    pages = [m for m in demo["result"]["pager"] if m["NewStateValue"] == "ALARM"
             and ALARM in {child["Arn"].rsplit(":", 1)[-1] for child in m["TriggeringChildren"]}]
    assert [m["StateChangeTime"][:16] for m in pages] == [f"{real_alarm['changes'][1][0]:%Y-%m-%dT%H:%M}"]


def test_sweep_pages_once_with_the_design_setting_and_names_a_sooner_one(demo, real_alarm):
    history = bt.read_reports(str(demo["output"] / "reports"))
    incidents = bt.incidents_for(history)
    assert [i.label for i in incidents] == ["recommender-prod-v2 deployed, rolled back to recommender-prod-v1"]
    first_bad = next(p for p in history.points if p.value < 4)  # the 09:00 run, the first on v2
    assert incidents[0].start == first_bad.stamped
    current = bt.current_setting()
    tuning = bt.tune(history, [3.0, 4.0, 5.0], [(1, 1), (2, 3), (3, 3)], incidents, current,
                     start=real_alarm["created"])
    design = tuning.sweep.row(current)
    paged_at = real_alarm["changes"][1][0]
    assert (design["pages"], design["false pages"], design["missed incidents"]) == (1, 0, 0)
    assert design["first page"] == iso_z(paged_at)
    assert design["minutes to page"] == round((paged_at - incidents[0].start).total_seconds() / 60, 1)
    # 1 of 1 pages at the minute the first bad run's point is in: an hour sooner; 3 of 3 never pages.
    one = tuning.sweep.row(bt.Setting(4.0, 1, 1))
    assert one["first page"] == iso_z(first_bad.stamped.replace(second=0) + MINUTE)
    assert tuning.sweep.row(bt.Setting(4.0, 3, 3))["missed incidents"] == 1
    sooner = tuning.earlier.set_index(["threshold", "M of N"])
    assert sooner.loc[(4.0, "1 of 1"), "sooner by (min)"] == 60.0
    assert sooner.loc[(4.0, "1 of 1"), "cost"] == "pages on 1 breaching hour(s) instead of 2"
    assert tuning.recommendation.setting == bt.Setting(4.0, 1, 1)
    assert "60 min sooner than the current threshold 4, 2 of 3" in tuning.recommendation.reason


@pytest.fixture(scope="module")
def tuned(demo, tmp_path_factory):
    folder = tmp_path_factory.mktemp("notebook05") / "run"
    return execute_notebook(NOTEBOOKS / "05_tune_alarm.ipynb", folder,
                            {"history_source": str(demo["output"] / "reports"), "endpoint_url": demo["stack"].url})


def test_tuning_notebook_shows_the_tradeoff_and_writes_a_valid_request(tuned):
    assert tuned.error is None, tuned.error
    text = tuned.text
    assert "1 incident(s)" in text and "recommender-prod-v2 deployed, rolled back to recommender-prod-v1" in text
    assert "recommended: threshold 4, 1 of 1" in text
    assert "pages on 1 breaching hour(s) instead of 2" in text
    assert tuned.images == 1
    request = json.loads((tuned.folder / "alarm_request.json").read_text())
    assert (request["AlarmName"], request["Threshold"], request["DatapointsToAlarm"], request["EvaluationPeriods"],
            request["TreatMissingData"]) == (ALARM, 4.0, 1, 1, "missing")


def test_schedule_notebook_applies_the_tuned_request(demo, tuned, tmp_path_factory):
    folder = tmp_path_factory.mktemp("notebook03") / "run"
    executed = execute_notebook(NOTEBOOKS / "03_create_schedule_and_alarm.ipynb", folder, {
        "endpoint_url": demo["stack"].url, "alarm_request_file": str(tuned.folder / "alarm_request.json")})
    assert executed.error is None, executed.error
    assert "diversity alarm TUNED by" in executed.text
    assert not executed.invalid, executed.invalid
    alarm = boto3.client("cloudwatch").describe_alarms(AlarmNames=[ALARM])["MetricAlarms"][0]
    assert (alarm["Threshold"], alarm["DatapointsToAlarm"], alarm["EvaluationPeriods"]) == (4.0, 1, 1)
    assert "below 4 for 1 of 1 hours" in alarm["AlarmDescription"]

"""The incident drill: the on-call runbooks executed by papermill against the local stack.

One stack for the module (tests/helpers/stack.py). The drill plays the incident with the
scenario's own steps: baseline, schedule, a healthy hour, the alarms, another healthy hour, the
regressed v2 deployed at :30, two bad runs, the diversity alarm in ALARM. Then
`runbooks/diversity_alarm.ipynb` runs twice: as-is (confirm_rollback=False: nothing may change)
and with confirm_rollback=True and a blue/green DeploymentConfig. Two more hourly runs follow and
must be healthy, with the alarm back to OK and the pager having seen ALARM then OK.

`runbooks/monitor_job_failed.ipynb` is run on real failed executions made afterwards on the same
stack: a re-run of an hour from before capture began (the notebook itself starts the re-run:
"Job inputs had no data"), a one-off run whose baseline does not exist, and an endpoint that is
down (it answers too slowly for the run's invoke timeout: the run completes, blind).

Every botocore call of every papermill kernel is audited against the service model
(tests/botocore_audit) and must be valid. The kernels see the simulated time through
DIVERSITY_MONITOR_NOW, the variable the stack gives every process it starts, and run in a time
zone far from UTC (an on-call's laptop): botocore hands out local times, the runbooks must not
care.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import boto3
import pytest

from diversity_monitor import storage
from diversity_monitor.clock import NOW_ENV
from diversity_monitor.conventions import dashboard_name
from diversity_monitor.demo.scenario import (
    ENDPOINT,
    MODEL_IMAGE,
    MODELS_BUCKET,
    MONITOR_BUCKET,
    REPORTS_URI,
    ROLE_ARN,
    SCHEDULE,
)
from diversity_monitor.oncall import failed_run
from diversity_monitor.setup import dashboard, deployment
from helpers.images import decode_png, line_row, series_rows
from helpers.notebooks import Executed, execute_notebook
from helpers.paths import AUDIT_DIR, RUNBOOKS
from helpers.permissions import assert_role_permits
from helpers.stack import deployed_stack

pytestmark = pytest.mark.slow

DIVERSITY_ALARM = "recommender-prod-diversity-below-floor"
PAGE_ALARM = "recommender-prod-diversity-page"  # the composite: what pages the on-call, naming the child that fired
HEALTH_ALARM = "recommender-prod-diversity-monitor-unhealthy"
INCIDENTS = f"{REPORTS_URI}/{ENDPOINT}/{SCHEDULE}/incidents/"
BLUE_GREEN = {"BlueGreenUpdatePolicy": {
    "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
    "TerminationWaitInSeconds": 0,
    "MaximumExecutionTimeoutInSeconds": 600,
}}
NO_BASELINE_SCHEDULE = "recommender-diversity-nobaseline"
STALLED_SCHEDULE = "recommender-diversity-stalled"
KERNEL_TZ = "Asia/Kolkata"  # UTC+05:30: any local-time slip moves hours and half-hours
READ_ONLY_PREFIXES = ("Describe", "List", "Get", "Head")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def run_runbook(folder: Path, name: str, stack, **parameters) -> Executed:
    """runbooks/`name` in a fresh folder; the kernel's clock is the stack's, its botocore calls audited."""
    return execute_notebook(RUNBOOKS / name, folder, {"endpoint_url": stack.url, **parameters},
                            env={NOW_ENV: stack.platform.clock.now().isoformat(), "TZ": KERNEL_TZ})


def alarm_state(name: str) -> str:
    return boto3.client("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"]


def live_config() -> str:
    return boto3.client("sagemaker").describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]


def executions(schedule: str) -> dict[datetime, dict]:
    items = boto3.client("sagemaker").list_monitoring_executions(
        MonitoringScheduleName=schedule, MaxResults=100)["MonitoringExecutionSummaries"]
    return {item["ScheduledTime"]: item for item in items}


@pytest.fixture(scope="module")
def drill(tmp_path_factory):
    path = tmp_path_factory.mktemp("runbooks")
    result: dict = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join([str(AUDIT_DIR), os.environ.get("PYTHONPATH", "")]))
        patch.setenv("MPLBACKEND", "Agg")
        with deployed_stack(path, patch) as (stack, scenario):
            scenario.build_baseline()
            scenario.create_schedule()
            scenario.live_hour()  # 07:00 run, before the alarms exist
            # As in the demo, the alarms come a few minutes after the run: at 07:00 sharp the heartbeat child's
            # window does not hold the 07:00 point yet, so it would start in ALARM (and page, once armed).
            scenario.live_for(5 * 60)
            scenario.create_pager_and_alarms()
            scenario.live_hour()  # 08:00 run
            scenario.live_until(30)
            scenario.deploy(f"{ENDPOINT}-v2", "deploy")
            scenario.live_until(0)  # 09:00 run against v2; users saw v1 then v2 this hour
            scenario.live_hour()  # 10:00 run against v2
            scenario.advance(5 * 60)
            result["paged_at"] = scenario.now()
            result["state_when_paged"] = alarm_state(DIVERSITY_ALARM)

            common = dict(alarm_name=PAGE_ALARM, poll_seconds=0.5)  # the name on the page
            result["dry"] = run_runbook(path / "dry", "diversity_alarm.ipynb", stack, **common)
            result["config_after_dry"] = live_config()
            result["incidents_after_dry"] = list(storage.list_objects(INCIDENTS))

            result["wet"] = run_runbook(path / "wet", "diversity_alarm.ipynb", stack, confirm_rollback=True,
                                        deployment_config=BLUE_GREEN, **common)
            result["endpoint_after_wet"] = boto3.client("sagemaker").describe_endpoint(EndpointName=ENDPOINT)

            scenario.live_hour()  # 11:00 run against v1
            scenario.live_hour()  # 12:00 run against v1
            scenario.advance(10 * 60)
            result["executions"] = executions(SCHEDULE)
            result["alarm_after"] = alarm_state(DIVERSITY_ALARM)
            result["health_after"] = alarm_state(HEALTH_ALARM)
            result["pager"] = scenario.pager_messages()
            result["incidents"] = {uri: storage.read_text(uri) for uri in storage.list_objects(INCIDENTS)}
            result["bad_report"] = storage.read_text(f"{REPORTS_URI}/{ENDPOINT}/{SCHEDULE}/2027/10/31/10/report.ipynb")

            # --- the failed-job runbook on real failures --------------------------------------
            # The 06:00 hour (window 05:00-06:00) predates capture: the notebook's own re-run fails.
            result["rerun"] = run_runbook(path / "rerun", "monitor_job_failed.ipynb", stack, schedule_name=SCHEDULE,
                                          scheduled_time="2027-10-31T06:00:00Z", rerun=True)
            rerun_schedule = failed_run.rerun_name(SCHEDULE, at("2027-10-31T06:00:00"))
            scenario.advance(2 * 60)
            result["rerun_executions"] = executions(rerun_schedule)
            result["no_data"] = run_runbook(path / "no-data", "monitor_job_failed.ipynb", stack,
                                            schedule_name=rerun_schedule)

            # A one-off run of the last hour whose BaselineConfig names a baseline that was never built.
            sagemaker = boto3.client("sagemaker")
            request = failed_run.rerun_request(
                sagemaker.describe_monitoring_schedule(MonitoringScheduleName=SCHEDULE),
                scenario.now().replace(minute=0, second=0, microsecond=0), now=scenario.now())
            request["MonitoringScheduleName"] = NO_BASELINE_SCHEDULE
            request["MonitoringScheduleConfig"]["MonitoringJobDefinition"]["BaselineConfig"] = {
                "StatisticsResource": {"S3Uri": f"s3://{MONITOR_BUCKET}/baselines/v9/statistics.json"},
                "ConstraintsResource": {"S3Uri": f"s3://{MONITOR_BUCKET}/baselines/v9/constraints.json"},
            }
            sagemaker.create_monitoring_schedule(**request)
            scenario.advance(2 * 60)
            result["no_baseline_executions"] = executions(NO_BASELINE_SCHEDULE)
            result["no_baseline"] = run_runbook(path / "no-baseline", "monitor_job_failed.ipynb", stack,
                                                schedule_name=NO_BASELINE_SCHEDULE)

            # The endpoint goes down: v1 behind a config whose model answers in 3 s, watched by a
            # one-off run with a 1 s invoke timeout. It completes, having replayed nothing.
            stall_endpoint(sagemaker)
            scenario.send_live_traffic(4)  # capture in the window: the run is not "no data"
            stalled = sagemaker.describe_monitoring_schedule(MonitoringScheduleName=SCHEDULE)
            definition = stalled["MonitoringScheduleConfig"]["MonitoringJobDefinition"]
            definition["MonitoringAppSpecification"]["ContainerArguments"] += ["--invoke-timeout", "1", "--max-attempts", "1"]
            sagemaker.create_monitoring_schedule(MonitoringScheduleName=STALLED_SCHEDULE, MonitoringScheduleConfig={
                "ScheduleConfig": {"ScheduleExpression": "NOW", "DataAnalysisStartTime": "-PT1H",
                                   "DataAnalysisEndTime": "PT0H"},
                "MonitoringJobDefinition": definition})
            scenario.advance(2 * 60)
            result["stalled_executions"] = executions(STALLED_SCHEDULE)
            result["stalled"] = run_runbook(path / "stalled", "monitor_job_failed.ipynb", stack,
                                            schedule_name=STALLED_SCHEDULE)
    return result


def stall_endpoint(sagemaker) -> None:
    """recommender-prod on a config whose model (v1's artifact) waits 3 s before each answer."""
    sagemaker.create_model(ModelName="news-recommender-v1-stalled", ExecutionRoleArn=ROLE_ARN, PrimaryContainer={
        "Image": MODEL_IMAGE, "ModelDataUrl": f"s3://{MODELS_BUCKET}/news-recommender/v1/model.tar.gz",
        "Environment": {"RECOMMENDER_LATENCY_MS": "3000"}})
    live = sagemaker.describe_endpoint_config(EndpointConfigName=f"{ENDPOINT}-v1")
    sagemaker.create_endpoint_config(
        EndpointConfigName=f"{ENDPOINT}-stalled", DataCaptureConfig=live["DataCaptureConfig"],
        ProductionVariants=[{**live["ProductionVariants"][0], "ModelName": "news-recommender-v1-stalled"}])
    deployment.deploy_config(ENDPOINT, f"{ENDPOINT}-stalled", poll_seconds=0.5)


# --- the diversity alarm runbook ------------------------------------------------------------------

def test_the_alarm_is_firing_when_the_on_call_opens_the_runbook(drill):
    assert drill["state_when_paged"] == "ALARM"
    paged = [m for m in drill["pager"] if m["AlarmName"] == PAGE_ALARM and m["NewStateValue"] == "ALARM"]
    assert len(paged) == 1 and "runbooks/README.md" in paged[0]["AlarmDescription"]
    assert DIVERSITY_ALARM in {child["Arn"].rsplit(":", 1)[-1] for child in paged[0]["TriggeringChildren"]}


def test_runbook_run_as_is_changes_nothing_and_says_what_it_would_do(drill):
    dry = drill["dry"]
    assert dry.error is None, dry.error
    assert drill["config_after_dry"] == f"{ENDPOINT}-v2"
    assert drill["incidents_after_dry"] == []
    assert "CONFIRMED: the alarm is in ALARM" in dry.text
    assert "SUSPECT: `recommender-prod-v2` (news-recommender-v2)" in dry.text
    assert "COLLAPSE STILL LIVE" in dry.text
    assert ("DRY RUN: nothing changed. This would run UpdateEndpoint recommender-prod -> recommender-prod-v1 "
            "(from recommender-prod-v2)") in dry.text
    assert "aws sagemaker update-endpoint --endpoint-name recommender-prod --endpoint-config-name recommender-prod-v1" in dry.text
    assert "Summary NOT written" in dry.text
    writes = {op for op in dry.operations if not op.startswith(READ_ONLY_PREFIXES)}
    assert writes == {"InvokeEndpoint"}, writes  # the on-demand replay is the only call that is not a read
    assert not dry.invalid, dry.invalid
    assert_role_permits("oncall", dry.audit)
    assert {"DescribeAlarms", "DescribeAlarmHistory", "DescribeMonitoringSchedule", "ListObjectsV2",
            "DescribeEndpoint", "DescribeEndpointConfig", "InvokeEndpoint"} <= dry.operations


def test_runbook_shows_the_reports_and_the_deployments(drill):
    text = drill["dry"].text
    for hour in ("07:00", "08:00", "09:00", "10:00"):
        assert f"2027-10-31 {hour}:00+00:00" in text
    assert "below the floor 4" in text  # the bad hours' violations
    assert "s3://recs-monitor/reports/recommender-prod/recommender-diversity-hourly/2027/10/31/10/report.ipynb" in text
    assert "lines up with the drop" in text
    # every run recorded the config that served it: the deployments table is evidence
    assert "served by" in text and "recommender-prod-v1" in text
    # the hourly report the on-call may open first points at the runbook too
    assert "runbooks/diversity_alarm.ipynb" in drill["bad_report"]


def test_runbook_opens_with_the_dashboards_graphs(drill):
    dry = drill["dry"]
    cells = [cell for cell in dry.notebook.cells if cell.cell_type == "code" and "dashboard_view" in cell.source]
    assert cells and dry.notebook.cells.index(cells[0]) < min(
        n for n, cell in enumerate(dry.notebook.cells) if "alarm_markdown" in cell.source)  # before anything else
    graphs = [decode_png(output["data"]["image/png"]) for output in cells[0].outputs if "image/png" in output.get("data", {})]
    assert len(graphs) == 6  # diversity, replay success, slot concentration, distinct articles, live mean, live lists
    assert all(graph.shape == (300, 600, 4) for graph in graphs)
    assert f"Dashboard `{dashboard_name(ENDPOINT)}`, 2027-10-31T04:00:00Z to 2027-10-31T10:05:00Z" in dry.text
    assert {"GetDashboard", "GetMetricWidgetImage"} <= dry.operations
    # the diversity graph: the mean (first colour) fell below the floor line, as the alarm says
    diversity = graphs[0]
    floor_row = line_row(diversity, dashboard.FLOOR_COLOR)
    mean_rows = series_rows(diversity, dashboard.PALETTE[0])
    assert mean_rows.min() < floor_row < mean_rows.max()  # above the floor in the healthy hours, below it since v2
    live_diversity = 4  # the drill's hours hold 40 live lists, under MIN_LIVE_LISTS: published nowhere, drawn nowhere
    for number, graph in enumerate(graphs[1:], start=1):
        drawn = series_rows(graph, dashboard.PALETTE[0]).size
        assert (drawn == 0) if number == live_diversity else (drawn > 0), number


def test_confirmed_rollback_puts_the_endpoint_back_on_v1_blue_green(drill):
    wet = drill["wet"]
    assert wet.error is None, wet.error
    endpoint = drill["endpoint_after_wet"]
    assert endpoint["EndpointConfigName"] == f"{ENDPOINT}-v1"
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["LastDeploymentConfig"]["BlueGreenUpdatePolicy"] == BLUE_GREEN["BlueGreenUpdatePolicy"]
    assert "ROLLED BACK: recommender-prod now serves recommender-prod-v1" in wet.text
    assert "RECOVERED" in wet.text and "NOT RECOVERED" not in wet.text
    assert "UpdateEndpoint" in wet.operations
    assert not wet.invalid, wet.invalid
    assert_role_permits("oncall", wet.audit)


def test_next_scheduled_runs_are_healthy_and_the_alarm_clears(drill):
    runs = drill["executions"]
    statuses = {hour.strftime("%H:%M"): item["MonitoringExecutionStatus"] for hour, item in runs.items()}
    assert statuses == {"07:00": "Completed", "08:00": "Completed", "09:00": "CompletedWithViolations",
                        "10:00": "CompletedWithViolations", "11:00": "Completed", "12:00": "Completed"}
    assert drill["alarm_after"] == "OK"
    assert drill["health_after"] == "OK"
    assert {m["AlarmName"] for m in drill["pager"]} == {PAGE_ALARM}  # the children page nobody themselves
    page = [(m["OldStateValue"], m["NewStateValue"]) for m in drill["pager"]]
    assert page == [("INSUFFICIENT_DATA", "OK"), ("OK", "ALARM"), ("ALARM", "OK")]


def test_incident_summary_is_written_next_to_the_reports(drill):
    names = sorted(uri.rsplit("/", 1)[-1] for uri in drill["incidents"])
    assert len(names) == 2 and names[0].endswith(".json") and names[1].endswith(".md")
    summary = json.loads(next(text for uri, text in drill["incidents"].items() if uri.endswith(".json")))
    assert summary["endpoint"] == ENDPOINT and summary["alarm"] == DIVERSITY_ALARM
    assert summary["alarm_fired_at"].startswith("2027-10-31T10:")
    assert [run["hour"] for run in summary["bad_runs"]] == ["2027-10-31T09:00:00Z", "2027-10-31T10:00:00Z"]
    assert summary["last_good_run"] == "2027-10-31T08:00:00Z"
    assert summary["suspect"]["config"] == f"{ENDPOINT}-v2" and summary["suspect"]["live_from"] == "2027-10-31T08:30:00Z"
    rollback = summary["rollback"]
    assert rollback["performed"] and rollback["from"]["config"] == f"{ENDPOINT}-v2"
    assert rollback["to"] == {"config": f"{ENDPOINT}-v1", "models": ["news-recommender-v1"]}
    assert rollback["deployment_config"] == BLUE_GREEN
    assert summary["replay_before"]["mean"] < 4 <= summary["replay_after"]["mean"]
    assert summary["recovered"] is True
    markdown = next(text for uri, text in drill["incidents"].items() if uri.endswith(".md"))
    assert "recommender-prod-v2 -> recommender-prod-v1" in markdown


# --- the failed-job runbook ----------------------------------------------------------------------

def test_failed_job_runbook_reruns_an_hour_with_a_one_off_schedule(drill):
    rerun = drill["rerun"]
    assert rerun.error is None, rerun.error
    assert "Run 2027-10-31T06:00:00Z of `recommender-diversity-hourly`" in rerun.text
    assert "Not scheduled (before the schedule existed)" in rerun.text  # created at 06:00: first run 07:00
    assert "MISSING" not in rerun.text  # every hourly run since is there
    assert "STARTED: one-off schedule recommender-diversity-hourly-rerun-2027103106" in rerun.text
    assert "CreateMonitoringSchedule" in rerun.operations
    assert not rerun.invalid, rerun.invalid
    assert_role_permits("oncall", rerun.audit)
    [execution] = drill["rerun_executions"].values()
    assert execution["MonitoringExecutionStatus"] == "Failed"
    assert execution["FailureReason"] == failed_run.NO_DATA


def test_failed_job_runbook_names_missing_capture(drill):
    no_data = drill["no_data"]
    assert no_data.error is None, no_data.error
    assert "FailureReason: `Job inputs had no data`" in no_data.text
    # The schedule analyses its hour plus two (issue 14: a quiet hour must not stop the monitor).
    assert "Window analysed: 2027-10-31T03:00:00Z to 2027-10-31T06:00:00Z" in no_data.text
    assert "LIKELY CAUSE: No captured data in the window" in no_data.text
    assert "no replay runs" in no_data.text  # never "harmless"
    # Nothing was ever captured before 06:00: a quiet endpoint, restarted with one replay.
    assert "**QUIET**: QUIET ENDPOINT" in no_data.text and "diversity-monitor replay" in no_data.text
    assert "AllTraffic/2027/10/31/05/: 0 object(s)" in no_data.text
    assert not no_data.invalid, no_data.invalid
    assert_role_permits("oncall", no_data.audit)
    assert {"ListMonitoringExecutions", "DescribeEndpoint", "ListObjectsV2", "InvokeEndpoint"} <= no_data.operations


def test_failed_job_runbook_names_a_missing_baseline(drill):
    [execution] = drill["no_baseline_executions"].values()
    assert execution["MonitoringExecutionStatus"] == "Failed"
    no_baseline = drill["no_baseline"]
    assert no_baseline.error is None, no_baseline.error
    assert "LIKELY CAUSE: Baseline missing or unreadable" in no_baseline.text
    assert "missing: s3://recs-monitor/baselines/v9/statistics.json, s3://recs-monitor/baselines/v9/constraints.json" in no_baseline.text
    assert "endpoint reachable" in no_baseline.text and "a test invocation returned 10 articles" in no_baseline.text
    assert not no_baseline.invalid, no_baseline.invalid
    assert_role_permits("oncall", no_baseline.audit)
    assert {"DescribeProcessingJob", "HeadObject"} <= no_baseline.operations


def test_failed_job_runbook_finds_an_endpoint_that_is_down(drill):
    """The run does not fail: it completes without replaying anything, which the health alarm pages on."""
    [execution] = drill["stalled_executions"].values()
    assert execution["MonitoringExecutionStatus"] == "CompletedWithViolations"
    stalled = drill["stalled"]
    assert stalled.error is None, stalled.error
    assert "CompletedWithViolations (REPLAY FAILED: monitor blind)" in stalled.text
    assert "The run completed but the monitor was blind**: only 0 of 100 sessions replayed" in stalled.text
    assert "LIKELY CAUSE: Endpoint unreachable or failing" in stalled.text
    assert "InService, but a test invocation failed" in stalled.text
    assert not stalled.invalid, stalled.invalid
    assert_role_permits("oncall", stalled.audit)

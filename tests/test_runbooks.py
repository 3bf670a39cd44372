"""The incident drill: the on-call runbooks executed by papermill against the local stack.

One stack for the module (tests/stack_fixtures.py). The drill plays the incident with the
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
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import nbformat
import papermill
import pytest

from diversity_monitor import deployment, incident, job_diagnosis, storage
from diversity_monitor.clock import NOW_ENV
from diversity_monitor.deployment import Deployment
from diversity_monitor.monitoring_setup import MonitorSpec, monitoring_job_definition
from diversity_monitor.report_history import HourReport
from diversity_monitor.scenario import (CATALOG_URI, ENDPOINT, MODEL_IMAGE, MODELS_BUCKET, MONITOR_BUCKET, MONITOR_IMAGE,
                                        REPORTS_URI, ROLE_ARN, SCHEDULE, VALIDATION_URI, VARIANT)
from container import AUDIT_DIR
from notebook_outputs import visible_text
from stack_fixtures import deployed_stack

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
RUNBOOKS = ROOT / "runbooks"
DIVERSITY_ALARM = "recommender-prod-diversity-below-4"
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


@dataclass
class Executed:
    notebook: nbformat.NotebookNode
    audit: list[dict]
    error: Exception | None

    @property
    def text(self) -> str:
        return visible_text(self.notebook)

    @property
    def operations(self) -> set[str]:
        return {record["operation"] for record in self.audit}

    @property
    def invalid(self) -> list[dict]:
        return [record for record in self.audit if record["invalid"]]


def run_runbook(folder: Path, name: str, stack, **parameters) -> Executed:
    """papermill in a fresh folder; the kernel's clock is the stack's, its botocore calls audited."""
    folder.mkdir()
    audit_file = folder / "botocore-audit.jsonl"
    error = None
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BOTOCORE_AUDIT_FILE", str(audit_file))
        patch.setenv(NOW_ENV, stack.platform.clock.now().isoformat())
        patch.setenv("TZ", KERNEL_TZ)
        try:
            papermill.execute_notebook(str(RUNBOOKS / name), str(folder / name),
                                       parameters={"endpoint_url": stack.url, **parameters},
                                       kernel_name="python3", cwd=str(folder), progress_bar=False)
        except papermill.PapermillExecutionError as failure:
            error = failure
    audit = [json.loads(line) for line in audit_file.read_text().splitlines()] if audit_file.exists() else []
    return Executed(nbformat.read(folder / name, as_version=4), audit, error)


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
            scenario.create_pager_and_alarms()
            scenario.live_hour()  # 08:00 run
            scenario.live_until(30)
            scenario.deploy(f"{ENDPOINT}-v2", "deploy")
            scenario.live_until(0)  # 09:00 run against v2; users saw v1 then v2 this hour
            scenario.live_hour()  # 10:00 run against v2
            scenario.advance(5 * 60)
            result["paged_at"] = scenario.now()
            result["state_when_paged"] = alarm_state(DIVERSITY_ALARM)

            common = dict(alarm_name=DIVERSITY_ALARM, poll_seconds=0.5)
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
            rerun_schedule = job_diagnosis.rerun_name(SCHEDULE, at("2027-10-31T06:00:00"))
            scenario.advance(2 * 60)
            result["rerun_executions"] = executions(rerun_schedule)
            result["no_data"] = run_runbook(path / "no-data", "monitor_job_failed.ipynb", stack,
                                            schedule_name=rerun_schedule)

            # A one-off run of the last hour whose BaselineConfig names a baseline that was never built.
            sagemaker = boto3.client("sagemaker")
            request = job_diagnosis.rerun_request(
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
    paged = [m for m in drill["pager"] if m["AlarmName"] == DIVERSITY_ALARM and m["NewStateValue"] == "ALARM"]
    assert paged and "runbooks/README.md" in paged[0]["AlarmDescription"]


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


def test_next_scheduled_runs_are_healthy_and_the_alarm_clears(drill):
    runs = drill["executions"]
    statuses = {hour.strftime("%H:%M"): item["MonitoringExecutionStatus"] for hour, item in runs.items()}
    assert statuses == {"07:00": "Completed", "08:00": "Completed", "09:00": "CompletedWithViolations",
                        "10:00": "CompletedWithViolations", "11:00": "Completed", "12:00": "Completed"}
    assert drill["alarm_after"] == "OK"
    assert drill["health_after"] == "OK"
    diversity = [(m["OldStateValue"], m["NewStateValue"]) for m in drill["pager"] if m["AlarmName"] == DIVERSITY_ALARM]
    assert diversity == [("INSUFFICIENT_DATA", "OK"), ("OK", "ALARM"), ("ALARM", "OK")]


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
    [execution] = drill["rerun_executions"].values()
    assert execution["MonitoringExecutionStatus"] == "Failed"
    assert execution["FailureReason"] == job_diagnosis.NO_DATA


def test_failed_job_runbook_names_missing_capture(drill):
    no_data = drill["no_data"]
    assert no_data.error is None, no_data.error
    assert "FailureReason: `Job inputs had no data`" in no_data.text
    assert "Window analysed: 2027-10-31T05:00:00Z to 2027-10-31T06:00:00Z" in no_data.text
    assert "LIKELY CAUSE: No captured data in the window" in no_data.text
    assert "AllTraffic/2027/10/31/05/: 0 object(s)" in no_data.text
    assert not no_data.invalid, no_data.invalid
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


# --- the request builders, offline ----------------------------------------------------------------

def test_rerun_offsets_put_the_window_on_the_hour(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    schedule = {"MonitoringScheduleName": SCHEDULE, "CreationTime": at("2027-10-31T06:00:00"),
                "MonitoringScheduleConfig": {"ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"},
                                             "MonitoringJobDefinition": monitoring_job_definition(MonitorSpec(
                    ENDPOINT, SCHEDULE, MONITOR_IMAGE, ROLE_ARN, VALIDATION_URI, CATALOG_URI, REPORTS_URI))}}
    request = job_diagnosis.rerun_request(schedule, at("2027-10-31T09:00:00"), now=at("2027-10-31T12:14:30"))
    config = request["MonitoringScheduleConfig"]["ScheduleConfig"]
    # NOW fires at the next whole minute, 12:15: the window is 08:00-09:00, the run at 09:00's
    assert config == {"ScheduleExpression": "NOW", "DataAnalysisStartTime": "-PT4H15M", "DataAnalysisEndTime": "-PT3H15M"}
    assert request["MonitoringScheduleName"] == "recommender-diversity-hourly-rerun-2027103109"
    assert job_diagnosis.rerun_name(request["MonitoringScheduleName"], at("2027-10-31T09:00:00")) == request["MonitoringScheduleName"]
    runs = job_diagnosis.expected_runs(schedule, at("2027-10-31T05:00:00"), at("2027-10-31T09:30:00"))
    assert [run.hour for run in runs] == [7, 8, 9]
    # the same instants given in a laptop's zone (as botocore returns them) change nothing
    local = {**schedule, "CreationTime": at("2027-10-31T06:00:00").astimezone(timezone(timedelta(hours=5, minutes=30)))}
    assert job_diagnosis.expected_runs(local, at("2027-10-31T05:00:00"), at("2027-10-31T09:30:00")) == runs
    with pytest.raises(job_diagnosis.DiagnosisError, match="after now"):
        job_diagnosis.rerun_request(schedule, at("2027-10-31T13:00:00"), now=at("2027-10-31T12:14:30"))


def test_a_malformed_deployment_config_is_refused_before_anything_is_sent(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    bad = {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalSeconds": 0}}}
    with pytest.raises(incident.IncidentError, match="WaitIntervalSeconds"):
        incident.validate_update_request({"EndpointName": ENDPOINT, "EndpointConfigName": f"{ENDPOINT}-v1",
                                          "DeploymentConfig": bad})


# --- the incident logic on hand-made reports --------------------------------------------------------

def report(hour: int, status: str, config: str | None = "c-v1", mean: float = 6.5) -> HourReport:
    """A report as load_reports reads it: `ok`, `bad` (a violation) or `failed` (no statistics)."""
    if status == "failed":
        return HourReport(at(f"2027-10-31T{hour:02d}:00:00"), f"s3://r/{hour}", None, [], (f"s3://r/{hour}/report.ipynb",))
    serving = {"endpoint_config": config, "models": {VARIANT: f"model-of-{config}"}, "changed_during_replay": False,
               "observed_at": f"2027-10-31T{hour:02d}:00:05Z", "error": None} if config else None
    statistics = {"diversity_monitor": {"mean": mean, "p5": 5, "measured_at": f"2027-10-31T{hour:02d}:00:30Z",
                                        "serving": serving}}
    violations = [{"feature_name": "f", "constraint_check_type": "baseline_drift_check", "description": "below"}] \
        if status == "bad" else []
    return HourReport(at(f"2027-10-31T{hour:02d}:00:00"), f"s3://r/{hour}", statistics, violations, ())


LIVE_V2 = Deployment("c-v2", at("2027-10-31T08:30:00"), ("model-of-c-v2",), True, True)
ENDPOINT_ON_V2 = {"EndpointConfigName": "c-v2", "LastModifiedTime": at("2027-10-31T08:31:00")}


def test_a_failed_run_is_neither_good_nor_bad():
    reports = [report(7, "ok"), report(8, "failed"), report(9, "bad", "c-v2"), report(10, "failed"), report(11, "bad", "c-v2")]
    streak = incident.bad_streak(reports)
    assert [r.hour.hour for r in streak.bad_hours] == [9, 11]
    assert [r.hour.hour for r in streak.failed_hours] == [10]
    assert streak.last_good.hour.hour == 7  # not the failed 08:00 run


def test_the_suspect_is_the_config_that_served_the_first_bad_run():
    from diversity_monitor.report_history import config_changes

    reports = [report(7, "ok"), report(8, "ok"), report(9, "bad", "c-v2"), report(10, "bad", "c-v2")]
    streak = incident.bad_streak(reports)
    suspect, text = incident.find_suspect(streak, config_changes(reports, ENDPOINT_ON_V2), ENDPOINT_ON_V2, LIVE_V2)
    assert suspect.config == "c-v2" and suspect.went_live == at("2027-10-31T08:31:00")  # exact: LastModifiedTime
    assert "SUSPECT: `c-v2`" in text and "after the last good run at 2027-10-31T08:00:00Z" in text


def test_no_suspect_when_the_same_config_served_good_and_bad_runs_or_no_good_run_is_seen():
    same = [report(8, "ok", "c-v2"), report(9, "bad", "c-v2")]
    suspect, text = incident.find_suspect(incident.bad_streak(same), [], ENDPOINT_ON_V2, LIVE_V2)
    assert suspect is None and "No deployment lines up" in text
    only_bad = [report(9, "bad", "c-v2"), report(10, "bad", "c-v2")]
    suspect, text = incident.find_suspect(incident.bad_streak(only_bad), [], ENDPOINT_ON_V2, LIVE_V2)
    assert suspect is None and "raise `lookback_hours`" in text


def test_without_serving_records_only_the_last_update_can_be_named_and_it_says_so():
    reports = [report(8, "ok", None), report(9, "bad", None)]
    suspect, text = incident.find_suspect(incident.bad_streak(reports), [], ENDPOINT_ON_V2, LIVE_V2)
    assert suspect.config == "c-v2" and "ESTIMATED" in suspect.evidence
    late = {**ENDPOINT_ON_V2, "LastModifiedTime": at("2027-10-31T09:40:00")}  # after the first bad run
    suspect, text = incident.find_suspect(incident.bad_streak(reports), [], late, LIVE_V2)
    assert suspect is None and "Cannot tell which deploy" in text


def test_no_rollback_target_when_the_live_config_had_a_clean_run_or_no_clean_run_is_seen(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    target = incident.Target(None, None, ENDPOINT, SCHEDULE, {}, "s3://r")
    view = incident.DeploymentView(ENDPOINT_ON_V2, LIVE_V2, [], [], None, "")
    clean_on_live = incident.bad_streak([report(8, "ok", "c-v2"), report(9, "bad", "c-v2")])
    plan = incident.plan_rollback(target, view, clean_on_live)
    assert plan.to_deployment is None and "not from a deploy" in plan.reason
    outcome = incident.roll_back(plan, confirm=True, collapse_live=True)
    assert not outcome.performed and outcome.message.startswith("NO ROLLBACK")
    no_clean = incident.bad_streak([report(9, "bad", "c-v2")])
    assert incident.plan_rollback(target, view, no_clean).to_deployment is None


def test_an_incident_record_is_never_overwritten(tmp_path):
    target = incident.Target(None, None, ENDPOINT, SCHEDULE, {}, str(tmp_path))
    summary = incident.IncidentSummary(ENDPOINT, SCHEDULE, None, None, None, None, None, [], [], None, "", {
        "performed": False, "message": "NO ROLLBACK", "from": None, "to": None}, None, None, [], "2027-10-31T10:05:00Z")
    first = incident.write_summary(summary, target)
    second = incident.write_summary(summary, target)
    assert first != second and second[0].endswith("-2.json")
    assert all(Path(uri).exists() for uri in (*first, *second))

"""The data scientists' notebooks, executed end to end by papermill against the local stack.

One stack for the module (tests/helpers/stack.py: `recommender-prod` serving healthy v1 with
capture, v2 registered). Each stage is a module fixture that runs a notebook with parameters
injected, in its own folder; the tests check the effects on the stack and what a reader of the
executed copy looks at. Every botocore call the papermill kernels make is audited against the
service model (tests/botocore_audit) and must be valid.
"""

from __future__ import annotations

import json
import os
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import boto3
import pandas as pd
import papermill
import pytest

from diversity_monitor import cli, conventions, storage
from diversity_monitor.aws.dashboard_body import body_problems
from diversity_monitor.demo.scenario import CAPTURE_BUCKET, ENDPOINT, MONITOR_BUCKET, SCHEDULE, VARIANT
from diversity_monitor.job.metrics_file import metric_values
from diversity_monitor.job.model_monitor_files import diversity_feature
from diversity_monitor.setup import dashboard, deployment, permissions
from helpers.notebooks import Executed, execute_notebook
from helpers.paths import AUDIT_DIR, NOTEBOOKS, ROOT
from helpers.permissions import assert_role_permits
from helpers.stack import deployed_stack

pytestmark = pytest.mark.slow

BASELINES = f"s3://{MONITOR_BUCKET}/baselines"
NO_CAPTURE_ENDPOINT = "recommender-nocapture"
STAGING_ENDPOINT = "recommender-staging"
HOUR = timedelta(hours=1)
RUNBOOK_URL = "https://git.example.com/recs/diversity-monitor/-/blob/main/runbooks/README.md"


@dataclass
class Stack:
    stack: object
    scenario: object
    path: Path

    @property
    def url(self) -> str:
        return self.stack.url


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    path = tmp_path_factory.mktemp("notebooks")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join([str(AUDIT_DIR), str(ROOT), os.environ.get("PYTHONPATH", "")]))
        with deployed_stack(path, patch) as (running, scenario):
            yield Stack(running, scenario, path)


def run_notebook(stack: Stack, name: str, run: str, **parameters) -> Executed:
    """notebooks/`name` in a fresh folder `run`, pointed at the stack, the kernel's botocore calls audited."""
    return execute_notebook(NOTEBOOKS / name, stack.path / run, {"endpoint_url": stack.url, **parameters})


def assert_calls_valid(executed: Executed, operations: set[str]) -> None:
    """Valid against the service model, and allowed by the data scientist's IAM policy (setup/permissions.py)."""
    assert executed.audit, "the kernel made no audited botocore calls"
    assert not executed.invalid, executed.invalid
    assert operations <= executed.operations
    assert_role_permits("data-scientist", executed.audit,
                        processing_schedule_name="recommender-diversity-hourly-processing",
                        scheduler_role_arn="arn:aws:iam::123456789012:role/diversity-monitor-scheduler")


@contextmanager
def clock_running(stack: Stack, step_seconds: float = 60, every: float = 0.25):
    """Simulated minutes pass while a notebook waits (capture is delivered at clock ticks)."""
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(every):
            stack.stack.platform.advance(step_seconds)

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def deploy_endpoint(endpoint: str, model: str) -> None:
    """An endpoint without data capture (a config of its own, named after it)."""
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_endpoint_config(
        EndpointConfigName=f"{endpoint}-{model}",
        ProductionVariants=[{"VariantName": VARIANT, "ModelName": model, "InitialInstanceCount": 1,
                             "InstanceType": "ml.m5.large", "InitialVariantWeight": 1.0}])
    sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=f"{endpoint}-{model}")
    deployment.wait_in_service(endpoint, poll_seconds=0.5)


# --- 01: data capture ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def capture_runs(stack):
    deploy_endpoint(NO_CAPTURE_ENDPOINT, "news-recommender-v1")
    before = deployment.capture_state(NO_CAPTURE_ENDPOINT)
    parameters = dict(endpoint_name=NO_CAPTURE_ENDPOINT, poll_seconds=0.5, wait_seconds=120, sample_requests=5)
    with clock_running(stack):
        first = run_notebook(stack, "01_enable_data_capture.ipynb", "capture-1", **parameters)
    after_first = deployment.capture_state(NO_CAPTURE_ENDPOINT)
    with clock_running(stack):
        second = run_notebook(stack, "01_enable_data_capture.ipynb", "capture-2", **parameters)
    return before, first, after_first, second


def test_capture_notebook_moves_the_endpoint_to_a_config_with_json_capture(capture_runs):
    before, first, after, _ = capture_runs
    assert first.error is None, first.error
    assert not before["capture_enabled"]
    assert after["config"] != before["config"] and after["config"].startswith(f"{NO_CAPTURE_ENDPOINT}-capture-")
    config = boto3.client("sagemaker").describe_endpoint_config(EndpointConfigName=after["config"])
    capture = config["DataCaptureConfig"]
    assert capture["EnableCapture"] and capture["InitialSamplingPercentage"] == 100
    assert capture["DestinationS3Uri"] == f"s3://{CAPTURE_BUCKET}/datacapture"
    assert capture["CaptureContentTypeHeader"]["JsonContentTypes"] == ["application/json"]
    assert [v["ModelName"] for v in config["ProductionVariants"]] == ["news-recommender-v1"]
    # what the reader sees: the before/after table and the confirmation
    assert "CHANGED: recommender-nocapture now on recommender-nocapture-capture-" in first.text
    assert "CAPTURE CONFIRMED: 5 of 5 tagged requests found" in first.text
    assert_calls_valid(first, {"DescribeEndpoint", "CreateEndpointConfig", "UpdateEndpoint", "InvokeEndpoint",
                               "ListObjectsV2", "GetObject"})


def test_capture_files_arrive_under_the_expected_prefix_as_json(capture_runs):
    files = list(storage.list_objects(f"s3://{CAPTURE_BUCKET}/datacapture/{NO_CAPTURE_ENDPOINT}/{VARIANT}/"))
    assert files and all(uri.endswith(".jsonl") for uri in files)
    records = [json.loads(line) for uri in files for line in storage.read_text(uri).splitlines()]
    tagged = [r for r in records if r["eventMetadata"].get("inferenceId", "").startswith("diversity-replay-capture-check-")]
    assert len(tagged) == 10  # five per run, both runs
    assert {r["captureData"]["endpointOutput"]["encoding"] for r in tagged} == {"JSON"}


def test_capture_notebook_rerun_changes_nothing_and_says_so(capture_runs):
    _, _, after_first, second = capture_runs
    assert second.error is None, second.error
    assert deployment.capture_state(NO_CAPTURE_ENDPOINT)["config"] == after_first["config"]
    configs = boto3.client("sagemaker").list_endpoint_configs(NameContains=NO_CAPTURE_ENDPOINT)["EndpointConfigs"]
    assert len(configs) == 2  # the original and the one with capture, no third
    assert "NO CHANGE: capture already on for recommender-nocapture" in second.text
    assert "CAPTURE CONFIRMED: 5 of 5" in second.text
    assert "UpdateEndpoint" not in {record["operation"] for record in second.audit}
    assert_calls_valid(second, {"DescribeEndpoint", "InvokeEndpoint"})


# --- 02: baseline and gate ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def baseline_v1(stack):
    return run_notebook(stack, "02_build_baseline.ipynb", "baseline-v1", model_version="v1", endpoint_name=ENDPOINT)


@pytest.fixture(scope="module")
def gate_v2(stack, baseline_v1):
    deploy_endpoint(STAGING_ENDPOINT, "news-recommender-v2")  # the candidate, before it takes traffic
    return run_notebook(stack, "02_build_baseline.ipynb", "baseline-v2", model_version="v2", previous_version="v1",
                        endpoint_name=STAGING_ENDPOINT)


def test_baseline_notebook_writes_a_versioned_baseline_and_passes_the_gate(baseline_v1):
    assert baseline_v1.error is None, baseline_v1.error
    statistics = json.loads(storage.read_text(f"{BASELINES}/v1/statistics.json"))
    constraints = json.loads(storage.read_text(f"{BASELINES}/v1/constraints.json"))
    gate = json.loads(storage.read_text(f"{BASELINES}/v1/gate.json"))
    assert diversity_feature(10) in {feature["name"] for feature in statistics["features"]}
    assert statistics["diversity_monitor"]["model_version"] == "v1"
    assert 6 <= statistics["diversity_monitor"]["mean"] <= 8
    assert constraints["features"][0]["diversity_constraints"]["mean_lower_bound"] == pytest.approx(
        statistics["diversity_monitor"]["mean"] - 1.0)
    assert gate["passed"] is True
    assert "GATE PASSED for model v1" in baseline_v1.text
    # the SageMaker SDK read both files back from S3 in the notebook
    sdk_line = next(line for line in baseline_v1.text.splitlines() if line.startswith("SDK read:"))
    sdk_read = json.loads(sdk_line.removeprefix("SDK read:"))
    assert sdk_read["statistics features"] == [f["name"] for f in statistics["features"]]
    assert sdk_read["item_count"] == statistics["dataset"]["item_count"] > 0
    assert baseline_v1.images == 1
    assert_calls_valid(baseline_v1, {"InvokeEndpoint", "PutObject", "GetObject"})


def test_baseline_notebook_emits_the_sdk_pipeline_definition(baseline_v1):
    definition = json.loads((baseline_v1.folder / "baseline_pipeline.json").read_text())
    assert definition["Version"] == "2020-12-01"  # the SDK's pipeline definition schema version
    assert {p["Name"]: p["DefaultValue"] for p in definition["Parameters"]} == {"ModelVersion": "v1", "EndpointName": ENDPOINT}
    steps = {step["Name"]: step for step in definition["Steps"]}
    assert [s["Type"] for s in steps.values()] == ["Processing", "Processing"]
    baseline_app = steps["Baseline"]["Arguments"]["AppSpecification"]
    assert baseline_app["ContainerEntrypoint"] == ["dumb-init", "--", "diversity-monitor", "baseline"]
    assert {"Std:Join": {"On": "/", "Values": [BASELINES, {"Get": "Parameters.ModelVersion"}]}} in baseline_app["ContainerArguments"]
    assert steps["Gate"]["Arguments"]["AppSpecification"]["ContainerEntrypoint"][-1] == "baseline-gate"
    assert steps["Gate"]["DependsOn"] == ["Baseline"]


def test_gate_fails_the_notebook_on_the_regressed_candidate(gate_v2):
    assert isinstance(gate_v2.error, papermill.PapermillExecutionError)
    assert gate_v2.error.ename == "GateFailed"
    assert "GATE FAILED for model v2" in gate_v2.error.evalue
    assert "below the floor 4" in gate_v2.error.evalue
    assert "more than the allowed 1" in gate_v2.error.evalue
    gate = json.loads(storage.read_text(f"{BASELINES}/v2/gate.json"))
    assert gate["passed"] is False and len(gate["reasons"]) >= 3
    assert any("mean list overlap between sessions" in reason for reason in gate["reasons"])
    assert gate_v2.images == 1  # the comparison plot is there for the reader
    assert not (gate_v2.folder / "baseline_pipeline.json").exists()  # nothing after the gate ran
    assert_calls_valid(gate_v2, {"InvokeEndpoint", "PutObject", "GetObject"})


def test_gate_command_of_the_pipeline_step_gives_the_same_verdict(gate_v2, capsys):
    assert cli.main(["baseline-gate", "--baselines", BASELINES, "--model-version", "v2", "--previous-version", "v1"]) == 1
    assert "GATE FAILED for model v2" in capsys.readouterr().out
    assert cli.main(["baseline-gate", "--baselines", BASELINES, "--model-version", "v1"]) == 0
    assert "GATE PASSED for model v1" in capsys.readouterr().out


# --- 03: schedule and alarms -------------------------------------------------------------------

@pytest.fixture(scope="module")
def schedule_runs(stack, baseline_v1):
    first = run_notebook(stack, "03_create_schedule_and_alarm.ipynb", "schedule-1", runbook_url=RUNBOOK_URL)
    second = run_notebook(stack, "03_create_schedule_and_alarm.ipynb", "schedule-2", runbook_url=RUNBOOK_URL)
    return first, second


def test_schedule_notebook_creates_the_hourly_schedule_with_the_baseline(schedule_runs):
    first, second = schedule_runs
    assert first.error is None and second.error is None, (first.error, second.error)
    assert f"monitoring schedule {SCHEDULE}: created" in first.text
    assert f"monitoring schedule {SCHEDULE}: updated" in second.text  # idempotent
    sagemaker = boto3.client("sagemaker")
    assert len(sagemaker.list_monitoring_schedules(EndpointName=ENDPOINT)["MonitoringScheduleSummaries"]) == 1
    described = sagemaker.describe_monitoring_schedule(MonitoringScheduleName=SCHEDULE)
    config = described["MonitoringScheduleConfig"]
    assert config["ScheduleConfig"]["ScheduleExpression"] == "cron(0 * ? * * *)"
    job = config["MonitoringJobDefinition"]
    assert job["BaselineConfig"]["StatisticsResource"]["S3Uri"] == f"{BASELINES}/v1/statistics.json"
    assert job["MonitoringAppSpecification"]["ContainerArguments"][-4:] == ["--min-diversity", "4", "--top-k", "10"]
    assert "cron(0 * ? * * *)" in first.text  # the schedule table the on-call sees


def test_schedule_notebook_writes_each_roles_least_privilege_policy(schedule_runs):
    first, _ = schedule_runs
    folder = first.folder / "iam-policies"
    written = {path.name: json.loads(path.read_text()) for path in folder.glob("iam-policy-*.json")}
    assert set(written) == {f"iam-policy-{role}.json" for role in permissions.ROLES}
    job = written["iam-policy-job.json"]
    replay = next(s for s in job["Statement"] if "sagemaker:InvokeEndpoint" in s["Action"])
    assert replay["Resource"] == [f"arn:aws:sagemaker:eu-west-1:123456789012:endpoint/{ENDPOINT}"]
    listing = [s for s in job["Statement"] if s["Action"] == ["s3:ListBucket"]]
    assert listing and all("s3:prefix" in s["Condition"]["StringLike"] for s in listing)
    assert "metrics check: the schedule has no completed run yet" in first.text


def test_schedule_notebook_creates_the_child_alarms_and_the_composite_that_pages(schedule_runs):
    first, second = schedule_runs
    described = boto3.client("cloudwatch").describe_alarms(AlarmNamePrefix=ENDPOINT,
                                                           AlarmTypes=["MetricAlarm", "CompositeAlarm"])
    alarms = {a["AlarmName"]: a for a in described["MetricAlarms"]}
    diversity = alarms[f"{ENDPOINT}-diversity-below-floor"]
    health = alarms[f"{ENDPOINT}-diversity-monitor-unhealthy"]
    assert len(alarms) == 7  # one per signal: the floor, three sameness figures, the monitor's health, two blindness shares
    assert all(not alarm.get("AlarmActions") for alarm in alarms.values())  # only the composite pages
    [page] = described["CompositeAlarms"]
    assert page["AlarmName"] == f"{ENDPOINT}-diversity-page"
    assert set(page["AlarmRule"].split(" OR ")) == {f'ALARM("{name}")' for name in alarms if name != health["AlarmName"]}
    assert (diversity["MetricName"], diversity["Threshold"], diversity["DatapointsToAlarm"],
            diversity["EvaluationPeriods"], diversity["Period"], diversity["TreatMissingData"]) == (
        "top10_category_diversity_mean", 4.0, 2, 3, 3600, "missing")
    assert (health["MetricName"], health["TreatMissingData"]) == ("replay_success_rate", "breaching")
    # no run has published yet: a heartbeat alarm over an empty window is in ALARM, so it is left out of the
    # composite's rule (above) and pages nobody
    assert f"health alarm {ENDPOINT}-diversity-monitor-unhealthy NOT ARMED YET" in first.text
    topic = boto3.client("sns").create_topic(Name="oncall-pager")["TopicArn"]
    assert page["AlarmActions"] == page["OKActions"] == [topic]
    assert RUNBOOK_URL in page["AlarmDescription"] and RUNBOOK_URL in diversity["AlarmDescription"]  # a link in the page
    for run in (first, second):  # the on-call's table, both times
        assert "Average(top10_category_diversity_mean) &lt; 4 for 2 of 3 x 60 min" in run.text
        assert "Minimum(replay_success_rate) &lt; 0.95 for 2 of 2 x 60 min" in run.text
    assert_calls_valid(first, {"CreateMonitoringSchedule", "PutMetricAlarm", "PutCompositeAlarm", "CreateTopic",
                               "DescribeAlarms"})
    assert_calls_valid(second, {"UpdateMonitoringSchedule", "PutMetricAlarm"})


def stored_dashboard() -> dict:
    return json.loads(boto3.client("cloudwatch").get_dashboard(
        DashboardName=conventions.dashboard_name(ENDPOINT))["DashboardBody"])


def test_schedule_notebook_creates_the_dashboard_once(schedule_runs):
    first, second = schedule_runs
    name = conventions.dashboard_name(ENDPOINT)
    assert f"dashboard {name}: created (9 widgets; no other monitor's metrics on the endpoint yet)" in first.text
    assert f"dashboard {name}: unchanged" in second.text
    assert f"#dashboards/dashboard/{name}" in first.text  # where the console shows it
    assert "PutDashboard" in first.operations and "PutDashboard" not in second.operations  # a re-run sends nothing
    assert_calls_valid(first, {"PutDashboard", "GetDashboard", "ListMetrics"})
    assert_calls_valid(second, {"GetDashboard", "ListMetrics"})
    cloudwatch = boto3.client("cloudwatch")
    assert [d["DashboardName"] for d in cloudwatch.list_dashboards()["DashboardEntries"]] == [name]
    body = stored_dashboard()
    assert body_problems(body) == []
    described = cloudwatch.describe_alarms(AlarmNamePrefix=ENDPOINT, AlarmTypes=["MetricAlarm", "CompositeAlarm"])
    alarm_arns = {a["AlarmArn"] for a in described["MetricAlarms"] + described["CompositeAlarms"]}
    [status] = [w["properties"] for w in body["widgets"] if w["type"] == "alarm"]
    assert set(status["alarms"]) == alarm_arns and len(alarm_arns) == 8  # seven children and the composite
    diversity = next(w["properties"] for w in body["widgets"] if w["type"] == "metric")
    assert diversity["annotations"]["horizontal"][0]["value"] == 4.0  # the floor the alarm uses
    assert RUNBOOK_URL in body["widgets"][0]["properties"]["markdown"]


def test_every_metric_the_dashboard_names_is_one_the_job_publishes(schedule_runs):
    # baseline v1's statistics.json: a statistics document the job wrote from a real replay; with the
    # live block an hour whose capture held enough lists carries (job/live.py), for the live_ names
    document = json.loads(storage.read_text(f"{BASELINES}/v1/statistics.json"))
    block = document["diversity_monitor"]
    block["live"] = {"lists": conventions.MIN_LIVE_LISTS, "reliable": True,
                     **{key: block[key] for key in ("mean", "min", "p5", "max", "max_slot_concentration",
                                                    "distinct_articles")}}
    published = set(metric_values(document))
    named = dashboard.named_metrics(stored_dashboard())
    assert conventions.diversity_metric(10) in published
    assert {metric for _, metric, _ in named} <= published
    assert {(namespace, dict(dimensions)["Endpoint"], dict(dimensions)["MonitoringSchedule"])
            for namespace, _, dimensions in named} == {(conventions.METRICS_NAMESPACE, ENDPOINT, SCHEDULE)}


def test_schedule_notebook_generates_valid_eventbridge_processing_requests(schedule_runs):
    from botocore.session import get_session
    from botocore.validate import validate_parameters

    first, _ = schedule_runs
    requests = json.loads((first.folder / "processing_schedule_requests.json").read_text())
    schedule = requests["CreateSchedule"]
    models = get_session()
    validate_parameters(schedule, models.get_service_model("scheduler").operation_model("CreateSchedule").input_shape)
    job = requests["CreateProcessingJob (rendered)"]
    validate_parameters(job, models.get_service_model("sagemaker").operation_model("CreateProcessingJob").input_shape)
    assert schedule["Target"]["Arn"] == "arn:aws:scheduler:::aws-sdk:sagemaker:createProcessingJob"
    assert json.loads(schedule["Target"]["Input"])["ProcessingJobName"] == "diversity-<aws.scheduler.execution-id>"
    assert job["AppSpecification"]["ContainerArguments"][:2] == ["--endpoint-name", ENDPOINT]
    assert "--put-metric-data" in job["AppSpecification"]["ContainerArguments"]
    assert job["Environment"]["end_time"] == "2027-10-31T09:00:00Z"
    # Model Monitor's report layout: the container adds yyyy/mm/dd/HH of end_time below the schedule
    assert "--output-hour-folder" in job["AppSpecification"]["ContainerArguments"]
    assert job["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] == \
        f"s3://{MONITOR_BUCKET}/reports/{ENDPOINT}/{schedule['Name']}/"
    assert job["Environment"]["sagemaker_monitoring_schedule_name"] == schedule["Name"]


# --- 04: investigation -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def investigation_run(stack, schedule_runs):
    """A healthy hour, a deploy of v2 (a new config, as a deploy pipeline creates one), two bad hours."""
    scenario, sagemaker = stack.scenario, boto3.client("sagemaker")
    scenario.send_live_traffic(20)
    scenario.to_minutes_past(0)  # the first scheduled run: healthy
    start = scenario.now()
    scenario.send_live_traffic(20)
    scenario.to_minutes_past(30)
    config = deployment.new_config_name(ENDPOINT, "v2")
    source = sagemaker.describe_endpoint_config(EndpointConfigName=f"{ENDPOINT}-v2")
    sagemaker.create_endpoint_config(EndpointConfigName=config, ProductionVariants=source["ProductionVariants"],
                                     DataCaptureConfig=source["DataCaptureConfig"])
    scenario.deploy(config, "deploy")
    scenario.send_live_traffic(20)
    scenario.to_minutes_past(0)  # the first run against v2
    scenario.live_hour()  # the second: 2 of 3 hours below 4
    scenario.advance(10 * 60)
    executed = run_notebook(stack, "04_investigate_regression.ipynb", "investigate",
                            start=start.isoformat(), end=scenario.now().isoformat())
    tables = {path.stem: pd.read_csv(path) for path in (executed.folder / "investigation-tables").glob("*.csv")}
    return executed, start, config, tables


def test_investigation_notebook_shows_hours_alarm_and_deploy(investigation_run):
    executed, start, config, tables = investigation_run
    assert executed.error is None, executed.error
    assert "3 hourly reports, 1 deploy(s) in the range" in executed.text
    assert config in executed.text  # the deploy, in the marks table
    hourly = tables["hourly"]
    assert len(hourly) == 3 and hourly["hour"].iloc[0].startswith(start.strftime("%Y-%m-%d %H:00"))
    assert hourly["mean"].iloc[0] >= 6 and (hourly["mean"].iloc[1:] <= 2.5).all()
    assert list(hourly["alarm"]) == ["OK", "OK", "ALARM"]
    assert executed.images == 2  # the timeline and the before/after histogram
    assert_calls_valid(executed, {"ListObjectsV2", "GetObject", "DescribeAlarmHistory", "DescribeEndpoint"})
    assert "capture: 100%" in executed.text and "3/3" in executed.text  # progress over the hours read


def test_investigation_reads_only_the_hour_folders_of_the_range(investigation_run):
    executed, start, _, _ = investigation_run
    hours = {f"{start + n * HOUR:%Y/%m/%d/%H}" for n in range(-1, 3)}  # the reports' hours and their windows
    prefixes = [r["params"]["Prefix"] for r in executed.audit if r["operation"] == "ListObjectsV2"]
    assert prefixes
    for prefix in prefixes:
        below = re.sub(rf"^.*?/(?:{SCHEDULE}|{VARIANT})/", "", prefix)  # what follows the schedule or variant folder
        # Listing the endpoint or variant folder (finding where capture lives) is fine; a year, month or
        # day folder, or an hour outside the range, is reading what the range does not need.
        assert below in (prefix, "") or below.rstrip("/") in hours, prefix


def test_investigation_compares_live_traffic_with_the_replay(investigation_run):
    live = investigation_run[3]["live_vs_replay"]
    assert (live["live_lists"] > 0).all() and (live["replay_records_excluded"] == 100).all()
    healthy, deployed, regressed = live["live_mean"]
    assert healthy >= 6 and regressed <= 2.5
    assert regressed < deployed < healthy  # the deploy hour's users saw v1 then v2
    assert abs(live["replay_mean"].iloc[0] - healthy) < 1.5 and abs(live["replay_mean"].iloc[2] - regressed) < 1.5


def test_investigation_finds_frozen_slots_and_compares_two_hours(investigation_run):
    executed, start, _, tables = investigation_run
    collapse = tables["slot_collapse"]
    assert len(collapse) >= 3 and (collapse["hours"] == 2).all() and (collapse["max_share"] > 0.5).all()
    assert set(collapse["from"]) == {(start + HOUR).strftime("%Y-%m-%d %H:%M:%S+00:00")}
    before_after = tables["before_after"].set_index("figure")
    assert list(before_after.columns) == [f"before {start:%H:%M}", f"after {start + 2 * HOUR:%H:%M}"]
    assert float(before_after.loc["mean"].iloc[0]) > float(before_after.loc["mean"].iloc[1])
    copied = sorted(path.parent.name for path in (executed.folder / "investigation-reports").rglob("report.ipynb"))
    assert copied == [f"{start:%Y-%m-%d-%H}", f"{start + 2 * HOUR:%Y-%m-%d-%H}"]


def test_schedule_notebook_rerun_after_the_first_runs_arms_the_health_alarm(stack, investigation_run):
    third = run_notebook(stack, "03_create_schedule_and_alarm.ipynb", "schedule-3", runbook_url=RUNBOOK_URL)
    assert third.error is None, third.error
    assert f"health alarm {ENDPOINT}-diversity-monitor-unhealthy ARMED" in third.text
    # armed because ListMetrics found exactly what the alarms watch (setup/published_metrics.py)
    assert "metrics check: every metric the alarms watch is published" in third.text
    assert "ListMetrics" in third.operations
    health = boto3.client("cloudwatch").describe_alarms(
        AlarmNames=[f"{ENDPOINT}-diversity-monitor-unhealthy"])["MetricAlarms"][0]
    assert health["ActionsEnabled"] is True
    page = boto3.client("cloudwatch").describe_alarms(
        AlarmNames=[f"{ENDPOINT}-diversity-page"], AlarmTypes=["CompositeAlarm"])["CompositeAlarms"][0]
    assert f'ALARM("{health["AlarmName"]}")' in page["AlarmRule"]  # armed: silence now pages
    assert_calls_valid(third, {"ListMonitoringExecutions", "PutMetricAlarm", "PutCompositeAlarm"})
    # the runs have published since: their metrics are the monitor's own, not another monitor's
    assert f"dashboard {conventions.dashboard_name(ENDPOINT)}: unchanged" in third.text

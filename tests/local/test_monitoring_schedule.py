"""Model Monitor, locally: schedules through boto3, runs fired by the clock, the contract kept.

A real gateway (local/gateway.py) on a loopback port serves SageMaker from the monitoring
module; S3 and CloudWatch are the session's moto server. The image is a small test container
(tests/fixtures/monitoring/fake_monitor.py behind a Dockerfile written per test) mapped
explicitly in `images.LOCAL_IMAGES`; it records what the platform gave it in `contract.json`.
Endpoints are store records in the DescribeEndpoint / DescribeEndpointConfig shapes, as the
hosting module writes them.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from diversity_monitor.local import images, metric_data, monitoring, monitoring_scheduler, processing
from diversity_monitor.local.clock import SimulatedClock
from diversity_monitor.local.gateway import GatewayServer
from diversity_monitor.local.platform import LocalPlatform, bind_loopback
from helpers.aws import REGION, stack_client
from helpers.paths import FIXTURES

START = datetime(2027, 10, 31, 8, 30, tzinfo=timezone.utc)
FAKE_MONITOR = FIXTURES / "monitoring" / "fake_monitor.py"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/fake-monitor:test"
ROLE = "arn:aws:iam::123456789012:role/service-role/AmazonSageMaker-ExecutionRole"
HOURLY = "cron(0 * ? * * *)"


def utc(hour: int, minute: int = 0) -> datetime:
    return datetime(2027, 10, 31, hour, minute, tzinfo=timezone.utc)


def _write_fake_image(folder: Path) -> Path:
    """A Dockerfile whose ENTRYPOINT runs the test container (exec form), as images.resolve reads it."""
    dockerfile = folder / "Dockerfile.fake-monitor"
    dockerfile.write_text(
        "FROM python:3.12-slim\n"
        "ENV PYTHONUNBUFFERED=1\n"
        f'ENTRYPOINT ["python", "{FAKE_MONITOR}"]\n'
        'CMD ["--mode", "ok"]\n'
    )
    return dockerfile


@contextlib.contextmanager
def running_stack(folder: Path, moto_url: str):
    """The monitoring module behind the real gateway, on a simulated clock at 08:30, with the
    repository `fake-monitor` mapped to the test container's Dockerfile."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(images.LOCAL_IMAGES, "fake-monitor", str(_write_fake_image(folder)))
        sock = bind_loopback(0)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        platform = LocalPlatform(folder / "state", SimulatedClock(START), moto_url, url, REGION)
        monitoring.install(platform)
        scheduler = monitoring_scheduler.install(platform)
        gateway = GatewayServer(platform, sock)
        try:
            yield platform, scheduler
        finally:
            platform.stop()
            gateway.stop()


@pytest.fixture
def stack(tmp_path, moto_url):
    """A stack of the test's own: its clock starts at 08:30 and the test advances it."""
    with running_stack(tmp_path, moto_url) as running:
        yield running


@pytest.fixture(scope="module")
def shared_stack(tmp_path_factory, moto_url):
    """One stack for tests that never advance the clock (each uses its own endpoint names)."""
    with running_stack(tmp_path_factory.mktemp("shared"), moto_url) as running:
        yield running


@pytest.fixture
def sagemaker(stack):
    platform, _ = stack
    return stack_client("sagemaker", platform)


@pytest.fixture(scope="module")
def shared_sagemaker(shared_stack):
    platform, _ = shared_stack
    return stack_client("sagemaker", platform)


class World:
    """One test's endpoint, buckets and captured data (unique names: moto is shared)."""

    def __init__(self, platform: LocalPlatform, capture: bool | None = True) -> None:
        """`capture`: EnableCapture's value; None leaves DataCaptureConfig out of the config."""
        self.platform = platform
        suffix = uuid.uuid4().hex[:8]
        self.endpoint = f"recs-{suffix}"
        self.bucket = f"monitor-{suffix}"
        self.s3 = platform.aws_client("s3")
        self.s3.create_bucket(Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        config_name = f"{self.endpoint}-config"
        capture_config = {
            "EnableCapture": capture, "InitialSamplingPercentage": 100,
            "DestinationS3Uri": f"s3://{self.bucket}/capture",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        }
        platform.store.put("EndpointConfig", config_name, {
            "EndpointConfigName": config_name,
            "EndpointConfigArn": platform.arn("endpoint-config", config_name),
            "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "m", "InitialInstanceCount": 1}],
            **({"DataCaptureConfig": capture_config} if capture is not None else {}),
            "CreationTime": platform.timestamp(),
        })
        platform.store.put("Endpoint", self.endpoint, {
            "EndpointName": self.endpoint, "EndpointArn": platform.arn("endpoint", self.endpoint),
            "EndpointConfigName": config_name, "EndpointStatus": "InService",
            "CreationTime": platform.timestamp(), "LastModifiedTime": platform.timestamp(),
        })

    def capture(self, hour: int, records: int, variant: str = "AllTraffic") -> None:
        lines = "\n".join(
            json.dumps({"captureData": {}, "eventMetadata": {"eventId": str(n), "inferenceTime": f"2027-10-31T{hour:02d}:10:00Z"},
                        "eventVersion": "0"})
            for n in range(records)
        )
        key = f"capture/{self.endpoint}/{variant}/2027/10/31/{hour:02d}/10-00-000-{uuid.uuid4()}.jsonl"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=lines.encode())

    def baseline(self) -> dict:
        for name in ("statistics.json", "constraints.json"):
            self.s3.put_object(Bucket=self.bucket, Key=f"baselines/v1/{name}", Body=b'{"version": 0}')
        return {
            "StatisticsResource": {"S3Uri": f"s3://{self.bucket}/baselines/v1/statistics.json"},
            "ConstraintsResource": {"S3Uri": f"s3://{self.bucket}/baselines/v1/constraints.json"},
        }

    def schedule_config(self, expression: str = HOURLY, mode: str = "ok", *, image: str = IMAGE,
                        max_runtime: int | None = None, environment: dict | None = None,
                        baseline: dict | None = None, **schedule_extra) -> dict:
        definition = {
            "MonitoringInputs": [{"EndpointInput": {"EndpointName": self.endpoint,
                                                    "LocalPath": "/opt/ml/processing/input/endpoint"}}],
            "MonitoringOutputConfig": {"MonitoringOutputs": [{"S3Output": {
                "S3Uri": f"s3://{self.bucket}/reports", "LocalPath": "/opt/ml/processing/output"}}]},
            "MonitoringResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m6i.large", "VolumeSizeInGB": 20}},
            "MonitoringAppSpecification": {"ImageUri": image, "ContainerArguments": ["--mode", mode]},
            "RoleArn": ROLE,
        }
        if max_runtime is not None:
            definition["StoppingCondition"] = {"MaxRuntimeInSeconds": max_runtime}
        if environment:
            definition["Environment"] = environment
        if baseline:
            definition["BaselineConfig"] = baseline
        return {"ScheduleConfig": {"ScheduleExpression": expression, **schedule_extra},
                "MonitoringJobDefinition": definition}

    def report(self, schedule: str, hour: int, name: str) -> dict:
        key = f"reports/{self.endpoint}/{schedule}/2027/10/31/{hour:02d}/{name}"
        return json.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def report_keys(self) -> list[str]:
        return [item["Key"] for item in self.s3.list_objects_v2(Bucket=self.bucket, Prefix="reports/").get("Contents", [])]


def executions(sagemaker, schedule: str) -> list[dict]:
    return sagemaker.list_monitoring_executions(MonitoringScheduleName=schedule)["MonitoringExecutionSummaries"]


def run_once(stack, sagemaker, world: World, mode: str = "ok", **config) -> dict:
    """Create an hourly schedule at 08:30, advance to 09:00, return the one execution."""
    platform, _ = stack
    name = f"diversity-{mode}"
    sagemaker.create_monitoring_schedule(MonitoringScheduleName=name, MonitoringScheduleConfig=world.schedule_config(mode=mode, **config))
    platform.advance(30 * 60)
    (execution,) = executions(sagemaker, name)
    return execution


# --- runs fired by the clock ----------------------------------------------------------------


def test_hourly_run_gets_the_contract_and_its_outputs_land_under_the_hour(stack, sagemaker):
    platform, _ = stack
    world = World(platform)
    world.capture(7, 3)  # before the window: not staged
    world.capture(8, 5)
    world.capture(8, 2, variant="Shadow")
    world.capture(9, 4)  # the run's own hour: after the window
    execution = run_once(stack, sagemaker, world, environment={"EXTRA_SETTING": "from-schedule"}, baseline=world.baseline())

    assert execution["MonitoringExecutionStatus"] == "Completed"
    assert execution["ScheduledTime"] == utc(9)
    assert execution["EndpointName"] == world.endpoint
    contract = world.report("diversity-ok", 9, "contract.json")
    env = contract["env"]
    assert env == {
        "dataset_format": '{"sagemakerCaptureJson":{"captureIndexNames":["endpointInput","endpointOutput"]}}',
        "dataset_source": "/opt/ml/processing/input/endpoint",
        "output_path": "/opt/ml/processing/output",
        "publish_cloudwatch_metrics": "Enabled",
        "sagemaker_endpoint_name": world.endpoint,
        "sagemaker_monitoring_schedule_name": "diversity-ok",
        "start_time": "2027-10-31T08:00:00Z",
        "end_time": "2027-10-31T09:00:00Z",
        "metric_time": "2027-10-31T09:00:00Z",
        "baseline_statistics": "/opt/ml/processing/baseline/stats/statistics.json",
        "baseline_constraints": "/opt/ml/processing/baseline/constraints/constraints.json",
        "DIVERSITY_MONITOR_NOW": "2027-10-31T09:00:00+00:00",
        "AWS_ENDPOINT_URL": platform.url,
        "EXTRA_SETTING": "from-schedule",
    }
    assert contract["records"] == 7
    staged_capture = [path for path in contract["staged"] if path.startswith("processing/input/")]
    assert [path.rsplit("/", 1)[0] for path in staged_capture] == [
        f"processing/input/endpoint/{world.endpoint}/AllTraffic/2027/10/31/08",
        f"processing/input/endpoint/{world.endpoint}/Shadow/2027/10/31/08",
    ]
    assert "processing/baseline/stats/statistics.json" in contract["staged"]
    assert "processing/baseline/constraints/constraints.json" in contract["staged"]
    assert contract["argv"] == ["--mode", "ok"]
    assert contract["config"]["Environment"]["start_time"] == "2027-10-31T08:00:00Z"
    assert world.report("diversity-ok", 9, "statistics.json")["dataset"]["item_count"] == 7

    job_name = execution["ProcessingJobArn"].rsplit("/", 1)[-1]
    job = sagemaker.describe_processing_job(ProcessingJobName=job_name)
    assert job["ProcessingJobStatus"] == "Completed"
    assert job["ExitMessage"] == "Completed: Job completed successfully with no violations."
    assert job["MonitoringScheduleArn"].endswith(":monitoring-schedule/diversity-ok")
    assert job["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] == (
        f"s3://{world.bucket}/reports/{world.endpoint}/diversity-ok/2027/10/31/09"
    )
    log = monitoring_scheduler.execution_log_path(platform, execution).read_text()
    assert "fake monitor: mode=ok records=7" in log

    described = sagemaker.describe_monitoring_schedule(MonitoringScheduleName="diversity-ok")
    assert described["MonitoringScheduleStatus"] == "Scheduled"
    assert described["MonitoringType"] == "DataQuality"
    assert described["LastMonitoringExecutionSummary"]["MonitoringExecutionStatus"] == "Completed"
    assert described["LastMonitoringExecutionSummary"]["ProcessingJobArn"] == execution["ProcessingJobArn"]


def test_metrics_file_is_published_to_the_model_monitor_namespace(stack, sagemaker):
    platform, _ = stack
    world = World(platform)
    world.capture(8, 6)
    assert run_once(stack, sagemaker, world)["MonitoringExecutionStatus"] == "Completed"

    points = platform.aws_client("cloudwatch").get_metric_statistics(
        Namespace="aws/sagemaker/Endpoints/data-metrics", MetricName="captured_records",
        Dimensions=[{"Name": "Endpoint", "Value": world.endpoint}, {"Name": "MonitoringSchedule", "Value": "diversity-ok"}],
        StartTime=utc(8), EndTime=utc(10), Period=3600, Statistics=["Sum", "SampleCount"],
    )["Datapoints"]
    assert [(point["Timestamp"], point["Sum"], point["SampleCount"]) for point in points] == [(utc(9), 6.0, 1.0)]


def test_publishing_can_be_turned_off_by_the_job_environment(stack, sagemaker):
    platform, _ = stack
    world = World(platform)
    world.capture(8, 6)
    execution = run_once(stack, sagemaker, world, environment={"publish_cloudwatch_metrics": "Disabled"})
    assert execution["MonitoringExecutionStatus"] == "Completed"
    metrics = platform.aws_client("cloudwatch").list_metrics(
        Namespace="aws/sagemaker/Endpoints/data-metrics",
        Dimensions=[{"Name": "Endpoint", "Value": world.endpoint}],
    )["Metrics"]
    assert metrics == []


def test_a_message_starting_completed_with_violations_marks_the_execution(stack, sagemaker):
    platform, _ = stack
    world = World(platform)
    world.capture(8, 2)
    execution = run_once(stack, sagemaker, world, mode="violations")
    assert execution["MonitoringExecutionStatus"] == "CompletedWithViolations"
    assert world.report("diversity-violations", 9, "constraint_violations.json")["violations"][0]["constraint_check_type"] == "baseline_drift_check"


def test_a_non_zero_exit_fails_with_the_containers_message_and_uploads_nothing(stack, sagemaker):
    platform, _ = stack
    world = World(platform)
    world.capture(8, 2)
    execution = run_once(stack, sagemaker, world, mode="fail")
    assert execution["MonitoringExecutionStatus"] == "Failed"
    assert execution["FailureReason"] == (
        "AlgorithmError: Error: the validation set s3://recs-monitor/validation/sessions.jsonl does not exist"
    )
    job = sagemaker.describe_processing_job(ProcessingJobName=execution["ProcessingJobArn"].rsplit("/", 1)[-1])
    assert job["ProcessingJobStatus"] == "Failed"
    assert job["ExitMessage"].startswith("Error: the validation set")
    assert world.report_keys() == []
    assert "failing on purpose" in monitoring_scheduler.execution_log_path(platform, execution).read_text()


def test_a_job_past_max_runtime_is_stopped_not_failed(stack, sagemaker):
    """AWS stops a job past MaxRuntimeInSeconds ([API] ProcessingStoppingCondition: "After the condition is
    met, the processing job is stopped"); the execution is Stopped with AWS's words for that status."""
    platform, _ = stack
    world = World(platform)
    world.capture(8, 2)
    execution = run_once(stack, sagemaker, world, mode="sleep", max_runtime=1)
    assert execution["MonitoringExecutionStatus"] == "Stopped"
    assert execution["FailureReason"] == "The job exceeded max runtime or was manually stopped"
    job = sagemaker.describe_processing_job(ProcessingJobName=execution["ProcessingJobArn"].rsplit("/", 1)[-1])
    assert job["ProcessingJobStatus"] == "Stopped" and "FailureReason" not in job
    assert world.report_keys() == []


def test_no_capture_in_the_window_fails_before_any_container_runs(stack, sagemaker):
    platform, _ = stack
    world = World(platform)
    world.capture(7, 3)  # captured, but not in [08:00, 09:00)
    execution = run_once(stack, sagemaker, world)
    assert execution["MonitoringExecutionStatus"] == "Failed"
    assert execution["FailureReason"] == "Job inputs had no data"
    assert "ProcessingJobArn" not in execution
    assert list(platform.jobs_dir.iterdir()) == []


def test_the_kits_wider_window_keeps_a_quiet_hour_from_stopping_the_monitor(stack, sagemaker):
    # Issue 14, finding 10: the same quiet 08:00-09:00 as above, but with the window the kit's schedules
    # use (period + 2 h): the 07:xx replay traffic is in it, so the container runs and replays again.
    from diversity_monitor.setup.schedule import analysis_window_config

    platform, _ = stack
    world = World(platform)
    world.capture(7, 3)
    execution = run_once(stack, sagemaker, world, **analysis_window_config(HOURLY))
    assert execution["MonitoringExecutionStatus"] == "Completed", execution.get("FailureReason")


def test_a_malformed_metrics_line_fails_the_execution_and_publishes_nothing(stack, sagemaker):
    platform, _ = stack
    world = World(platform)
    world.capture(8, 2)
    execution = run_once(stack, sagemaker, world, mode="bad-metrics")
    assert execution["MonitoringExecutionStatus"] == "Failed"
    assert execution["FailureReason"] == "CloudWatch metrics file rejected: cloudwatch_metrics.jsonl line 1: has no Timestamp"
    metrics = platform.aws_client("cloudwatch").list_metrics(
        Namespace="aws/sagemaker/Endpoints/data-metrics", Dimensions=[{"Name": "Endpoint", "Value": world.endpoint}],
    )["Metrics"]
    assert metrics == []


def test_stopped_schedules_do_not_fire_and_start_resumes_them(stack, sagemaker):
    platform, _ = stack
    world = World(platform)
    for hour in (8, 9, 10):
        world.capture(hour, 1)
    sagemaker.create_monitoring_schedule(MonitoringScheduleName="on-off", MonitoringScheduleConfig=world.schedule_config())
    sagemaker.stop_monitoring_schedule(MonitoringScheduleName="on-off")
    assert sagemaker.describe_monitoring_schedule(MonitoringScheduleName="on-off")["MonitoringScheduleStatus"] == "Stopped"
    platform.advance(90 * 60)  # 09:00 and 10:00 pass while stopped
    assert executions(sagemaker, "on-off") == []
    sagemaker.start_monitoring_schedule(MonitoringScheduleName="on-off")
    platform.advance(60 * 60)  # 11:00
    assert [item["ScheduledTime"] for item in executions(sagemaker, "on-off")] == [utc(11)]


def test_daily_and_every_n_hours_schedules_fire_on_their_hours(stack, sagemaker):
    platform, _ = stack
    world = World(platform)
    for hour in range(8, 15):
        world.capture(hour, 1)
    sagemaker.create_monitoring_schedule(MonitoringScheduleName="daily", MonitoringScheduleConfig=world.schedule_config("cron(0 12 ? * * *)"))
    sagemaker.create_monitoring_schedule(MonitoringScheduleName="every-2h", MonitoringScheduleConfig=world.schedule_config("cron(0 0/2 ? * * *)"))
    platform.advance(6 * 3600)  # to 14:30
    assert [item["ScheduledTime"] for item in executions(sagemaker, "daily")] == [utc(12)]
    assert sorted(item["ScheduledTime"] for item in executions(sagemaker, "every-2h")) == [utc(10), utc(12), utc(14)]
    # Their windows: daily as AWS's BYOC inputs page documents it (05:00 run -> 06:00 the day before to 05:00),
    # every N hours the N hours before the run.
    daily = world.report("daily", 12, "contract.json")["env"]
    assert (daily["start_time"], daily["end_time"]) == ("2027-10-30T13:00:00Z", "2027-10-31T12:00:00Z")
    assert world.report("daily", 12, "contract.json")["records"] == 4  # hours 08-11 captured
    every_2h = world.report("every-2h", 14, "contract.json")["env"]
    assert (every_2h["start_time"], every_2h["end_time"]) == ("2027-10-31T12:00:00Z", "2027-10-31T14:00:00Z")
    assert world.report("every-2h", 14, "contract.json")["records"] == 2


def test_now_runs_once_on_the_next_minute_over_its_offsets(stack, sagemaker):
    platform, _ = stack
    world = World(platform)
    world.capture(6, 4)
    config = world.schedule_config("NOW", DataAnalysisStartTime="-PT3H", DataAnalysisEndTime="-PT1H")
    sagemaker.create_monitoring_schedule(MonitoringScheduleName="once", MonitoringScheduleConfig=config)
    platform.advance(2 * 3600)
    (execution,) = executions(sagemaker, "once")
    assert execution["ScheduledTime"] == utc(8, 31)
    assert execution["MonitoringExecutionStatus"] == "Completed"
    contract = world.report("once", 8, "contract.json")
    assert (contract["env"]["start_time"], contract["env"]["end_time"]) == ("2027-10-31T05:31:00Z", "2027-10-31T07:31:00Z")
    assert contract["records"] == 4


# --- validation on create -------------------------------------------------------------------


@pytest.mark.parametrize("expression, problem", [
    ("cron(0 * * * ? *)", "is not one of the forms Model Monitor supports"),  # EventBridge style
    ("cron(15 * ? * * *)", "is not one of the forms Model Monitor supports"),
    ("cron(0 * ? * MON *)", "is not one of the forms Model Monitor supports"),
    ("rate(1 hour)", "is not one of the forms Model Monitor supports"),
    ("0 * * * *", "is not one of the forms Model Monitor supports"),
    ("cron(0 24 ? * * *)", "has hour 24; hours are 0-23"),
    ("cron(0 0/25 ? * * *)", "repeats every 25 hours; the interval is 1-24"),
])
def test_create_rejects_schedule_expressions_model_monitor_does_not_support(shared_stack, shared_sagemaker, expression, problem):
    world = World(shared_stack[0])
    with pytest.raises(ClientError) as raised:
        shared_sagemaker.create_monitoring_schedule(MonitoringScheduleName="bad", MonitoringScheduleConfig=world.schedule_config(expression))
    error = raised.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert error["Message"].startswith(f"Invalid ScheduleExpression {expression!r}: it {problem}")
    assert shared_sagemaker.list_monitoring_schedules(NameContains="bad")["MonitoringScheduleSummaries"] == []


def _create_error(client, config: dict, name: str = "bad") -> dict:
    with pytest.raises(ClientError) as raised:
        client.create_monitoring_schedule(MonitoringScheduleName=name, MonitoringScheduleConfig=config)
    return raised.value.response["Error"]


@pytest.mark.parametrize("capture, state", [(False, "EnableCapture false"), (None, "no DataCaptureConfig")])
def test_create_rejects_an_endpoint_without_data_capture(shared_stack, shared_sagemaker, capture, state):
    world = World(shared_stack[0], capture=capture)
    error = _create_error(shared_sagemaker, world.schedule_config())
    assert (error["Code"], error["Message"]) == ("ValidationException", (
        f"Endpoint {world.endpoint!r} does not have data capture enabled (its endpoint config "
        f"'{world.endpoint}-config' has {state}): a monitoring schedule would have no data to read"))


def test_create_rejects_an_endpoint_that_does_not_exist(shared_stack, shared_sagemaker):
    world = World(shared_stack[0])
    config = world.schedule_config()
    config["MonitoringJobDefinition"]["MonitoringInputs"][0]["EndpointInput"]["EndpointName"] = "no-such-endpoint"
    error = _create_error(shared_sagemaker, config)
    # The wording hosting answers DescribeEndpoint with (test_local_stack), as SageMaker does.
    arn = "arn:aws:sagemaker:eu-west-1:123456789012:endpoint/no-such-endpoint"
    assert (error["Code"], error["Message"]) == ("ValidationException", f'Could not find endpoint "{arn}".')


def test_create_rejects_an_image_uri_that_maps_to_no_dockerfile(shared_stack, shared_sagemaker):
    world = World(shared_stack[0])
    error = _create_error(shared_sagemaker, world.schedule_config(image="123456789012.dkr.ecr.eu-west-1.amazonaws.com/unknown-monitor:v1"))
    assert error["Code"] == "ValidationException"
    assert error["Message"].startswith(
        "MonitoringAppSpecification.ImageUri: image '123456789012.dkr.ecr.eu-west-1.amazonaws.com/unknown-monitor:v1': "
        "repository 'unknown-monitor' maps to no Dockerfile"
    )


@pytest.mark.parametrize("change, message", [
    ({"max_runtime": 3601}, "StoppingCondition.MaxRuntimeInSeconds 3601 exceeds the schedule's period (3600 s for cron(0 * ? * * *))"),
    ({"expression": "NOW"}, "ScheduleExpression NOW needs both DataAnalysisStartTime and DataAnalysisEndTime"),
    ({"DataAnalysisStartTime": "-PT1H", "DataAnalysisEndTime": "-PT2H"}, "DataAnalysisStartTime '-PT1H' must come before DataAnalysisEndTime '-PT2H'"),
    ({"DataAnalysisStartTime": "-PT26H"}, "DataAnalysisStartTime must not precede DataAnalysisEndTime by more than 24 hours"),
    ({"DataAnalysisStartTime": "an hour ago"}, "DataAnalysisStartTime 'an hour ago' is not an ISO-8601 duration like -PT1H or -P1D"),
])
def test_create_rejects_windows_and_runtimes_the_api_does_not_allow(shared_stack, shared_sagemaker, change, message):
    world = World(shared_stack[0])
    expression = change.pop("expression", HOURLY)
    error = _create_error(shared_sagemaker, world.schedule_config(expression, **change))
    assert (error["Code"], error["Message"]) == ("ValidationException", message)


def test_create_rejects_a_local_path_outside_opt_ml_processing(shared_stack, shared_sagemaker):
    world = World(shared_stack[0])
    config = world.schedule_config()
    config["MonitoringJobDefinition"]["MonitoringOutputConfig"]["MonitoringOutputs"][0]["S3Output"]["LocalPath"] = "/tmp/out"
    error = _create_error(shared_sagemaker, config)
    assert error["Message"] == "MonitoringOutputs[0].S3Output.LocalPath '/tmp/out' must be under /opt/ml/processing/"


def test_names_are_unique_and_missing_schedules_are_not_found(shared_stack, shared_sagemaker):
    world = World(shared_stack[0])
    shared_sagemaker.create_monitoring_schedule(MonitoringScheduleName="dup", MonitoringScheduleConfig=world.schedule_config())
    assert _create_error(shared_sagemaker, world.schedule_config(), name="dup")["Code"] == "ResourceInUse"
    shared_sagemaker.delete_monitoring_schedule(MonitoringScheduleName="dup")
    for call in (shared_sagemaker.describe_monitoring_schedule, shared_sagemaker.delete_monitoring_schedule, shared_sagemaker.stop_monitoring_schedule):
        with pytest.raises(ClientError) as raised:
            call(MonitoringScheduleName="dup")
        assert raised.value.response["Error"]["Code"] == "ResourceNotFound"
    with pytest.raises(ClientError) as raised:
        shared_sagemaker.describe_processing_job(ProcessingJobName="model-monitoring-000000000000-missing")
    assert raised.value.response["Error"]["Code"] == "ResourceNotFound"


def test_update_replaces_the_config_and_keeps_creation_time(shared_stack, shared_sagemaker):
    world = World(shared_stack[0])
    config = world.schedule_config()
    shared_sagemaker.create_monitoring_schedule(MonitoringScheduleName="updated", MonitoringScheduleConfig=config)
    created = shared_sagemaker.describe_monitoring_schedule(MonitoringScheduleName="updated")
    assert created["MonitoringScheduleConfig"] == config
    assert "LastMonitoringExecutionSummary" not in created

    daily = world.schedule_config("cron(0 6 ? * * *)", max_runtime=7200)
    shared_sagemaker.update_monitoring_schedule(MonitoringScheduleName="updated", MonitoringScheduleConfig=daily)
    updated = shared_sagemaker.describe_monitoring_schedule(MonitoringScheduleName="updated")
    assert updated["MonitoringScheduleConfig"] == daily
    assert updated["CreationTime"] == created["CreationTime"]
    with pytest.raises(ClientError) as raised:
        shared_sagemaker.update_monitoring_schedule(MonitoringScheduleName="updated", MonitoringScheduleConfig=world.schedule_config("cron(0 6 * * ? *)"))
    error = raised.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert shared_sagemaker.describe_monitoring_schedule(MonitoringScheduleName="updated")["MonitoringScheduleConfig"] == daily


# --- listings ---------------------------------------------------------------------------------


def test_list_executions_filters_sorts_and_pages(stack, sagemaker):
    platform, _ = stack
    world = World(platform)
    for hour in range(8, 12):
        world.capture(hour, 1)
    sagemaker.create_monitoring_schedule(MonitoringScheduleName="hourly", MonitoringScheduleConfig=world.schedule_config())
    platform.advance(3 * 3600)  # 09:00, 10:00, 11:00

    first = sagemaker.list_monitoring_executions(EndpointName=world.endpoint, SortBy="ScheduledTime", SortOrder="Ascending", MaxResults=2)
    assert [item["ScheduledTime"] for item in first["MonitoringExecutionSummaries"]] == [utc(9), utc(10)]
    rest = sagemaker.list_monitoring_executions(EndpointName=world.endpoint, SortBy="ScheduledTime", SortOrder="Ascending",
                                                MaxResults=2, NextToken=first["NextToken"])
    assert [item["ScheduledTime"] for item in rest["MonitoringExecutionSummaries"]] == [utc(11)]
    assert "NextToken" not in rest

    newest_first = sagemaker.list_monitoring_executions(MonitoringScheduleName="hourly", ScheduledTimeAfter=utc(9))
    assert [item["ScheduledTime"] for item in newest_first["MonitoringExecutionSummaries"]] == [utc(11), utc(10)]
    assert sagemaker.list_monitoring_executions(EndpointName="other-endpoint")["MonitoringExecutionSummaries"] == []

    paginated = sagemaker.get_paginator("list_monitoring_executions").paginate(
        MonitoringScheduleName="hourly", PaginationConfig={"PageSize": 1})
    assert len([item for page in paginated for item in page["MonitoringExecutionSummaries"]]) == 3


def test_list_schedules_filters_by_endpoint_name_and_status(stack, sagemaker):
    world = World(stack[0])
    other = World(stack[0])
    sagemaker.create_monitoring_schedule(MonitoringScheduleName="alpha", MonitoringScheduleConfig=world.schedule_config())
    sagemaker.create_monitoring_schedule(MonitoringScheduleName="beta", MonitoringScheduleConfig=world.schedule_config())
    sagemaker.create_monitoring_schedule(MonitoringScheduleName="gamma", MonitoringScheduleConfig=other.schedule_config())
    sagemaker.stop_monitoring_schedule(MonitoringScheduleName="beta")

    def names(**filters):
        return [item["MonitoringScheduleName"] for item in sagemaker.list_monitoring_schedules(SortBy="Name", SortOrder="Ascending", **filters)["MonitoringScheduleSummaries"]]

    assert names() == ["alpha", "beta", "gamma"]
    assert names(EndpointName=world.endpoint) == ["alpha", "beta"]
    assert names(StatusEquals="Stopped") == ["beta"]
    assert names(NameContains="mm") == ["gamma"]
    summary = sagemaker.list_monitoring_schedules(NameContains="alpha")["MonitoringScheduleSummaries"][0]
    assert summary["MonitoringScheduleArn"].endswith(":monitoring-schedule/alpha")
    assert (summary["EndpointName"], summary["MonitoringScheduleStatus"], summary["MonitoringType"]) == (world.endpoint, "Scheduled", "DataQuality")
    with pytest.raises(ClientError) as raised:
        sagemaker.list_monitoring_schedules(NextToken="not-a-token")
    assert raised.value.response["Error"]["Code"] == "ValidationException"


def test_on_a_real_clock_jobs_run_on_workers_and_stopping_the_stack_stops_them(stack, sagemaker):
    platform, _ = stack
    world = World(platform)
    world.capture(8, 1)
    sagemaker.create_monitoring_schedule(MonitoringScheduleName="long", MonitoringScheduleConfig=world.schedule_config(mode="sleep"))
    scheduler = monitoring_scheduler.Scheduler(platform, inline=False)  # what install() builds for a RealClock
    (execution,) = scheduler.fire_due(utc(9))  # returns once the job is handed to a worker
    log = processing.container_log_path(platform, monitoring_scheduler.processing_job_name("long", utc(9)))
    deadline = time.monotonic() + 60
    while "mode=sleep" not in (log.read_text() if log.exists() else ""):  # wait for the container to be up
        assert time.monotonic() < deadline, f"the container never started; log: {log}"
        time.sleep(0.02)
    scheduler.shutdown()
    (execution,) = executions(sagemaker, "long")
    assert execution["MonitoringExecutionStatus"] == "Stopped"
    assert execution["FailureReason"] == "Stopped: the local stack stopped while the job was running"


# --- the pieces on their own --------------------------------------------------------------------


PROBE = """
import json, os, pathlib
import boto3
buckets = [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]]
out = pathlib.Path("output")  # relative: the image's WORKDIR is /opt/ml/processing
out.mkdir(exist_ok=True)
(out / "probe.json").write_text(json.dumps({
    "cwd": os.getcwd(), "buckets": buckets,
    "aws": {key: value for key, value in os.environ.items() if key.startswith("AWS_")},
}))
"""


def test_jobs_start_in_the_images_workdir_with_exactly_the_stacks_aws_settings(stack, tmp_path, monkeypatch):
    """A developer's shell may point boto3 elsewhere; a job the stack starts must not inherit that."""
    platform, _ = stack
    world = World(platform)
    for key, value in {"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true",
                       "AWS_PROFILE": "no-such-profile", "AWS_SESSION_TOKEN": "not-the-stacks"}.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "probe.py").write_text(PROBE)
    dockerfile = tmp_path / "Dockerfile.probe"
    dockerfile.write_text(f'FROM python:3.12-slim\nWORKDIR /opt/ml\nWORKDIR processing\nENTRYPOINT ["python", "{tmp_path / "probe.py"}"]\n')
    monkeypatch.setitem(images.LOCAL_IMAGES, "probe", str(dockerfile))
    job = processing.run_processing_job(platform, {
        "ProcessingJobName": "probe", "RoleArn": ROLE,
        "AppSpecification": {"ImageUri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/probe:1"},
        "ProcessingOutputConfig": {"Outputs": [{"OutputName": "out", "S3Output": {
            "S3Uri": f"s3://{world.bucket}/probe", "LocalPath": "/opt/ml/processing/output", "S3UploadMode": "EndOfJob"}}]},
    })
    assert job["ProcessingJobStatus"] == "Completed", (job, processing.container_log_path(platform, "probe").read_text())
    probe = json.loads(world.s3.get_object(Bucket=world.bucket, Key="probe/probe.json")["Body"].read())
    assert probe["cwd"] == str(processing.job_folder(platform, "probe").root / "processing")
    stack_settings = {key: value for key, value in platform.process_environment().items() if key.startswith("AWS_")}
    assert probe["aws"] == stack_settings
    assert world.bucket in probe["buckets"]  # through the stack's URL


def test_a_workdir_outside_opt_ml_cannot_be_mapped(tmp_path, monkeypatch):
    dockerfile = tmp_path / "Dockerfile.elsewhere"
    dockerfile.write_text('FROM python:3.12-slim\nWORKDIR /app\nENTRYPOINT ["python", "serve.py"]\n')
    monkeypatch.setitem(images.LOCAL_IMAGES, "elsewhere", str(dockerfile))
    with pytest.raises(images.ImageNotFound, match="ends in WORKDIR /app, outside /opt/ml"):
        images.resolve("123456789012.dkr.ecr.eu-west-1.amazonaws.com/elsewhere:1")


NOW = utc(9)


@pytest.mark.parametrize("line, problem", [
    ("not json", "not JSON"),
    ("[1]", "expected a JSON object, got list"),
    ('{"MetricName": "m", "Timestamp": "2027-10-31T09:00:00Z", "Value": 1, "Namespace": "x"}', "unknown keys ['Namespace']"),
    ('{"MetricName": "m", "Timestamp": "2027-10-31T09:00:00Z"}', "needs exactly one of Value or StatisticValues"),
    ('{"MetricName": "m", "Timestamp": "yesterday", "Value": 1}', "Timestamp 'yesterday' is not ISO-8601"),
    ('{"MetricName": "m", "Timestamp": "2027-10-01T09:00:00Z", "Value": 1}', "is outside what CloudWatch accepts"),
    ('{"MetricName": "m", "Timestamp": "2027-10-31T11:30:00Z", "Value": 1}', "is outside what CloudWatch accepts"),
    ('{"MetricName": "m", "Timestamp": "2027-10-31T09:00:00Z", "Value": NaN}', "values must be finite"),
    ('{"MetricName": "m", "Timestamp": "2027-10-31T09:00:00Z", "Value": "high"}', "Invalid type for parameter MetricData[0].Value"),
    ('{"MetricName": "", "Timestamp": "2027-10-31T09:00:00Z", "Value": 1}', "Invalid length for parameter MetricData[0].MetricName"),
    # CloudWatch's maximums, which botocore's client-side validation leaves to the service:
    ('{"MetricName": "%s", "Timestamp": "2027-10-31T09:00:00Z", "Value": 1}' % ("m" * 256),
     "at 'metricData.1.member.metricName' failed to satisfy constraint: Member must have length less than or equal to 255"),
    ('{"MetricName": "m", "Timestamp": "2027-10-31T09:00:00Z", "Value": 1, "Dimensions": %s}'
     % json.dumps([{"Name": f"d{n}", "Value": "v"} for n in range(31)]),
     "at 'metricData.1.member.dimensions' failed to satisfy constraint: Member must have length less than or equal to 30"),
    ('{"MetricName": "m", "Timestamp": "2027-10-31T09:00:00Z", "Value": 1, "Dimensions": [{"Name": "%s", "Value": "v"}]}'
     % ("d" * 256), "at 'metricData.1.member.dimensions.1.member.name' failed to satisfy constraint"),
    ('{"MetricName": "m", "Timestamp": "2027-10-31T09:00:00Z", "Value": 1, "Unit": "Parsecs"}',
     "at 'metricData.1.member.unit' failed to satisfy constraint: Member must satisfy enum value set"),
    ('{"MetricName": "m", "Timestamp": "2027-10-31T09:00:00Z", "Value": 1e200}', "outside -2^360..2^360"),
    ('{"MetricName": "m", "Timestamp": "2027-10-31T09:00:00Z", "StatisticValues": '
     '{"SampleCount": 1, "Sum": Infinity, "Minimum": 1, "Maximum": 1}}', "StatisticValues.Sum is inf: values must be finite"),
])
def test_metric_lines_that_break_the_documented_shape_are_named(line, problem):
    with pytest.raises(processing.MetricsFileError) as raised:
        processing.metric_datum(line, NOW)
    assert problem in str(raised.value)


def test_metric_lines_in_the_documented_shape_become_datums():
    datum = processing.metric_datum(json.dumps({
        "MetricName": "top10_category_diversity_mean", "Timestamp": "2027-10-31T09:00:00Z",
        "Dimensions": [{"Name": "Endpoint", "Value": "e"}], "StatisticValues": {"SampleCount": 2, "Sum": 12.4, "Minimum": 6, "Maximum": 6.4},
        "Unit": "None"}), NOW)
    assert datum["Timestamp"] == NOW and math.isclose(datum["StatisticValues"]["Sum"], 12.4)


def test_metric_data_is_chunked_within_put_metric_data_limits():
    datum = {"MetricName": "m", "Timestamp": NOW, "Value": 1.0}
    assert [len(chunk) for chunk in metric_data.chunk_metric_data([datum] * 2500)] == [1000, 1000, 500]
    big = {**datum, "Dimensions": [{"Name": f"d{n}", "Value": "v" * 250} for n in range(30)]}
    chunks = list(metric_data.chunk_metric_data([big] * 200))
    assert sum(map(len, chunks)) == 200 and len(chunks) > 1
    assert all(len(json.dumps(chunk, default=str)) < metric_data.MAX_REQUEST_BYTES for chunk in chunks)


def test_a_restart_ends_executions_the_stopped_stack_left_running(tmp_path, moto_url):
    platform = LocalPlatform(tmp_path / "state", SimulatedClock(START), moto_url, "http://127.0.0.1:9", REGION)
    platform.store.put(monitoring.EXECUTION, "s/2027-10-31T08:00:00Z", {
        "MonitoringScheduleName": "s", "ScheduledTime": "2027-10-31T08:00:00Z", "CreationTime": "2027-10-31T08:00:00Z",
        "LastModifiedTime": "2027-10-31T08:00:00Z", "MonitoringExecutionStatus": "InProgress", "EndpointName": "e",
    })
    assert monitoring_scheduler.recover_interrupted(platform) == 1
    (execution,) = platform.store.list(monitoring.EXECUTION)
    assert execution["MonitoringExecutionStatus"] == "Failed"
    assert "stopped while this execution was running" in execution["FailureReason"]

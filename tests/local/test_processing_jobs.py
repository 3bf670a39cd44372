"""Processing jobs and EventBridge Scheduler, locally: the API through boto3, the firing on the clock.

A real gateway on a loopback port serves SageMaker (processing_jobs, monitoring for
DescribeProcessingJob) and passes Scheduler to the session's moto server, which keeps the
schedules; the stand-in fires them on a simulated clock. The image is the small test container
(tests/fixtures/monitoring/fake_monitor.py), which records what it was given in contract.json.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from datetime import datetime, timezone

import pytest
from botocore.exceptions import ClientError

from diversity_monitor.local import eventbridge_scheduler, images, monitoring, processing_jobs
from diversity_monitor.local.clock import SimulatedClock
from diversity_monitor.local.gateway import GatewayServer
from diversity_monitor.local.platform import LocalPlatform, bind_loopback
from helpers.aws import REGION, stack_client
from helpers.paths import FIXTURES

START = datetime(2027, 10, 31, 8, 30, tzinfo=timezone.utc)
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/fake-monitor:test"
ROLE = "arn:aws:iam::123456789012:role/service-role/AmazonSageMaker-ExecutionRole"
SCHEDULER_ROLE = "arn:aws:iam::123456789012:role/diversity-monitor-scheduler"


@contextlib.contextmanager
def running_stack(folder, moto_url):
    dockerfile = folder / "Dockerfile.fake-monitor"
    dockerfile.write_text(f'FROM python:3.12-slim\nENTRYPOINT ["python", "{FIXTURES / "monitoring" / "fake_monitor.py"}"]\n')
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(images.LOCAL_IMAGES, "fake-monitor", str(dockerfile))
        sock = bind_loopback(0)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        platform = LocalPlatform(folder / "state", SimulatedClock(START), moto_url, url, REGION)
        for module in (monitoring, processing_jobs, eventbridge_scheduler):
            module.install(platform)
        gateway = GatewayServer(platform, sock)
        try:
            yield platform
        finally:
            platform.stop()
            gateway.stop()


@pytest.fixture
def stack(tmp_path, moto_url):
    with running_stack(tmp_path, moto_url) as platform:
        yield platform


def client(service: str, platform: LocalPlatform):
    return stack_client(service, platform)


def job_request(bucket: str, name: str, mode: str = "ok", max_runtime: int = 600) -> dict:
    return {
        "ProcessingJobName": name,
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 20}},
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime},
        "AppSpecification": {"ImageUri": IMAGE, "ContainerArguments": ["--mode", mode]},
        "Environment": {"dataset_source": "/opt/ml/processing/input/endpoint", "output_path": "/opt/ml/processing/output",
                        "sagemaker_endpoint_name": "recs", "sagemaker_monitoring_schedule_name": "plain",
                        "metric_time": "<aws.scheduler.scheduled-time>", "end_time": "<aws.scheduler.scheduled-time>"},
        "ProcessingOutputConfig": {"Outputs": [{"OutputName": "report", "S3Output": {
            "S3Uri": f"s3://{bucket}/reports/", "LocalPath": "/opt/ml/processing/output", "S3UploadMode": "EndOfJob"}}]},
        "RoleArn": ROLE,
    }


def bucket(platform) -> str:
    name = f"jobs-{uuid.uuid4().hex[:8]}"
    platform.aws_client("s3").create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    return name


def test_scheduler_fires_create_processing_job_at_each_hour_with_its_context(stack):
    name, target_bucket = f"plain-{uuid.uuid4().hex[:6]}", bucket(stack)
    request = job_request(target_bucket, "diversity-<aws.scheduler.execution-id>")
    scheduler = client("scheduler", stack)
    scheduler.create_schedule(
        Name=name, ScheduleExpression="cron(0 * * * ? *)", FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": "arn:aws:scheduler:::aws-sdk:sagemaker:createProcessingJob", "RoleArn": SCHEDULER_ROLE,
                "Input": json.dumps(request)})
    stack.advance(90 * 60)  # 08:30 -> 10:00: runs at 09:00 and 10:00
    fired = eventbridge_scheduler.invocations(stack, name)
    assert [item["ScheduledTime"] for item in fired] == ["2027-10-31T09:00:00Z", "2027-10-31T10:00:00Z"]
    assert all(item["Outcome"] == "Invoked" and item["PassedRoleArn"] == ROLE for item in fired)
    sagemaker = client("sagemaker", stack)
    job_name = fired[0]["Result"]["ProcessingJobArn"].rsplit("/", 1)[-1]
    assert job_name == f"diversity-{fired[0]['ExecutionId']}"
    job = sagemaker.describe_processing_job(ProcessingJobName=job_name)
    assert job["ProcessingJobStatus"] == "Completed"
    assert job["Environment"]["end_time"] == "2027-10-31T09:00:00Z"
    contract = json.loads(stack.aws_client("s3").get_object(Bucket=target_bucket, Key="reports/contract.json")["Body"].read())
    assert contract["env"]["end_time"] == "2027-10-31T10:00:00Z"  # the last run's upload
    listed = sagemaker.list_processing_jobs(NameContains="diversity-")["ProcessingJobSummaries"]
    mine = {f"diversity-{item['ExecutionId']}" for item in fired}
    assert {item["ProcessingJobName"] for item in listed} >= mine
    assert all(item["ProcessingJobStatus"] == "Completed" for item in listed if item["ProcessingJobName"] in mine)
    scheduler.delete_schedule(Name=name)


def test_a_target_input_the_api_refuses_is_recorded_not_run(stack):
    name = f"broken-{uuid.uuid4().hex[:6]}"
    request = job_request(bucket(stack), "diversity-<aws.scheduler.execution-id>")
    del request["RoleArn"]
    client("scheduler", stack).create_schedule(
        Name=name, ScheduleExpression="cron(0 * * * ? *)", FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": "arn:aws:scheduler:::aws-sdk:sagemaker:createProcessingJob", "RoleArn": SCHEDULER_ROLE,
                "Input": json.dumps(request)})
    stack.advance(30 * 60)
    (fired,) = eventbridge_scheduler.invocations(stack, name)
    assert fired["Outcome"] == "Failed" and "RoleArn" in fired["Error"]
    client("scheduler", stack).delete_schedule(Name=name)


def test_create_processing_job_checks_what_the_service_checks_and_overrun_stops_the_job(stack):
    sagemaker, target_bucket = client("sagemaker", stack), bucket(stack)
    bad = job_request(target_bucket, "bad-path")
    bad["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["LocalPath"] = "/tmp/out"
    with pytest.raises(ClientError, match="must be under /opt/ml/processing/"):
        sagemaker.create_processing_job(**bad)
    bad["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["LocalPath"] = "/opt/ml/processing/../../../etc"
    with pytest.raises(ClientError, match="leaves /opt/ml/processing once normalised"):
        sagemaker.create_processing_job(**bad)
    sagemaker.create_processing_job(**{**job_request(target_bucket, "sleeper", mode="sleep", max_runtime=1),
                                       "Environment": {**job_request(target_bucket, "x")["Environment"],
                                                       "end_time": "2027-10-31T09:00:00Z", "metric_time": "2027-10-31T09:00:00Z"}})
    with pytest.raises(ClientError, match="already exists"):
        sagemaker.create_processing_job(**job_request(target_bucket, "sleeper"))
    deadline = time.monotonic() + 60  # the job runs on a worker: wait for MaxRuntimeInSeconds to stop it
    while (job := sagemaker.describe_processing_job(ProcessingJobName="sleeper"))["ProcessingJobStatus"] == "InProgress":
        assert time.monotonic() < deadline, "the job outlived its MaxRuntimeInSeconds"
        time.sleep(0.2)
    assert job["ProcessingJobStatus"] == "Stopped" and "FailureReason" not in job

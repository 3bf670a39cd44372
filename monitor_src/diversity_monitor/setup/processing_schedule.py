"""The path for teams without Model Monitor: the same container as an hourly Processing job.

EventBridge Scheduler starts `CreateProcessingJob` every hour through its universal target
(`arn:aws:scheduler:::aws-sdk:sagemaker:createProcessingJob`); the target's `Input` is the
CreateProcessingJob request as JSON. Scheduler fills its context attributes in that JSON at each
run: `<aws.scheduler.execution-id>` makes the job name unique, `<aws.scheduler.scheduled-time>`
(e.g. 2027-10-31T09:00:00Z) becomes the container's `end_time`. Scheduler cannot format that time
into a path, so the job's S3 output is `<reports>/<endpoint>/<schedule>/` and the container's
`--output-hour-folder` writes under `yyyy/mm/dd/HH/` of `end_time`: the reports land exactly where
Model Monitor puts them, and `report_history`, notebook 04 and the runbooks read them unchanged.

The job differs from the Model Monitor run only in what the platform would otherwise supply:
`--endpoint-name` and `--put-metric-data` (the job publishes its own metrics, in the same
namespace and with the same `Endpoint` / `MonitoringSchedule` dimensions, the latter set to the
Scheduler schedule's name through `sagemaker_monitoring_schedule_name`), and the baseline staged
as a ProcessingInput. So `alarms.apply_alarms` with `schedule_name` = the Scheduler
schedule's name watches it unchanged.

Both requests are checked against the `sagemaker` and `scheduler` service models shipped in
botocore (`service_schema`: shapes, maximums, enums and patterns): the job request once as sent
(placeholders in place) and once rendered with sample context values.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass

import boto3
from botocore.exceptions import ClientError

from diversity_monitor.aws import service_schema
from diversity_monitor.setup.endpoint_support import check_supported
from diversity_monitor.setup.schedule import MonitorSpec, cluster_config

UNIVERSAL_TARGET = "arn:aws:scheduler:::aws-sdk:sagemaker:createProcessingJob"
HOURLY_SCHEDULER = "cron(0 * * * ? *)"  # EventBridge Scheduler's six-field cron: minute 0 of every hour
EXECUTION_ID = "<aws.scheduler.execution-id>"
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
SAMPLE_CONTEXT = {EXECUTION_ID: "d32c5kddcf5bb8c3", SCHEDULED_TIME: "2027-10-31T09:00:00Z"}
JOB_PREFIX = "diversity-"  # job names: this + Scheduler's execution id (permissions.py scopes the scheduler role to it)
BASELINE_LOCAL = "/opt/ml/processing/baseline"
OUTPUT_LOCAL = "/opt/ml/processing/output"


@dataclass(frozen=True)
class SchedulerSpec:
    schedule_name: str  # also the MonitoringSchedule metric dimension
    scheduler_role_arn: str  # assumed by Scheduler; needs sagemaker:CreateProcessingJob + iam:PassRole
    group_name: str = "default"
    schedule_expression: str = HOURLY_SCHEDULER
    timezone: str = "UTC"
    # The endpoint's DataCaptureConfig.DestinationS3Uri: the job reads the hour's live traffic there
    # (`--capture-s3-uri`), since no platform stages it. None: replay figures only.
    capture_s3_uri: str | None = None


def validate(service: str, operation: str, request: dict, *, template: bool = False) -> dict:
    """The service model's check of a request; raises service_schema.RequestInvalid.

    A template (context attributes still in place) is checked for shape only; its rendered form
    gets the whole check.
    """
    return service_schema.validate_request(service, operation, request, constraints=not template)


def processing_job_request(monitor: MonitorSpec, job_name: str = f"{JOB_PREFIX}{EXECUTION_ID}",
                           scheduled_time: str = SCHEDULED_TIME, schedule_name: str | None = None,
                           capture_s3_uri: str | None = None) -> dict:
    """CreateProcessingJob for one run of the monitor outside Model Monitor."""
    schedule_name = schedule_name or monitor.schedule_name
    arguments = ["--endpoint-name", monitor.endpoint_name, *monitor.container_arguments(), "--put-metric-data",
                 "--output-hour-folder"]
    if capture_s3_uri:
        arguments += ["--capture-s3-uri", capture_s3_uri]
    environment = {
        "end_time": scheduled_time,
        "metric_time": scheduled_time,
        "sagemaker_monitoring_schedule_name": schedule_name,
        **monitor.environment,
    }
    inputs = []
    if monitor.baseline_s3_uri:
        base = monitor.baseline_s3_uri.rstrip("/")
        inputs.append({"InputName": "baseline", "S3Input": {
            "S3Uri": base + "/", "LocalPath": BASELINE_LOCAL, "S3DataType": "S3Prefix", "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated"}})
        environment["baseline_statistics"] = f"{BASELINE_LOCAL}/statistics.json"
        environment["baseline_constraints"] = f"{BASELINE_LOCAL}/constraints.json"
    request = {
        "ProcessingJobName": job_name,
        "ProcessingResources": {"ClusterConfig": cluster_config(monitor)},
        "StoppingCondition": {"MaxRuntimeInSeconds": monitor.max_runtime_seconds},
        "AppSpecification": {"ImageUri": monitor.image_uri, "ContainerArguments": arguments},
        "Environment": environment,
        "ProcessingOutputConfig": {"Outputs": [{"OutputName": "report", "S3Output": {
            # Model Monitor's layout up to the schedule; --output-hour-folder adds yyyy/mm/dd/HH of end_time.
            "S3Uri": "/".join([monitor.reports_s3_uri.rstrip("/"), monitor.endpoint_name, schedule_name]) + "/",
            "LocalPath": OUTPUT_LOCAL, "S3UploadMode": "EndOfJob"}}],
            **({"KmsKeyId": monitor.output_kms_key} if monitor.output_kms_key else {})},
        "RoleArn": monitor.role_arn,
    }
    if monitor.network_config():
        request["NetworkConfig"] = monitor.network_config()
    if inputs:
        request["ProcessingInputs"] = inputs
    validate("sagemaker", "CreateProcessingJob", request, template=True)
    validate("sagemaker", "CreateProcessingJob", render(request))  # as Scheduler will send it
    return request


def render(request: dict, context: dict[str, str] = SAMPLE_CONTEXT) -> dict:
    """The request as Scheduler will send it at one run (placeholders replaced)."""
    text = json.dumps(request)
    for placeholder, value in context.items():
        text = text.replace(placeholder, value)
    return json.loads(text)


def schedule_request(monitor: MonitorSpec, scheduler: SchedulerSpec) -> dict:
    """CreateSchedule (Scheduler) whose target starts the Processing job each hour."""
    job = processing_job_request(monitor, schedule_name=scheduler.schedule_name, capture_s3_uri=scheduler.capture_s3_uri)
    request = {
        "Name": scheduler.schedule_name,
        "GroupName": scheduler.group_name,
        "ScheduleExpression": scheduler.schedule_expression,
        "ScheduleExpressionTimezone": scheduler.timezone,
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "State": "ENABLED",
        "Description": f"Hourly diversity monitor for {monitor.endpoint_name} as a Processing job (no Model Monitor).",
        "Target": {
            "Arn": UNIVERSAL_TARGET,
            "RoleArn": scheduler.scheduler_role_arn,
            "Input": json.dumps(job),
            # A run that cannot start is not retried into the next hour's window.
            "RetryPolicy": {"MaximumEventAgeInSeconds": 900, "MaximumRetryAttempts": 3},
        },
    }
    return validate("scheduler", "CreateSchedule", request)


def requests(monitor: MonitorSpec, scheduler: SchedulerSpec) -> dict:
    """Everything the notebook shows and saves: the schedule, the job as sent, one rendered run."""
    schedule = schedule_request(monitor, scheduler)
    job = json.loads(schedule["Target"]["Input"])
    return {"CreateSchedule": schedule, "CreateProcessingJob": job, "CreateProcessingJob (rendered)": render(copy.deepcopy(job))}


def apply_processing_schedule(monitor: MonitorSpec, scheduler: SchedulerSpec, client=None, sagemaker_client=None) -> str:
    """Create the Scheduler schedule, or update it when it exists. Returns "created" or "updated"."""
    client = client or boto3.client("scheduler")
    request = schedule_request(monitor, scheduler)
    check_supported(monitor.endpoint_name, sagemaker_client)
    try:
        client.get_schedule(Name=scheduler.schedule_name, GroupName=scheduler.group_name)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        client.create_schedule(**request)
        return "created"
    client.update_schedule(**request)
    return "updated"

"""Model Monitor, locally: the scheduler that fires monitoring schedules and runs their executions.

On each clock minute `Scheduler` fires every `Scheduled` schedule whose cron expression matches;
each run goes through the steps monitoring.py's docstring lists (execution, capture lookup,
Processing job, metrics, final status). A simulated clock runs jobs inline; a real one on workers.
"""

from __future__ import annotations

import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePosixPath

from botocore.exceptions import BotoCoreError, ClientError

from diversity_monitor.aws import container_paths
from diversity_monitor.aws.schedule_expression import (
    Window,
    analysis_window,
    parse_schedule_expression,
)
from diversity_monitor.clock import iso_z
from diversity_monitor.conventions import COMPLETED_WITH_VIOLATIONS, NO_CAPTURE_FAILURE, STOPPED_EXECUTION_REASON
from diversity_monitor.local import processing
from diversity_monitor.local.errors import ValidationError
from diversity_monitor.local.monitoring import (
    DEFAULT_MAX_RUNTIME,
    EXECUTION,
    SCHEDULE,
    capture_config,
    executions_of,
    moment_of,
)
from diversity_monitor.storage import S3Location

log = logging.getLogger(__name__)

BASELINE_STATISTICS_DIR = container_paths.PROCESSING_INPUT_BASELINE / "stats"
BASELINE_CONSTRAINTS_DIR = container_paths.PROCESSING_INPUT_BASELINE / "constraints"
ENDPOINT_DATASET_FORMAT = {"sagemakerCaptureJson": {"captureIndexNames": ["endpointInput", "endpointOutput"]}}
MAX_CATCH_UP = timedelta(hours=1)  # a real clock's late tick still fires the minutes it skipped
NO_DATA = NO_CAPTURE_FAILURE  # the platform's own failure, before any container starts


def execution_key(schedule_name: str, scheduled_time: datetime) -> str:
    return f"{schedule_name}/{iso_z(scheduled_time)}"


def processing_job_name(schedule_name: str, scheduled_time: datetime) -> str:
    """`model-monitoring-<yyyymmddHHMM>-<hex>`: AWS's pattern, deterministic per run."""
    digest = hashlib.sha256(execution_key(schedule_name, scheduled_time).encode()).hexdigest()[:24]
    return f"model-monitoring-{scheduled_time:%Y%m%d%H%M}-{digest}"


def execution_log_path(platform, execution: dict) -> Path | None:
    """Where an execution's container log is (None when no container ran)."""
    arn = execution.get("ProcessingJobArn")
    return processing.container_log_path(platform, arn.rsplit("/", 1)[-1]) if arn else None


def begin_execution(platform, schedule: dict, scheduled_time: datetime) -> dict | None:
    """Record a Pending execution for this run; None if this run was already recorded."""
    name = schedule["MonitoringScheduleName"]
    key = execution_key(name, scheduled_time)
    if platform.store.get(EXECUTION, key) is not None:
        return None
    now = iso_z(platform.clock.now())
    execution = {
        "MonitoringScheduleName": name,
        "ScheduledTime": iso_z(scheduled_time),
        "CreationTime": now,
        "LastModifiedTime": now,
        "MonitoringExecutionStatus": "Pending",
        "EndpointName": schedule["EndpointName"],
        "MonitoringType": schedule["MonitoringType"],
    }
    platform.store.put(EXECUTION, key, execution)
    return execution


def run_execution(platform, schedule: dict, execution: dict) -> dict:
    """Carry a Pending execution to its end; every failure is recorded on it, never raised."""
    scheduled_time = moment_of(execution["ScheduledTime"])
    try:
        outcome = _execute(platform, schedule, execution, scheduled_time)
    except Exception as error:  # a bug or an outage must end the execution visibly, not hang it
        log.exception("monitoring execution %s failed unexpectedly", execution_key(schedule["MonitoringScheduleName"], scheduled_time))
        outcome = {"MonitoringExecutionStatus": "Failed", "FailureReason": f"InternalServerError: {error}"[:1024]}
    return _update_execution(platform, execution, **outcome)


def _execute(platform, schedule: dict, execution: dict, scheduled_time: datetime) -> dict:
    config = schedule["MonitoringScheduleConfig"]
    definition = config["MonitoringJobDefinition"]
    endpoint_input = definition["MonitoringInputs"][0]["EndpointInput"]
    try:
        capture = capture_config(platform, endpoint_input["EndpointName"])
    except ValidationError as error:
        return {"MonitoringExecutionStatus": "Failed", "FailureReason": error.message}
    window = analysis_window(config["ScheduleConfig"], scheduled_time)
    try:
        capture_inputs = _capture_inputs(platform, capture["DestinationS3Uri"], endpoint_input, window)
    except (ClientError, BotoCoreError) as error:
        return {"MonitoringExecutionStatus": "Failed",
                "FailureReason": f"ClientError: cannot list the captured data under {capture['DestinationS3Uri']}: {error}"[:1024]}
    if not capture_inputs:
        return {"MonitoringExecutionStatus": "Failed", "FailureReason": NO_DATA}

    job = _processing_job(platform, schedule, capture_inputs, window, scheduled_time)
    _update_execution(platform, execution, MonitoringExecutionStatus="InProgress", ProcessingJobArn=job["ProcessingJobArn"])
    record = processing.run_processing_job(platform, job)
    if record["ProcessingJobStatus"] == "Stopped":
        return {"MonitoringExecutionStatus": "Stopped", "FailureReason": record.get("FailureReason") or STOPPED_EXECUTION_REASON}
    if record["ProcessingJobStatus"] != "Completed":
        return {"MonitoringExecutionStatus": "Failed", "FailureReason": record.get("FailureReason", "Processing job failed")}
    if job["Environment"].get("publish_cloudwatch_metrics") == "Enabled":
        try:
            processing.publish_container_metrics(platform, job["ProcessingJobName"])
        except processing.MetricsFileError as error:
            return {"MonitoringExecutionStatus": "Failed", "FailureReason": f"CloudWatch metrics file rejected: {error}"[:1024]}
    violations = record.get("ExitMessage", "").startswith(COMPLETED_WITH_VIOLATIONS)
    return {"MonitoringExecutionStatus": "CompletedWithViolations" if violations else "Completed"}


def _update_execution(platform, execution: dict, **changes) -> dict:
    execution.update(changes, LastModifiedTime=iso_z(platform.clock.now()))
    key = execution_key(execution["MonitoringScheduleName"], moment_of(execution["ScheduledTime"]))
    platform.store.put(EXECUTION, key, execution)
    return execution


def _capture_inputs(platform, destination: str, endpoint_input: dict, window: Window) -> list[dict]:
    """One S3Prefix input per variant and hour of the window that holds captured data."""
    s3 = platform.aws_client("s3")
    endpoint = endpoint_input["EndpointName"]
    root = S3Location.parse(f"{destination.rstrip('/')}/{endpoint}/")
    inputs = []
    for variant in _child_folders(s3, root):
        for hour in window.hours():
            folder = f"{hour:%Y/%m/%d/%H}"
            prefix = f"{root.key}{variant}/{folder}/"
            if not _has_objects(s3, root.bucket, prefix):
                continue
            local = PurePosixPath(endpoint_input["LocalPath"]) / endpoint / variant / folder
            inputs.append({
                "InputName": f"endpoint-input-{len(inputs) + 1}",
                "AppManaged": False,
                "S3Input": {
                    "S3Uri": f"s3://{root.bucket}/{prefix}",
                    "LocalPath": str(local),
                    "S3DataType": "S3Prefix",
                    "S3InputMode": endpoint_input.get("S3InputMode", "File"),
                    "S3DataDistributionType": endpoint_input.get("S3DataDistributionType", "FullyReplicated"),
                },
            })
    return inputs


def _child_folders(s3, location: S3Location) -> list[str]:
    names = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=location.key, Delimiter="/"):
        names += [item["Prefix"][len(location.key):].rstrip("/") for item in page.get("CommonPrefixes", [])]
    return names


def _has_objects(s3, bucket: str, prefix: str) -> bool:
    return s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1).get("KeyCount", 0) > 0


def _baseline_inputs(baseline: dict) -> tuple[list[dict], dict[str, str]]:
    """Staged baseline files and the environment naming them (only what BaselineConfig sets)."""
    resources = (
        ("StatisticsResource", "baseline_statistics", "baseline-statistics", BASELINE_STATISTICS_DIR),
        ("ConstraintsResource", "baseline_constraints", "baseline-constraints", BASELINE_CONSTRAINTS_DIR),
    )
    inputs, environment = [], {}
    for member, variable, input_name, local_dir in resources:
        uri = (baseline.get(member) or {}).get("S3Uri")
        if not uri:
            continue
        inputs.append({
            "InputName": input_name,
            "AppManaged": False,
            "S3Input": {"S3Uri": uri, "LocalPath": str(local_dir), "S3DataType": "S3Prefix",
                        "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated"},
        })
        environment[variable] = str(local_dir / uri.rstrip("/").rsplit("/", 1)[-1])
    return inputs, environment


def _processing_job(platform, schedule: dict, capture_inputs: list[dict], window: Window, scheduled_time: datetime) -> dict:
    """The Processing job a run submits, as DescribeProcessingJob would show it."""
    name = schedule["MonitoringScheduleName"]
    endpoint = schedule["EndpointName"]
    definition = schedule["MonitoringScheduleConfig"]["MonitoringJobDefinition"]
    endpoint_input = definition["MonitoringInputs"][0]["EndpointInput"]
    output_config = definition["MonitoringOutputConfig"]
    hour_folder = f"{scheduled_time:%Y/%m/%d/%H}"
    outputs = [
        {
            "OutputName": f"monitoring-output-{n}",
            "AppManaged": False,
            "S3Output": {
                "S3Uri": f"{output['S3Output']['S3Uri'].rstrip('/')}/{endpoint}/{name}/{hour_folder}",
                "LocalPath": output["S3Output"]["LocalPath"],
                "S3UploadMode": output["S3Output"].get("S3UploadMode", "EndOfJob"),
            },
        }
        for n, output in enumerate(output_config["MonitoringOutputs"], start=1)
    ]
    baseline_inputs, baseline_environment = _baseline_inputs(definition.get("BaselineConfig") or {})
    environment = {
        "dataset_format": json.dumps(ENDPOINT_DATASET_FORMAT, separators=(",", ":")),
        "dataset_source": endpoint_input["LocalPath"],
        "output_path": output_config["MonitoringOutputs"][0]["S3Output"]["LocalPath"],
        "publish_cloudwatch_metrics": "Enabled",
        "sagemaker_endpoint_name": endpoint,
        "sagemaker_monitoring_schedule_name": name,
        "start_time": iso_z(window.start),
        "end_time": iso_z(window.end),
        "metric_time": iso_z(window.end),
        **baseline_environment,
        # The user's entries come last: the SageMaker SDK turns publishing off this way
        # (`publish_cloudwatch_metrics: Disabled` in Environment).
        **definition.get("Environment", {}),
    }
    app = definition["MonitoringAppSpecification"]
    job_name = processing_job_name(name, scheduled_time)
    job = {
        "ProcessingJobName": job_name,
        "ProcessingJobArn": platform.arn("processing-job", job_name),
        "ProcessingInputs": capture_inputs + baseline_inputs,
        "ProcessingOutputConfig": {"Outputs": outputs, **({"KmsKeyId": output_config["KmsKeyId"]} if output_config.get("KmsKeyId") else {})},
        "ProcessingResources": definition["MonitoringResources"],
        "StoppingCondition": {"MaxRuntimeInSeconds": definition.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", DEFAULT_MAX_RUNTIME)},
        "AppSpecification": {key: app[key] for key in ("ImageUri", "ContainerEntrypoint", "ContainerArguments") if app.get(key)},
        "Environment": environment,
        "RoleArn": definition["RoleArn"],
        "MonitoringScheduleArn": schedule["MonitoringScheduleArn"],
        "CreationTime": iso_z(platform.clock.now()),
    }
    if definition.get("NetworkConfig"):
        job["NetworkConfig"] = definition["NetworkConfig"]
    return job


# ---------------------------------------------------------------------------------------------
# The scheduler


def _minute(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(second=0, microsecond=0)


class Scheduler:
    """Fires schedules on the platform clock's minute ticks.

    A simulated clock runs each job inline, so a run scheduled at 10:00 completes before the
    clock moves on (deterministic demos and tests). A real clock's tick thread must keep
    ticking (alarms are evaluated every minute), so there jobs run on a worker thread.
    """

    def __init__(self, platform, *, inline: bool | None = None) -> None:
        self.platform = platform
        self.inline = platform.clock.simulated if inline is None else inline
        self._workers = None if self.inline else ThreadPoolExecutor(max_workers=2, thread_name_prefix="monitoring-job")
        self._last_minute: datetime | None = None

    def tick(self, moment: datetime) -> None:
        minute = _minute(moment)
        first = minute if self._last_minute is None else max(self._last_minute + timedelta(minutes=1), minute - MAX_CATCH_UP)
        self._last_minute = minute
        while first <= minute:
            self.fire_due(first)
            first += timedelta(minutes=1)

    def fire_due(self, minute: datetime) -> list[dict]:
        """Start every run due at `minute`; return the executions begun."""
        begun = []
        for schedule in self.platform.store.list(SCHEDULE):
            if schedule["MonitoringScheduleStatus"] != "Scheduled" or not self._due(schedule, minute):
                continue
            execution = begin_execution(self.platform, schedule, minute)
            if execution is None:
                continue
            begun.append(execution)
            if self.inline:
                run_execution(self.platform, schedule, execution)
            else:
                self._workers.submit(run_execution, self.platform, schedule, execution)
        return begun

    def _due(self, schedule: dict, minute: datetime) -> bool:
        cadence = parse_schedule_expression(schedule["MonitoringScheduleConfig"]["ScheduleConfig"]["ScheduleExpression"])
        if cadence.once:  # NOW: the first minute after creation, once
            created = moment_of(schedule["CreationTime"])
            return minute >= created and not executions_of(self.platform, schedule["MonitoringScheduleName"])
        return cadence.matches(minute)

    def shutdown(self) -> None:
        """Stop running containers (their executions end Stopped), then wait for the workers."""
        processing.stop_running_jobs()
        if self._workers is not None:
            self._workers.shutdown(wait=True)


def recover_interrupted(platform) -> int:
    """Executions a stopped stack left Pending/InProgress end as Failed (their process is gone)."""
    count = 0
    for execution in platform.store.list(EXECUTION):
        if execution["MonitoringExecutionStatus"] in ("Pending", "InProgress"):
            _update_execution(platform, execution, MonitoringExecutionStatus="Failed",
                              FailureReason="InternalServerError: the local stack stopped while this execution was running")
            count += 1
    for job in platform.store.list(processing.PROCESSING_JOB):
        if job["ProcessingJobStatus"] == "InProgress":
            job.update(ProcessingJobStatus="Failed", LastModifiedTime=iso_z(platform.clock.now()),
                       FailureReason="InternalServerError: the local stack stopped while this job was running")
            platform.store.put(processing.PROCESSING_JOB, job["ProcessingJobName"], job)
    return count


def install(platform) -> Scheduler:
    """Run Model Monitor schedules on a LocalPlatform's clock (after monitoring.install)."""
    recover_interrupted(platform)
    scheduler = Scheduler(platform)
    platform.clock.subscribe(scheduler.tick)
    platform.on_stop(scheduler.shutdown)
    return scheduler

"""Model Monitor, locally: monitoring schedules, their executions, and the scheduler that fires them.

The SageMaker operations (`OPERATIONS`, plugged into the gateway by `install`) keep schedules in
the store in the shape DescribeMonitoringSchedule answers with. On each clock minute the
`Scheduler` fires every `Scheduled` schedule whose cron expression matches, the way the
platform does [BYOC][EX]:

1. an execution is recorded (`Pending`) for the scheduled time;
2. the window's capture is looked up: one S3 prefix per variant and hour,
   `<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/`; nothing captured -> the execution
   fails with the platform's own "Job inputs had no data" and no container runs;
3. otherwise a Processing job is described (capture and baseline inputs, the contract's
   environment, the output prefix `<S3Uri>/<endpoint>/<schedule>/yyyy/mm/dd/hh/`) and run by
   `processing.run_processing_job`;
4. when the job completes and `publish_cloudwatch_metrics` is `Enabled`, the container's metrics
   file is published to `aws/sagemaker/Endpoints/data-metrics`;
5. the execution ends `Completed`, `CompletedWithViolations` (the container's message starts
   so) or `Failed` with the job's FailureReason.

Windows: an hourly run at HH:00 analyses [HH-1:00, HH:00) (the 22:00-23:00 window lands in
/23, facts page); `DataAnalysisStartTime` / `DataAnalysisEndTime` offsets (`-PT1H`) move the
window relative to the scheduled time and are required for `NOW`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePosixPath
from typing import Callable

from botocore.exceptions import BotoCoreError, ClientError

from diversity_monitor import container_paths
from diversity_monitor.clock import iso_z, parse_instant
from diversity_monitor.local import hosting, images, processing
from diversity_monitor.local.errors import ResourceInUse, ResourceNotFound, ValidationError
from diversity_monitor.local.protocols import service_model
from diversity_monitor.schedule_expression import (Cadence, ScheduleExpressionError, Window, analysis_window,
                                                   check_schedule_config, parse_schedule_expression)
from diversity_monitor.storage import S3Location

log = logging.getLogger(__name__)

# Store kinds. Schedules: DescribeMonitoringSchedule outputs; executions:
# MonitoringExecutionSummary dicts keyed "<schedule>/<scheduled time>"; processing jobs:
# DescribeProcessingJob outputs (processing.PROCESSING_JOB). Timestamps are stored as ISO-8601
# strings (`iso_z`) and turned into datetimes in one place, `_answer`.
SCHEDULE = "MonitoringSchedule"
EXECUTION = "MonitoringExecution"

NO_DATA = "Job inputs had no data"  # the platform's own failure, before any container starts
DEFAULT_MAX_RUNTIME = 3600  # seconds; the API's limit for an hourly schedule's data-quality job
DEFAULT_MONITORING_TYPE = "DataQuality"  # what AWS reports for inline custom definitions [facts]
ENDPOINT_DATASET_FORMAT = {"sagemakerCaptureJson": {"captureIndexNames": ["endpointInput", "endpointOutput"]}}
BASELINE_STATISTICS_DIR = container_paths.PROCESSING_INPUT_BASELINE / "stats"
BASELINE_CONSTRAINTS_DIR = container_paths.PROCESSING_INPUT_BASELINE / "constraints"
VIOLATIONS_PREFIX = "CompletedWithViolations"  # how a container's message says "violations found"
MAX_CATCH_UP = timedelta(hours=1)  # a real clock's late tick still fires the minutes it skipped
DEFAULT_PAGE_SIZE = 10  # List* default MaxResults [API]


# ---------------------------------------------------------------------------------------------
# Schedule expressions: the kit's one definition (schedule_expression.py), errors in AWS's shape

def _check_schedule_config(schedule_config: dict) -> Cadence:
    try:
        return check_schedule_config(schedule_config)
    except ScheduleExpressionError as error:
        raise ValidationError(str(error)) from None


# ---------------------------------------------------------------------------------------------
# Request validation beyond the API shape


def _job_definition(config: dict) -> dict:
    if config.get("MonitoringJobDefinitionName"):
        raise ValidationError(
            "MonitoringJobDefinitionName is not supported by the local stack: "
            "pass the job inline as MonitoringScheduleConfig.MonitoringJobDefinition"
        )
    definition = config.get("MonitoringJobDefinition")
    if not definition:
        raise ValidationError("MonitoringScheduleConfig needs a MonitoringJobDefinition")
    return definition


def _endpoint_input(definition: dict) -> dict:
    job_input = definition["MonitoringInputs"][0]
    if "EndpointInput" not in job_input:
        raise ValidationError("MonitoringInputs[0] must be an EndpointInput (batch transform input is not run locally)")
    endpoint_input = job_input["EndpointInput"]
    for offset in ("StartTimeOffset", "EndTimeOffset"):
        if endpoint_input.get(offset):
            raise ValidationError(
                f"EndpointInput.{offset} (model-quality ground-truth offsets) is not supported by the local stack; "
                "use ScheduleConfig.DataAnalysisStartTime/DataAnalysisEndTime"
            )
    return endpoint_input


def capture_config(platform, endpoint_name: str) -> dict:
    """The endpoint's current DataCaptureConfig, or ValidationError when capture is off."""
    endpoint = hosting.get_resource(platform, "Endpoint", endpoint_name)
    config_name = endpoint.get("EndpointConfigName")
    endpoint_config = platform.store.get("EndpointConfig", config_name) if config_name else None
    if endpoint_config is None:
        raise ValidationError(f"Endpoint {endpoint_name!r}: its endpoint config {config_name!r} does not exist")
    capture = endpoint_config.get("DataCaptureConfig")
    # EnableCapture is optional and "defaults to enabled" [API: DataCaptureConfig].
    if not capture or capture.get("EnableCapture", True) is False:
        state = "EnableCapture false" if capture else "no DataCaptureConfig"
        raise ValidationError(
            f"Endpoint {endpoint_name!r} does not have data capture enabled (its endpoint config {config_name!r} has "
            f"{state}): a monitoring schedule would have no data to read"
        )
    return capture


def _validate_definition(platform, definition: dict, cadence: Cadence) -> str:
    """Check what the API shape cannot; return the monitored endpoint's name."""
    endpoint_input = _endpoint_input(definition)
    outputs = definition["MonitoringOutputConfig"]["MonitoringOutputs"]
    paths = {"EndpointInput.LocalPath": endpoint_input["LocalPath"]}
    paths.update({f"MonitoringOutputs[{n}].S3Output.LocalPath": out["S3Output"]["LocalPath"] for n, out in enumerate(outputs)})
    for field, path in paths.items():
        if not container_paths.is_processing_path(path):
            raise ValidationError(f"{field} {path!r} must be under /opt/ml/processing/")
    app = definition["MonitoringAppSpecification"]
    for field in ("RecordPreprocessorSourceUri", "PostAnalyticsProcessorSourceUri"):
        if app.get(field):
            raise ValidationError(f"MonitoringAppSpecification.{field} applies only to AWS's built-in containers")
    try:
        images.resolve(app["ImageUri"])
    except images.ImageNotFound as error:
        raise ValidationError(f"MonitoringAppSpecification.ImageUri: {error}") from None
    max_runtime = definition.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", DEFAULT_MAX_RUNTIME)
    period = cadence.period()
    if period is not None and max_runtime > period.total_seconds():
        raise ValidationError(
            f"StoppingCondition.MaxRuntimeInSeconds {max_runtime} exceeds the schedule's period "
            f"({int(period.total_seconds())} s for {cadence.expression})"
        )
    capture_config(platform, endpoint_input["EndpointName"])
    return endpoint_input["EndpointName"]


def _validated(platform, config: dict) -> tuple[dict, str]:
    if not config.get("ScheduleConfig"):
        raise ValidationError("MonitoringScheduleConfig needs a ScheduleConfig with a ScheduleExpression")
    cadence = _check_schedule_config(config["ScheduleConfig"])
    definition = _job_definition(config)
    return definition, _validate_definition(platform, definition, cadence)


# ---------------------------------------------------------------------------------------------
# Operations


def create_monitoring_schedule(platform, params: dict) -> dict:
    name = params["MonitoringScheduleName"]
    config = params["MonitoringScheduleConfig"]
    _, endpoint_name = _validated(platform, config)
    if platform.store.get(SCHEDULE, name) is not None:
        raise ResourceInUse(f"Monitoring schedule {name!r} already exists")
    now = iso_z(platform.clock.now())
    record = {
        "MonitoringScheduleArn": platform.arn("monitoring-schedule", name),
        "MonitoringScheduleName": name,
        "MonitoringScheduleStatus": "Scheduled",
        "MonitoringType": config.get("MonitoringType", DEFAULT_MONITORING_TYPE),
        "CreationTime": now,
        "LastModifiedTime": now,
        "MonitoringScheduleConfig": config,
        "EndpointName": endpoint_name,
        "Tags": params.get("Tags", []),
    }
    platform.store.put(SCHEDULE, name, record)
    return {"MonitoringScheduleArn": record["MonitoringScheduleArn"]}


def update_monitoring_schedule(platform, params: dict) -> dict:
    record = _schedule(platform, params["MonitoringScheduleName"])
    config = params["MonitoringScheduleConfig"]
    _, endpoint_name = _validated(platform, config)
    record.update(
        MonitoringScheduleConfig=config,
        EndpointName=endpoint_name,
        MonitoringType=config.get("MonitoringType", record["MonitoringType"]),
        LastModifiedTime=iso_z(platform.clock.now()),
    )
    platform.store.put(SCHEDULE, record["MonitoringScheduleName"], record)
    return {"MonitoringScheduleArn": record["MonitoringScheduleArn"]}


def describe_monitoring_schedule(platform, params: dict) -> dict:
    record = _schedule(platform, params["MonitoringScheduleName"])
    executions = _executions_of(platform, record["MonitoringScheduleName"])
    if executions:
        record["LastMonitoringExecutionSummary"] = max(executions, key=lambda item: item["ScheduledTime"])
    return _answer("DescribeMonitoringSchedule", record)


def list_monitoring_schedules(platform, params: dict) -> dict:
    records = platform.store.list(SCHEDULE)
    summaries, token = _listing(records, params, _SCHEDULE_FILTERS, _SCHEDULE_SORT_KEYS)
    return _answer("ListMonitoringSchedules", {"MonitoringScheduleSummaries": summaries, "NextToken": token})


def stop_monitoring_schedule(platform, params: dict) -> dict:
    return _set_status(platform, params["MonitoringScheduleName"], "Stopped")


def start_monitoring_schedule(platform, params: dict) -> dict:
    return _set_status(platform, params["MonitoringScheduleName"], "Scheduled")


def delete_monitoring_schedule(platform, params: dict) -> dict:
    name = params["MonitoringScheduleName"]
    _schedule(platform, name)
    platform.store.delete(SCHEDULE, name)
    return {}


def list_monitoring_executions(platform, params: dict) -> dict:
    records = platform.store.list(EXECUTION)
    summaries, token = _listing(records, params, _EXECUTION_FILTERS, _EXECUTION_SORT_KEYS)
    return _answer("ListMonitoringExecutions", {"MonitoringExecutionSummaries": summaries, "NextToken": token})


def describe_processing_job(platform, params: dict) -> dict:
    name = params["ProcessingJobName"]
    record = platform.store.get(processing.PROCESSING_JOB, name)
    if record is None:
        raise ResourceNotFound(f"Could not find processing job {name!r}")
    return _answer("DescribeProcessingJob", record)


OPERATIONS: dict[str, Callable[..., dict]] = {
    "CreateMonitoringSchedule": create_monitoring_schedule,
    "UpdateMonitoringSchedule": update_monitoring_schedule,
    "DescribeMonitoringSchedule": describe_monitoring_schedule,
    "ListMonitoringSchedules": list_monitoring_schedules,
    "StopMonitoringSchedule": stop_monitoring_schedule,
    "StartMonitoringSchedule": start_monitoring_schedule,
    "DeleteMonitoringSchedule": delete_monitoring_schedule,
    "ListMonitoringExecutions": list_monitoring_executions,
    "DescribeProcessingJob": describe_processing_job,
}


def _schedule(platform, name: str) -> dict:
    record = platform.store.get(SCHEDULE, name)
    if record is None:
        raise ResourceNotFound(f"Could not find monitoring schedule {name!r}")
    return record


def _set_status(platform, name: str, status: str) -> dict:
    record = _schedule(platform, name)
    record.update(MonitoringScheduleStatus=status, LastModifiedTime=iso_z(platform.clock.now()))
    platform.store.put(SCHEDULE, name, record)
    return {}


def _executions_of(platform, schedule_name: str) -> list[dict]:
    return [item for item in platform.store.list(EXECUTION) if item["MonitoringScheduleName"] == schedule_name]


# --- listing: filters, sorting and pages, as registries -----------------------------------------


def _moment(value) -> datetime:
    moment = value if isinstance(value, datetime) else parse_instant(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _time_filters(field: str) -> dict[str, Callable[[dict, object], bool]]:
    return {
        f"{field}Before": lambda record, value: _moment(record[field]) < _moment(value),
        f"{field}After": lambda record, value: _moment(record[field]) > _moment(value),
    }


def _equals(field: str) -> Callable[[dict, object], bool]:
    return lambda record, value: record.get(field) == value


_SCHEDULE_FILTERS = {
    "EndpointName": _equals("EndpointName"),
    "NameContains": lambda record, value: value in record["MonitoringScheduleName"],
    "StatusEquals": _equals("MonitoringScheduleStatus"),
    "MonitoringJobDefinitionName": lambda record, value: (
        record["MonitoringScheduleConfig"].get("MonitoringJobDefinitionName") == value
    ),
    "MonitoringTypeEquals": _equals("MonitoringType"),
    **_time_filters("CreationTime"),
    **_time_filters("LastModifiedTime"),
}
_EXECUTION_FILTERS = {
    "MonitoringScheduleName": _equals("MonitoringScheduleName"),
    "EndpointName": _equals("EndpointName"),
    "StatusEquals": _equals("MonitoringExecutionStatus"),
    "MonitoringJobDefinitionName": _equals("MonitoringJobDefinitionName"),
    "MonitoringTypeEquals": _equals("MonitoringType"),
    **_time_filters("ScheduledTime"),
    **_time_filters("CreationTime"),
    **_time_filters("LastModifiedTime"),
}
_TIME_FIELDS = {"CreationTime", "ScheduledTime", "LastModifiedTime"}
_SCHEDULE_SORT_KEYS = {"Name": "MonitoringScheduleName", "CreationTime": "CreationTime", "Status": "MonitoringScheduleStatus"}
_EXECUTION_SORT_KEYS = {"CreationTime": "CreationTime", "ScheduledTime": "ScheduledTime", "Status": "MonitoringExecutionStatus"}
_LIST_PARAMS = {"SortBy", "SortOrder", "NextToken", "MaxResults"}


def _listing(records: list[dict], params: dict, filters: dict, sort_keys: dict) -> tuple[list[dict], str | None]:
    """Filter, sort (default CreationTime, Descending) and page records the way List* APIs do."""
    unknown = set(params) - set(filters) - _LIST_PARAMS
    if unknown:  # a parameter the model has but no filter here: say so rather than ignore it
        raise ValidationError(f"filters {sorted(unknown)} are not supported by the local stack")
    for name, value in params.items():
        if name in filters:
            records = [record for record in records if filters[name](record, value)]
    field = sort_keys[params.get("SortBy", "CreationTime")]
    # Ties (same second) are broken by name and time so pages are stable.
    records.sort(
        key=lambda record: (
            _moment(record[field]) if field in _TIME_FIELDS else record.get(field, ""),
            record.get("MonitoringScheduleName", ""),
            record.get("ScheduledTime", ""),
        ),
        reverse=params.get("SortOrder", "Descending") == "Descending",
    )
    offset = _decode_token(params["NextToken"]) if params.get("NextToken") else 0
    size = params.get("MaxResults", DEFAULT_PAGE_SIZE)
    page = records[offset:offset + size]
    more = offset + size < len(records)
    return page, _encode_token(offset + size) if more else None


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _decode_token(token: str) -> int:
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise ValidationError(f"NextToken {token!r} is not a token this API returned") from None
    if not isinstance(offset, int) or offset < 0:
        raise ValidationError(f"NextToken {token!r} is not a token this API returned")
    return offset


# --- answers in the output shape --------------------------------------------------------------


def _model():
    return service_model("sagemaker")


def _answer(operation: str, record: dict) -> dict:
    """A stored record as `operation`'s output: members of the shape only, timestamps as datetimes."""
    return _conform(record, _model().operation_model(operation).output_shape)


def _conform(value, shape):
    if value is None:
        return None
    kind = shape.type_name
    if kind == "structure":
        return {
            key: _conform(item, shape.members[key])
            for key, item in value.items()
            if key in shape.members and item is not None
        }
    if kind == "list":
        return [_conform(item, shape.member) for item in value]
    if kind == "map":
        return {key: _conform(item, shape.value) for key, item in value.items()}
    if kind == "timestamp":
        return _moment(value)
    return value


# ---------------------------------------------------------------------------------------------
# Firing a schedule: one execution


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
    scheduled_time = _moment(execution["ScheduledTime"])
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
    if record["ProcessingJobStatus"] != "Completed":
        status = "Stopped" if record["ProcessingJobStatus"] == "Stopped" else "Failed"
        return {"MonitoringExecutionStatus": status, "FailureReason": record.get("FailureReason", "Processing job failed")}
    if job["Environment"].get("publish_cloudwatch_metrics") == "Enabled":
        try:
            processing.publish_container_metrics(platform, job["ProcessingJobName"])
        except processing.MetricsFileError as error:
            return {"MonitoringExecutionStatus": "Failed", "FailureReason": f"CloudWatch metrics file rejected: {error}"[:1024]}
    violations = record.get("ExitMessage", "").startswith(VIOLATIONS_PREFIX)
    return {"MonitoringExecutionStatus": "CompletedWithViolations" if violations else "Completed"}


def _update_execution(platform, execution: dict, **changes) -> dict:
    execution.update(changes, LastModifiedTime=iso_z(platform.clock.now()))
    key = execution_key(execution["MonitoringScheduleName"], _moment(execution["ScheduledTime"]))
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
            created = _moment(schedule["CreationTime"])
            return minute >= created and not _executions_of(self.platform, schedule["MonitoringScheduleName"])
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
    """Plug Model Monitor into a LocalPlatform: its operations, and the scheduler on its clock."""
    recover_interrupted(platform)
    platform.register_operations("sagemaker", OPERATIONS)
    scheduler = Scheduler(platform)
    platform.clock.subscribe(scheduler.tick)
    platform.on_stop(scheduler.shutdown)
    return scheduler

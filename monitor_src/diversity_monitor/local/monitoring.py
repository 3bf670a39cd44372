"""Model Monitor, locally: the monitoring-schedule API (moto lacks it).

The SageMaker operations (`OPERATIONS`, plugged into the gateway by `install`) keep schedules and
executions in the store in the shape the Describe*/List* calls answer with. Running them is
monitoring_scheduler.py's: on each clock minute its `Scheduler` fires every `Scheduled` schedule
whose cron expression matches, the way the platform does [BYOC][EX]:

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
import json
import logging
from collections.abc import Callable
from datetime import datetime, timezone

from diversity_monitor.aws.schedule_expression import (
    Cadence,
    ScheduleExpressionError,
    check_schedule_config,
)
from diversity_monitor.clock import iso_z, parse_instant
from diversity_monitor.local import hosting, images, processing, run_safety
from diversity_monitor.local.errors import ResourceInUse, ResourceNotFound, ValidationError
from diversity_monitor.local.protocols import service_model

log = logging.getLogger(__name__)

# Store kinds. Schedules: DescribeMonitoringSchedule outputs; executions:
# MonitoringExecutionSummary dicts keyed "<schedule>/<scheduled time>"; processing jobs:
# DescribeProcessingJob outputs (processing.PROCESSING_JOB). Timestamps are stored as ISO-8601
# strings (`iso_z`) and turned into datetimes in one place, `_answer`.
SCHEDULE = "MonitoringSchedule"
EXECUTION = "MonitoringExecution"

DEFAULT_MAX_RUNTIME = 3600  # seconds; the API's limit for an hourly schedule's data-quality job
DEFAULT_MONITORING_TYPE = "DataQuality"  # what AWS reports for inline custom definitions [facts]
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
    app = definition["MonitoringAppSpecification"]
    run_safety.refuse([
        *run_safety.processing_path_problems(paths),
        *run_safety.entrypoint_problems(app, "MonitoringAppSpecification"),
        *run_safety.argument_problems(app.get("ContainerArguments"), "MonitoringAppSpecification.ContainerArguments"),
        *run_safety.environment_problems(definition.get("Environment"), "Environment"),
    ])
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
    executions = executions_of(platform, record["MonitoringScheduleName"])
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


def executions_of(platform, schedule_name: str) -> list[dict]:
    return [item for item in platform.store.list(EXECUTION) if item["MonitoringScheduleName"] == schedule_name]


# --- listing: filters, sorting and pages, as registries -----------------------------------------


def moment_of(value) -> datetime:
    moment = value if isinstance(value, datetime) else parse_instant(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _time_filters(field: str) -> dict[str, Callable[[dict, object], bool]]:
    return {
        f"{field}Before": lambda record, value: moment_of(record[field]) < moment_of(value),
        f"{field}After": lambda record, value: moment_of(record[field]) > moment_of(value),
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
            moment_of(record[field]) if field in _TIME_FIELDS else record.get(field, ""),
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
        return moment_of(value)
    return value


# ---------------------------------------------------------------------------------------------
# Firing a schedule: one execution


def install(platform) -> None:
    """Plug the Model Monitor API into a LocalPlatform (the scheduler installs itself after it)."""
    platform.register_operations("sagemaker", OPERATIONS)

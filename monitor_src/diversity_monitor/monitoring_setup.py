"""Creating what watches the endpoint: the monitoring schedule, the alarms, the pager topic.

Request builders are pure (dicts in the shape of the API); `apply_*` functions send them with
plain boto3 and are idempotent, so a notebook can be re-run safely. The same code runs against
AWS and the local stack; only boto3's endpoint settings differ.

Two alarms:
- the diversity alarm: `top10_category_diversity_mean < 4` for 2 of 3 one-hour periods.
  TreatMissingData=missing: a missing hour is neither healthy nor broken (an outage publishes no
  diversity, see cloudwatch.py); the monitor-health alarm owns that case;
- the monitor-health alarm: `replay_success_rate < 0.95` for 2 of 2 hours, with
  TreatMissingData=breaching: a monitor that stops running or stops publishing is itself an
  incident, because the diversity alarm would otherwise stay quiet forever. 2 of 2 rather than
  2 of 3: with missing = breaching, a 2-of-3 alarm created next to a new schedule pages at once
  (two of its three periods are still empty); 2 of 2 pages after two silent or failed hours.
  Like any heartbeat alarm it is in ALARM while its window holds no point at all, so
  `apply_alarms` creates it with its actions disabled until the schedule has a completed
  execution (it has published), and says so; running it again after the first run arms it.
  Arming it by hand: `aws cloudwatch enable-alarm-actions --alarm-names <name>`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import boto3
from botocore.exceptions import ClientError

from diversity_monitor.contract import DEFAULT_NAMESPACE

HOURLY = "cron(0 * ? * * *)"
DIVERSITY_METRIC = "top10_category_diversity_mean"
HEALTH_METRIC = "replay_success_rate"
PUBLISHED = ("Completed", "CompletedWithViolations")  # execution statuses that published metrics
RUNBOOK_PATH = "runbooks/README.md"  # in this kit's repository; MonitorSpec.runbook_url makes it a link


@dataclass(frozen=True)
class MonitorSpec:
    """Everything the schedule and its alarms need to know."""

    endpoint_name: str
    schedule_name: str
    image_uri: str
    role_arn: str
    validation_set: str
    catalog: str
    reports_s3_uri: str
    baseline_s3_uri: str | None = None  # folder holding statistics.json + constraints.json
    min_diversity: float = 4.0
    instance_type: str = "ml.m5.large"
    max_runtime_seconds: int = 1800
    schedule_expression: str = HOURLY
    extra_arguments: tuple[str, ...] = ()
    environment: dict[str, str] = field(default_factory=dict)
    runbook_url: str | None = None  # where the on-call opens runbooks/README.md (a pager email needs a link)

    @property
    def runbook_hint(self) -> str:
        where = self.runbook_url or f"{RUNBOOK_PATH} in the diversity-monitor repository"
        return f"Runbook: {where} (diversity_alarm.ipynb / monitor_job_failed.ipynb)."

    def container_arguments(self) -> list[str]:
        return ["--validation-set", self.validation_set, "--catalog", self.catalog,
                "--min-diversity", f"{self.min_diversity:g}", *self.extra_arguments]


def monitoring_job_definition(spec: MonitorSpec) -> dict:
    definition = {
        "MonitoringInputs": [{"EndpointInput": {
            "EndpointName": spec.endpoint_name,
            "LocalPath": "/opt/ml/processing/input/endpoint",
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
        }}],
        "MonitoringOutputConfig": {"MonitoringOutputs": [{"S3Output": {
            "S3Uri": spec.reports_s3_uri,
            "LocalPath": "/opt/ml/processing/output",
            "S3UploadMode": "EndOfJob",
        }}]},
        "MonitoringResources": {"ClusterConfig": {
            "InstanceCount": 1, "InstanceType": spec.instance_type, "VolumeSizeInGB": 20}},
        "MonitoringAppSpecification": {
            "ImageUri": spec.image_uri,
            "ContainerArguments": spec.container_arguments(),
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": spec.max_runtime_seconds},
        "RoleArn": spec.role_arn,
    }
    if spec.environment:
        definition["Environment"] = dict(spec.environment)
    if spec.baseline_s3_uri:
        base = spec.baseline_s3_uri.rstrip("/")
        definition["BaselineConfig"] = {
            "ConstraintsResource": {"S3Uri": f"{base}/constraints.json"},
            "StatisticsResource": {"S3Uri": f"{base}/statistics.json"},
        }
    return definition


def schedule_request(spec: MonitorSpec) -> dict:
    return {
        "MonitoringScheduleName": spec.schedule_name,
        "MonitoringScheduleConfig": {
            "ScheduleConfig": {"ScheduleExpression": spec.schedule_expression},
            "MonitoringJobDefinition": monitoring_job_definition(spec),
        },
    }


def apply_schedule(spec: MonitorSpec, client=None) -> str:
    """Create the schedule, or update it when it exists. Returns "created" or "updated"."""
    client = client or boto3.client("sagemaker")
    request = schedule_request(spec)
    try:
        client.describe_monitoring_schedule(MonitoringScheduleName=spec.schedule_name)
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("ResourceNotFound", "ValidationException"):
            raise
        client.create_monitoring_schedule(**request)
        return "created"
    client.update_monitoring_schedule(**request)
    return "updated"


def metric_dimensions(spec: MonitorSpec) -> list[dict]:
    return [{"Name": "Endpoint", "Value": spec.endpoint_name},
            {"Name": "MonitoringSchedule", "Value": spec.schedule_name}]


def diversity_alarm_request(spec: MonitorSpec, topic_arn: str) -> dict:
    return {
        "AlarmName": f"{spec.endpoint_name}-diversity-below-{spec.min_diversity:g}",
        "AlarmDescription": (
            f"Mean distinct categories per top-10 on {spec.endpoint_name} below {spec.min_diversity:g} "
            f"for 2 of 3 hours (schedule {spec.schedule_name}). {spec.runbook_hint}"
        ),
        "ActionsEnabled": True,
        "AlarmActions": [topic_arn],
        "OKActions": [topic_arn],
        "Namespace": DEFAULT_NAMESPACE,
        "MetricName": DIVERSITY_METRIC,
        "Dimensions": metric_dimensions(spec),
        "Statistic": "Average",
        "Period": 3600,
        "EvaluationPeriods": 3,
        "DatapointsToAlarm": 2,
        "Threshold": spec.min_diversity,
        "ComparisonOperator": "LessThanThreshold",
        "TreatMissingData": "missing",
    }


def health_alarm_request(spec: MonitorSpec, topic_arn: str, min_success_rate: float = 0.95, *,
                         armed: bool = True) -> dict:
    return {
        "AlarmName": f"{spec.endpoint_name}-diversity-monitor-unhealthy",
        "AlarmDescription": (
            f"The diversity monitor for {spec.endpoint_name} is failing or silent: replay success below "
            f"{min_success_rate:.0%} or no result for 2 hours in a row. {spec.runbook_hint}"
        ),
        "ActionsEnabled": armed,
        "AlarmActions": [topic_arn],
        "OKActions": [topic_arn],
        "Namespace": DEFAULT_NAMESPACE,
        "MetricName": HEALTH_METRIC,
        "Dimensions": metric_dimensions(spec),
        "Statistic": "Minimum",
        "Period": 3600,
        "EvaluationPeriods": 2,
        "DatapointsToAlarm": 2,
        "Threshold": min_success_rate,
        "ComparisonOperator": "LessThanThreshold",
        "TreatMissingData": "breaching",
    }


def alarm_names(endpoint_name: str, schedule_name: str, min_diversity: float = 4.0) -> dict[str, str]:
    """The names `apply_alarms` gives this endpoint's alarms (the one place that decides them)."""
    spec = MonitorSpec(endpoint_name, schedule_name, "", "", "", "", "", min_diversity=min_diversity)
    return {"diversity": diversity_alarm_request(spec, "")["AlarmName"],
            "health": health_alarm_request(spec, "")["AlarmName"]}


@dataclass(frozen=True)
class AlarmsApplied:
    names: list[str]  # diversity alarm, then health alarm
    health_armed: bool

    @property
    def message(self) -> str:
        lines = [f"alarms (created or replaced in place): {', '.join(self.names)}"]
        if self.health_armed:
            lines.append(f"health alarm {self.names[1]} ARMED: the schedule has published, so silence now pages")
        else:
            lines.append(f"health alarm {self.names[1]} NOT ARMED YET (actions disabled): the schedule has no completed "
                         "run, and a heartbeat alarm with no data is in ALARM. Run this again after the first hourly "
                         f"run completes (or: aws cloudwatch enable-alarm-actions --alarm-names {self.names[1]}).")
        return "\n".join(lines)


def schedule_has_published(schedule_name: str, client=None) -> bool:
    """Whether any execution of the schedule completed (and so published its metrics)."""
    client = client or boto3.client("sagemaker")
    return any(client.list_monitoring_executions(MonitoringScheduleName=schedule_name, StatusEquals=status,
                                                 MaxResults=1)["MonitoringExecutionSummaries"] for status in PUBLISHED)


def apply_alarms(spec: MonitorSpec, topic_arn: str, client=None, *, health_armed: bool | None = None) -> AlarmsApplied:
    """PutMetricAlarm is an upsert, so re-running replaces the definitions in place.

    The health alarm is armed only once the schedule has published (`health_armed=None` asks the
    service), so creating it next to a new schedule does not page the on-call.
    """
    client = client or boto3.client("cloudwatch")
    armed = schedule_has_published(spec.schedule_name) if health_armed is None else health_armed
    names = []
    for request in (diversity_alarm_request(spec, topic_arn), health_alarm_request(spec, topic_arn, armed=armed)):
        client.put_metric_alarm(**request)
        names.append(request["AlarmName"])
    return AlarmsApplied(names, armed)


def ensure_topic(name: str, client=None) -> str:
    """CreateTopic is idempotent for the same name and returns the existing ARN."""
    client = client or boto3.client("sns")
    return client.create_topic(Name=name)["TopicArn"]

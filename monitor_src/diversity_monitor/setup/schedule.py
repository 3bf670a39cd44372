"""The hourly monitoring schedule that runs the container against the endpoint (notebook 03).

Request builders are pure (dicts in the shape of the API); `apply_*` functions send them with
plain boto3 and are idempotent, so a notebook can be re-run safely. The same code runs against
AWS and the local stack; only boto3's endpoint settings differ.

The alarms on what the schedule publishes are alarms.py's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import boto3
from botocore.exceptions import ClientError

from diversity_monitor.aws.container_paths import PROCESSING_INPUT_ENDPOINT, PROCESSING_OUTPUT
from diversity_monitor.aws.schedule_expression import MAX_WINDOW, format_offset, parse_schedule_expression
from diversity_monitor.conventions import (
    ANALYSIS_WINDOW_EXTRA_HOURS,
    CONSTRAINTS_FILE,
    DEFAULT_MIN_DIVERSITY,
    DEFAULT_TOP_K,
    RUNBOOKS_README,
    STATISTICS_FILE,
    diversity_metric,
)
from diversity_monitor.job.contract import LIMIT_ARGUMENTS, Limits, limit_arguments
from diversity_monitor.setup.endpoint_support import check_supported

HOURLY = "cron(0 * ? * * *)"
PUBLISHED = ("Completed", "CompletedWithViolations")  # execution statuses that published metrics
# The spec's own fields own these arguments; repeating one in extra_arguments would make two truths.
_OWNED_ARGUMENTS = ("--validation-set", "--catalog", "--min-diversity", "--top-k", "--live-window", *LIMIT_ARGUMENTS)
NETWORK_ISOLATION_REFUSED = (
    "enable_network_isolation: with NetworkConfig.EnableNetworkIsolation the container can make no outbound call, so "
    "the monitor could not replay its sessions against the endpoint (InvokeEndpoint) nor read its validation set: "
    "every run would fail. Use subnets and security_group_ids (a VPC with the endpoints README lists) to keep the "
    "job's traffic private instead.")


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
    min_diversity: float = DEFAULT_MIN_DIVERSITY
    top_k: int = DEFAULT_TOP_K
    limits: Limits = field(default_factory=Limits)  # the sameness limits: the job judges them, the alarms watch them
    instance_type: str = "ml.m5.large"
    max_runtime_seconds: int = 1800
    schedule_expression: str = HOURLY
    extra_arguments: tuple[str, ...] = ()
    environment: dict[str, str] = field(default_factory=dict)
    runbook_url: str | None = None  # where the on-call opens runbooks/README.md (a pager email needs a link)
    # A private network: the job's ENIs go in these subnets with these security groups (NetworkConfig.VpcConfig).
    # Without a NAT gateway the subnets need VPC endpoints (README, "Private networks").
    subnets: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    output_kms_key: str | None = None  # encrypts the reports in S3 (MonitoringOutputConfig.KmsKeyId)
    volume_kms_key: str | None = None  # encrypts the job's storage volume (ClusterConfig.VolumeKmsKeyId)
    enable_network_isolation: bool = False  # refused: see NETWORK_ISOLATION_REFUSED

    def __post_init__(self) -> None:
        if self.enable_network_isolation:
            raise ValueError(NETWORK_ISOLATION_REFUSED)
        if bool(self.subnets) != bool(self.security_group_ids):
            raise ValueError("subnets and security_group_ids go together (NetworkConfig.VpcConfig needs both); "
                             f"got subnets={list(self.subnets)}, security_group_ids={list(self.security_group_ids)}")
        owned = [arg for arg in self.extra_arguments if arg.split("=", 1)[0] in _OWNED_ARGUMENTS]
        if owned:
            raise ValueError(f"extra_arguments {owned}: set these through MonitorSpec's own fields "
                             "(validation_set, catalog, min_diversity, top_k, limits), so the alarms watch what the job measures")

    @property
    def runbook_hint(self) -> str:
        where = self.runbook_url or f"{RUNBOOKS_README} in the diversity-monitor repository"
        return f"Runbook: {where} (diversity_alarm.ipynb / monitor_job_failed.ipynb)."

    @property
    def diversity_metric(self) -> str:
        """The metric the job publishes for this spec's k, and so the one the diversity alarm watches."""
        return diversity_metric(self.top_k, "mean")

    def network_config(self) -> dict | None:
        """NetworkConfig for the job: the VPC when one is given; never network isolation."""
        if not self.subnets:
            return None
        return {"EnableNetworkIsolation": False,
                "VpcConfig": {"Subnets": list(self.subnets), "SecurityGroupIds": list(self.security_group_ids)}}

    def container_arguments(self) -> list[str]:
        live = live_window_seconds(self.schedule_expression)
        return ["--validation-set", self.validation_set, "--catalog", self.catalog,
                *(["--live-window", str(live)] if live else []),
                "--min-diversity", f"{self.min_diversity:g}", "--top-k", str(self.top_k),
                *limit_arguments(self.limits), *self.extra_arguments]


def cluster_config(spec: MonitorSpec) -> dict:
    """One instance; its volume encrypted with `volume_kms_key` when given (both paths use this)."""
    config = {"InstanceCount": 1, "InstanceType": spec.instance_type, "VolumeSizeInGB": 20}
    if spec.volume_kms_key:
        config["VolumeKmsKeyId"] = spec.volume_kms_key
    return config


def analysis_window_config(expression: str) -> dict:
    """The ScheduleConfig offsets that break the no-data loop (conventions.ANALYSIS_WINDOW_EXTRA_HOURS):
    the period plus the extra hours, at most the API's 24 hours; {} for NOW or a period of a day."""
    period = parse_schedule_expression(expression).period()
    if period is None:
        return {}
    window = min(period + timedelta(hours=ANALYSIS_WINDOW_EXTRA_HOURS), MAX_WINDOW)
    if window <= period:
        return {}
    return {"DataAnalysisStartTime": format_offset(-window), "DataAnalysisEndTime": "-PT0H"}


def live_window_seconds(expression: str) -> int | None:
    """`--live-window`: one period, when the analysis window is wider than that (else the whole window)."""
    if not analysis_window_config(expression):
        return None
    return int(parse_schedule_expression(expression).period().total_seconds())


def monitoring_job_definition(spec: MonitorSpec) -> dict:
    definition = {
        "MonitoringInputs": [{"EndpointInput": {
            "EndpointName": spec.endpoint_name,
            "LocalPath": str(PROCESSING_INPUT_ENDPOINT),
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
        }}],
        "MonitoringOutputConfig": {"MonitoringOutputs": [{"S3Output": {
            "S3Uri": spec.reports_s3_uri,
            "LocalPath": str(PROCESSING_OUTPUT),
            "S3UploadMode": "EndOfJob",
        }}], **({"KmsKeyId": spec.output_kms_key} if spec.output_kms_key else {})},
        "MonitoringResources": {"ClusterConfig": cluster_config(spec)},
        "MonitoringAppSpecification": {
            "ImageUri": spec.image_uri,
            "ContainerArguments": spec.container_arguments(),
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": spec.max_runtime_seconds},
        "RoleArn": spec.role_arn,
    }
    if spec.environment:
        definition["Environment"] = dict(spec.environment)
    if spec.network_config():
        definition["NetworkConfig"] = spec.network_config()
    if spec.baseline_s3_uri:
        base = spec.baseline_s3_uri.rstrip("/")
        definition["BaselineConfig"] = {
            "ConstraintsResource": {"S3Uri": f"{base}/{CONSTRAINTS_FILE}"},
            "StatisticsResource": {"S3Uri": f"{base}/{STATISTICS_FILE}"},
        }
    return definition


def schedule_request(spec: MonitorSpec) -> dict:
    return {
        "MonitoringScheduleName": spec.schedule_name,
        "MonitoringScheduleConfig": {
            "ScheduleConfig": {"ScheduleExpression": spec.schedule_expression,
                               **analysis_window_config(spec.schedule_expression)},
            "MonitoringJobDefinition": monitoring_job_definition(spec),
        },
    }


def apply_schedule(spec: MonitorSpec, client=None) -> str:
    """Create the schedule, or update it when it exists. Returns "created" or "updated"."""
    client = client or boto3.client("sagemaker")
    request = schedule_request(spec)
    check_supported(spec.endpoint_name, client)
    try:
        client.describe_monitoring_schedule(MonitoringScheduleName=spec.schedule_name)
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("ResourceNotFound", "ValidationException"):
            raise
        client.create_monitoring_schedule(**request)
        return "created"
    client.update_monitoring_schedule(**request)
    return "updated"


def schedule_has_published(schedule_name: str, client=None) -> bool:
    """Whether any execution of the schedule completed (and so published its metrics)."""
    client = client or boto3.client("sagemaker")
    return any(client.list_monitoring_executions(MonitoringScheduleName=schedule_name, StatusEquals=status,
                                                 MaxResults=1)["MonitoringExecutionSummaries"] for status in PUBLISHED)

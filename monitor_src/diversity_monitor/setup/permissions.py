"""Least-privilege IAM policies for the kit's four roles, scoped to one endpoint's resources.

Roles (`ROLES`):
- `job`: the execution role of the monitoring job (Model Monitor's Processing job, or the plain
  Processing job started by EventBridge Scheduler): pull the image, write its logs, read the
  window's capture, the validation set, catalog and baseline, replay against the endpoint,
  describe which config served, write the reports, publish metrics (plain path) and, in a VPC,
  manage the job's network interfaces;
- `scheduler`: the role EventBridge Scheduler assumes for the plain Processing path: start the
  job and pass the job role to SageMaker, nothing else;
- `data-scientist`: notebooks 01-05: capture on the endpoint, baselines, the schedule, its alarms,
  the pager topic, the dashboard, the Scheduler schedule of the plain path, and reading it all;
- `oncall`: the runbooks: read schedules, executions, jobs, reports, capture, alarms, metrics and
  logs; roll the endpoint back; re-run a failed hour (a one-off schedule); write incident notes.

Every action each role may take is listed once, here, in `GRANTS` (one `Grant` per statement:
its actions, the resources they are scoped to and any condition). The tests check every call
the kit's code makes (botocore's audit of the notebook kernels, the container and the runbooks)
against the policy of the role that makes it (`iam_action` maps a botocore operation to its IAM
action), and lint every policy with parliament: a new call without a permission fails a test.

Scoping rules that IAM's own docs require and earlier README prose got wrong:
- `DescribeEndpointConfig` is authorised on the *endpoint config's* ARN, not the endpoint's; the
  kit's configs carry the endpoint's name (`<endpoint>-...`, setup/deployment.py), so
  `endpoint-config/<endpoint>*` covers them;
- `s3:ListBucket` is on the bucket, narrowed to the kit's prefixes with an `s3:prefix` condition;
- `iam:PassRole` carries an `iam:PassedToService` condition, so a role can be passed only to the
  service that needs it;
- `cloudwatch:PutMetricData` is held to the monitor's namespace with `cloudwatch:namespace`.
- List/Describe actions that IAM does not scope to a resource (ListMetrics, DescribeAlarms,
  ListEndpointConfigs, ecr:GetAuthorizationToken...) are on `*`, as the service requires.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from diversity_monitor.conventions import METRICS_NAMESPACE, dashboard_name
from diversity_monitor.setup.processing_schedule import JOB_PREFIX
from diversity_monitor.storage import S3Location

POLICY_VERSION = "2012-10-17"
PROCESSING_JOBS_LOG_GROUP = "/aws/sagemaker/ProcessingJobs"  # where a Processing job's container log goes
SAGEMAKER_SERVICE = "sagemaker.amazonaws.com"
SCHEDULER_SERVICE = "scheduler.amazonaws.com"
# Model Monitor names its jobs `model-monitoring-<yyyymmddHHMM>-<hex>`; the plain path's are the
# Scheduler target's `diversity-<execution id>` (setup/processing_schedule.py).
MODEL_MONITOR_JOB_PREFIX = "model-monitoring-"
PLAIN_JOB_PREFIX = JOB_PREFIX
ROLES = ("job", "scheduler", "data-scientist", "oncall")
_ECR_IMAGE = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/(?P<repo>[^:@]+)")
_ACCOUNT = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_KMS_KEY = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")
_ROLE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")


class PolicyInputError(ValueError):
    """An input the policies are scoped to is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Scope:
    """What the policies are scoped to: one endpoint, its buckets and prefixes, keys and roles."""

    account: str
    region: str
    endpoint_name: str
    capture_s3_uri: str  # DataCaptureConfig.DestinationS3Uri
    reports_s3_uri: str  # the schedule's S3Output.S3Uri
    monitor_s3_uri: str  # validation set, catalog and baselines (read; baselines written by notebook 02)
    schedule_name: str | None = None  # the monitoring schedule (and the metrics' MonitoringSchedule dimension)
    processing_schedule_name: str | None = None  # the EventBridge Scheduler schedule of the plain path
    image_uri: str | None = None  # the monitoring image (ECR pull)
    job_role_arn: str | None = None  # passed to SageMaker by whoever creates schedules and jobs
    scheduler_role_arn: str | None = None  # passed to EventBridge Scheduler by notebook 03
    pager_topic: str | None = None  # SNS topic name the alarms notify
    output_kms_key_arn: str | None = None  # MonitoringOutputConfig.KmsKeyId / ProcessingOutputConfig.KmsKeyId
    volume_kms_key_arn: str | None = None  # ClusterConfig.VolumeKmsKeyId
    capture_kms_key_arn: str | None = None  # DataCaptureConfig.KmsKeyId
    subnets: tuple[str, ...] = ()  # NetworkConfig.VpcConfig.Subnets: the job runs in a VPC
    security_groups: tuple[str, ...] = ()  # NetworkConfig.VpcConfig.SecurityGroupIds
    partition: str = "aws"

    def __post_init__(self) -> None:
        problems = []
        if not _ACCOUNT.fullmatch(self.account):
            problems.append(f"--account {self.account!r} is not a 12-digit AWS account id")
        if not _REGION.fullmatch(self.region):
            problems.append(f"--region {self.region!r} is not an AWS region name like eu-west-1")
        for name in ("capture_s3_uri", "reports_s3_uri", "monitor_s3_uri"):
            value = getattr(self, name)
            if not str(value).startswith("s3://") or not S3Location.parse(value).bucket:
                problems.append(f"--{name.replace('_', '-')} {value!r} is not an s3://bucket/prefix URI")
        for name in ("output_kms_key_arn", "volume_kms_key_arn", "capture_kms_key_arn"):
            value = getattr(self, name)
            if value and not _KMS_KEY.fullmatch(value):
                problems.append(f"--{name.replace('_', '-')} {value!r} is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)")
        for name in ("job_role_arn", "scheduler_role_arn"):
            value = getattr(self, name)
            if value and not _ROLE.fullmatch(value):
                problems.append(f"--{name.replace('_', '-')} {value!r} is not an IAM role ARN")
        if self.image_uri and not _ECR_IMAGE.match(self.image_uri):
            problems.append(f"--image-uri {self.image_uri!r} is not an ECR image URI (ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO:TAG)")
        if bool(self.subnets) != bool(self.security_groups):
            problems.append("a VPC needs both --subnet and --security-group (NetworkConfig.VpcConfig has both)")
        problems += [f"--subnet {name!r} is not a subnet id (subnet-...)" for name in self.subnets
                     if not re.fullmatch(r"subnet-[0-9a-f]+", name)]
        problems += [f"--security-group {name!r} is not a security group id (sg-...)" for name in self.security_groups
                     if not re.fullmatch(r"sg-[0-9a-f]+", name)]
        if problems:
            raise PolicyInputError("; ".join(problems))

    # --- ARNs ----------------------------------------------------------------------------------

    def sagemaker(self, resource: str) -> str:
        # SageMaker lower-cases resource names in its ARNs.
        return f"arn:{self.partition}:sagemaker:{self.region}:{self.account}:{resource.lower()}"

    @property
    def endpoint_arn(self) -> str:
        return self.sagemaker(f"endpoint/{self.endpoint_name}")

    @property
    def endpoint_config_arn(self) -> str:
        """Every config of the endpoint (the kit names them `<endpoint>-...`) and the endpoint's own name."""
        return self.sagemaker(f"endpoint-config/{self.endpoint_name}*")

    def bucket_arn(self, uri: str) -> str:
        return f"arn:{self.partition}:s3:::{S3Location.parse(uri).bucket}"

    def objects_arn(self, uri: str) -> str:
        prefix = _prefix(uri)
        return f"{self.bucket_arn(uri)}/{prefix + '/' if prefix else ''}*"

    def log_group_arn(self, streams: bool = False) -> str:
        base = f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:{PROCESSING_JOBS_LOG_GROUP}"
        return f"{base}:log-stream:*" if streams else f"{base}:*"

    def ec2(self, resource: str) -> str:
        return f"arn:{self.partition}:ec2:{self.region}:{self.account}:{resource}"

    def vpc_attachments(self) -> list[str]:
        """What CreateNetworkInterface touches: the new interface, the job's subnets and security groups."""
        return [self.ec2("network-interface/*"), *(self.ec2(f"subnet/{name}") for name in self.subnets),
                *(self.ec2(f"security-group/{name}") for name in self.security_groups)]

    def alarm_arn(self) -> str:
        # The kit's alarms are named `<endpoint>-...` (setup/alarms.py `alarm_names`).
        return f"arn:{self.partition}:cloudwatch:{self.region}:{self.account}:alarm:{self.endpoint_name}-*"

    def dashboard_arn(self) -> str:
        return f"arn:{self.partition}:cloudwatch::{self.account}:dashboard/{dashboard_name(self.endpoint_name)}"

    def repository_arn(self) -> str:
        match = _ECR_IMAGE.match(self.image_uri or "")
        return f"arn:{self.partition}:ecr:{match['region']}:{match['account']}:repository/{match['repo']}"

    def topic_arn(self) -> str:
        return f"arn:{self.partition}:sns:{self.region}:{self.account}:{self.pager_topic}"

    def scheduler_schedule_arn(self) -> str:
        return f"arn:{self.partition}:scheduler:{self.region}:{self.account}:schedule/*/{self.processing_schedule_name}"


def _prefix(uri: str) -> str:
    return S3Location.parse(uri).key.strip("/")


def _list_condition(uris: Iterable[str]) -> dict:
    prefixes = sorted({p for uri in uris for p in ((_prefix(uri), f"{_prefix(uri)}/*") if _prefix(uri) else ("*",))})
    return {"StringLike": {"s3:prefix": prefixes}}


# --- the grants ----------------------------------------------------------------------------------

Resources = Callable[[Scope], list[str]]


@dataclass(frozen=True)
class Grant:
    """One statement: `actions` on `resources(scope)`, under `condition(scope)`, when `needed(scope)`."""

    sid: str
    actions: tuple[str, ...]
    resources: Resources
    condition: Callable[[Scope], dict] | None = None
    needed: Callable[[Scope], bool] = lambda scope: True
    requires: tuple[str, ...] = ()  # Scope fields the statement cannot be scoped without


def _everything(scope: Scope) -> list[str]:
    return ["*"]


def _objects(*names: str) -> Resources:
    return lambda scope: sorted({scope.objects_arn(getattr(scope, name)) for name in names})


def _keys(*names: str) -> Resources:
    return lambda scope: sorted({getattr(scope, name) for name in names if getattr(scope, name)})


def _has(*names: str) -> Callable[[Scope], bool]:
    return lambda scope: all(getattr(scope, name) for name in names)


def _pass_to(service: str) -> Callable[[Scope], dict]:
    return lambda scope: {"StringEquals": {"iam:PassedToService": service}}


_NAMESPACE = {"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}}
_ECR_PULL = ("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")
_READ_ENDPOINT = ("sagemaker:DescribeEndpoint",)
_READ_ENDPOINT_CONFIG = ("sagemaker:DescribeEndpointConfig",)


# UpdateEndpoint is authorised on the endpoint and on the config it moves to.
_UPDATE_ENDPOINT = Grant("Deploy", ("sagemaker:UpdateEndpoint",), lambda s: [s.endpoint_arn, s.endpoint_config_arn])
# Lists and metric reads the data scientist and the on-call both make; these actions take no resource scope.
_LIST_WITHOUT_RESOURCE_SCOPE = Grant(
    "ListWithoutResourceScope",
    ("sagemaker:ListEndpointConfigs", "sagemaker:ListMonitoringSchedules", "sagemaker:ListMonitoringExecutions",
     "cloudwatch:ListMetrics", "cloudwatch:GetMetricData", "cloudwatch:GetMetricStatistics",
     "cloudwatch:GetMetricWidgetImage"),
    _everything)


def _monitoring_jobs(scope: Scope) -> list[str]:
    return [scope.sagemaker(f"processing-job/{MODEL_MONITOR_JOB_PREFIX}*"), scope.sagemaker(f"processing-job/{PLAIN_JOB_PREFIX}*")]


def _schedules(scope: Scope) -> list[str]:
    names = [scope.schedule_name] if scope.schedule_name else []
    return [scope.sagemaker(f"monitoring-schedule/{name}*") for name in names]


# What each role reads and writes in S3: (Scope fields read, Scope fields written).
S3_ACCESS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "job": (("capture_s3_uri", "monitor_s3_uri", "reports_s3_uri"), ("reports_s3_uri",)),
    "data-scientist": (("capture_s3_uri", "monitor_s3_uri", "reports_s3_uri"), ("monitor_s3_uri",)),
    "oncall": (("capture_s3_uri", "monitor_s3_uri", "reports_s3_uri"), ("reports_s3_uri",)),
    "scheduler": ((), ()),
}
# Which KMS keys each role uses, and how: decrypt what it reads, generate data keys for what it writes.
KMS_ACCESS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "job": (("capture_kms_key_arn", "output_kms_key_arn"), ("output_kms_key_arn",)),
    "data-scientist": (("capture_kms_key_arn", "output_kms_key_arn"), ()),
    "oncall": (("capture_kms_key_arn", "output_kms_key_arn"), ("output_kms_key_arn",)),
    "scheduler": ((), ()),
}

GRANTS: dict[str, tuple[Grant, ...]] = {
    "job": (
        Grant("PullMonitorImage", _ECR_PULL, lambda s: [s.repository_arn()], requires=("image_uri",)),
        Grant("EcrLogin", ("ecr:GetAuthorizationToken",), _everything),
        Grant("ContainerLogGroup", ("logs:CreateLogGroup", "logs:DescribeLogStreams"), lambda s: [s.log_group_arn()]),
        Grant("ContainerLogStreams", ("logs:CreateLogStream", "logs:PutLogEvents"), lambda s: [s.log_group_arn(streams=True)]),
        Grant("ReplayAgainstEndpoint", ("sagemaker:InvokeEndpoint",), lambda s: [s.endpoint_arn]),
        Grant("WhichConfigServed", _READ_ENDPOINT, lambda s: [s.endpoint_arn]),
        Grant("WhichModelsServed", _READ_ENDPOINT_CONFIG, lambda s: [s.endpoint_config_arn]),
        # The plain Processing path publishes its own metrics; Model Monitor publishes with this role too.
        Grant("PublishMonitorMetrics", ("cloudwatch:PutMetricData",), _everything, lambda s: _NAMESPACE),
        # In a VPC (NetworkConfig.VpcConfig) SageMaker attaches the job through interfaces made with this role.
        Grant("JobNetworkInterfaces", ("ec2:CreateNetworkInterface",), lambda s: s.vpc_attachments(), needed=_has("subnets")),
        Grant("JobNetworkInterfaceUpkeep", ("ec2:CreateNetworkInterfacePermission", "ec2:DeleteNetworkInterface",
                                            "ec2:DeleteNetworkInterfacePermission"),
              lambda s: [s.ec2("network-interface/*")], needed=_has("subnets")),
        Grant("JobNetworkLookups", ("ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcs", "ec2:DescribeDhcpOptions",
                                    "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups"), _everything, needed=_has("subnets")),
    ),
    "scheduler": (
        Grant("StartMonitorJob", ("sagemaker:CreateProcessingJob",),
              lambda s: [s.sagemaker(f"processing-job/{PLAIN_JOB_PREFIX}*")]),
        Grant("PassJobRoleToSageMaker", ("iam:PassRole",), _keys("job_role_arn"), _pass_to(SAGEMAKER_SERVICE),
              requires=("job_role_arn",)),
        Grant("EncryptJobVolume", ("kms:CreateGrant",), _keys("volume_kms_key_arn"),
              lambda s: {"Bool": {"kms:GrantIsForAWSResource": "true"}}, needed=_has("volume_kms_key_arn")),
    ),
    "data-scientist": (
        Grant("EndpointDeployments", (*_READ_ENDPOINT, "sagemaker:InvokeEndpoint"), lambda s: [s.endpoint_arn]),
        _UPDATE_ENDPOINT,
        Grant("EndpointConfigs", (*_READ_ENDPOINT_CONFIG, "sagemaker:CreateEndpointConfig"),
              lambda s: [s.endpoint_config_arn]),
        # setup/endpoint_support.py: is a served model multi-model? (model names are the deployer's, not the kit's)
        Grant("ServedModels", ("sagemaker:DescribeModel",), lambda s: [s.sagemaker("model/*")]),
        _LIST_WITHOUT_RESOURCE_SCOPE,
        Grant("MonitoringSchedule", ("sagemaker:CreateMonitoringSchedule", "sagemaker:UpdateMonitoringSchedule",
                                     "sagemaker:DescribeMonitoringSchedule"), _schedules, requires=("schedule_name",)),
        Grant("MonitoringJobs", ("sagemaker:DescribeProcessingJob",), _monitoring_jobs),
        Grant("PassJobRoleToSageMaker", ("iam:PassRole",), _keys("job_role_arn"), _pass_to(SAGEMAKER_SERVICE),
              requires=("job_role_arn",)),
        Grant("PlainPathSchedule", ("scheduler:CreateSchedule", "scheduler:UpdateSchedule", "scheduler:GetSchedule"),
              lambda s: [s.scheduler_schedule_arn()], needed=_has("processing_schedule_name")),
        Grant("PassSchedulerRole", ("iam:PassRole",), _keys("scheduler_role_arn"), _pass_to(SCHEDULER_SERVICE),
              needed=_has("scheduler_role_arn")),
        Grant("Alarms", ("cloudwatch:PutMetricAlarm", "cloudwatch:PutCompositeAlarm", "cloudwatch:DeleteAlarms",
                         "cloudwatch:EnableAlarmActions",
                         "cloudwatch:DisableAlarmActions", "cloudwatch:DescribeAlarms", "cloudwatch:DescribeAlarmHistory"),
              lambda s: [s.alarm_arn()]),
        Grant("Dashboard", ("cloudwatch:PutDashboard", "cloudwatch:GetDashboard"), lambda s: [s.dashboard_arn()]),
        Grant("PagerTopic", ("sns:CreateTopic",), lambda s: [s.topic_arn()], requires=("pager_topic",)),
        Grant("EncryptJobVolume", ("kms:CreateGrant",), _keys("volume_kms_key_arn"),
              lambda s: {"Bool": {"kms:GrantIsForAWSResource": "true"}}, needed=_has("volume_kms_key_arn")),
    ),
    "oncall": (
        Grant("EndpointVerify", (*_READ_ENDPOINT, "sagemaker:InvokeEndpoint"), lambda s: [s.endpoint_arn]),
        _UPDATE_ENDPOINT,
        Grant("EndpointConfigs", _READ_ENDPOINT_CONFIG, lambda s: [s.endpoint_config_arn]),
        _LIST_WITHOUT_RESOURCE_SCOPE,
        # A failed hour is re-run as a one-off NOW schedule named after the schedule (runbooks/monitor_job_failed).
        # (tagged with the hour it re-runs: creating with Tags needs sagemaker:AddTags)
        Grant("MonitoringSchedule", ("sagemaker:DescribeMonitoringSchedule", "sagemaker:CreateMonitoringSchedule",
                                     "sagemaker:DeleteMonitoringSchedule", "sagemaker:AddTags"), _schedules,
              requires=("schedule_name",)),
        Grant("MonitoringJobs", ("sagemaker:DescribeProcessingJob",), _monitoring_jobs),
        Grant("PassJobRoleToSageMaker", ("iam:PassRole",), _keys("job_role_arn"), _pass_to(SAGEMAKER_SERVICE),
              requires=("job_role_arn",)),
        Grant("Alarms", ("cloudwatch:DescribeAlarms", "cloudwatch:DescribeAlarmHistory"), lambda s: [s.alarm_arn()]),
        Grant("Dashboard", ("cloudwatch:GetDashboard",), lambda s: [s.dashboard_arn()]),
        Grant("ContainerLogs", ("logs:GetLogEvents", "logs:FilterLogEvents", "logs:DescribeLogStreams"),
              lambda s: [s.log_group_arn()]),
    ),
}


# --- from botocore operations to IAM actions -------------------------------------------------------

# botocore service name -> IAM service prefix, where they differ.
IAM_PREFIX = {"sagemaker-runtime": "sagemaker", "monitoring": "cloudwatch"}
# Operations whose IAM action is not `<prefix>:<OperationName>` (IAM's service authorization reference).
IAM_ACTION_OF = {
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "ListObjects"): "s3:ListBucket",
    ("s3", "HeadBucket"): "s3:ListBucket",
    ("s3", "HeadObject"): "s3:GetObject",
    ("s3", "CreateMultipartUpload"): "s3:PutObject",
    ("s3", "UploadPart"): "s3:PutObject",
    ("s3", "CompleteMultipartUpload"): "s3:PutObject",
    ("s3", "AbortMultipartUpload"): "s3:AbortMultipartUpload",
    ("s3", "DeleteObjects"): "s3:DeleteObject",
}


def iam_action(service: str, operation: str) -> str:
    """The IAM action a botocore call needs (`s3`, `ListObjectsV2` -> `s3:ListBucket`)."""
    return IAM_ACTION_OF.get((service, operation), f"{IAM_PREFIX.get(service, service)}:{operation}")


# --- the policies ----------------------------------------------------------------------------------


def _s3_statements(role: str, scope: Scope) -> list[dict]:
    reads, writes = S3_ACCESS[role]
    statements = []
    buckets: dict[str, list[str]] = {}
    for name in reads:
        buckets.setdefault(scope.bucket_arn(getattr(scope, name)), []).append(getattr(scope, name))
    for index, (bucket, uris) in enumerate(sorted(buckets.items()), start=1):
        statements.append({"Sid": f"ListKitPrefixes{index}", "Effect": "Allow", "Action": ["s3:ListBucket"],
                           "Resource": [bucket], "Condition": _list_condition(uris)})
    if reads:
        statements.append({"Sid": "ReadKitObjects", "Effect": "Allow", "Action": ["s3:GetObject"],
                           "Resource": _objects(*reads)(scope)})
    if writes:
        statements.append({"Sid": "WriteKitObjects", "Effect": "Allow", "Action": ["s3:PutObject"],
                           "Resource": _objects(*writes)(scope)})
    return statements


def _kms_statements(role: str, scope: Scope) -> list[dict]:
    reads, writes = KMS_ACCESS[role]
    statements = []
    decrypt = _keys(*reads)(scope)
    if decrypt:
        statements.append({"Sid": "DecryptKitData", "Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": decrypt})
    encrypt = _keys(*writes)(scope)
    if encrypt:
        statements.append({"Sid": "EncryptKitOutputs", "Effect": "Allow", "Action": ["kms:GenerateDataKey"],
                           "Resource": encrypt})
    return statements


def missing_inputs(role: str, scope: Scope) -> list[str]:
    """The Scope fields `role`'s policy cannot be scoped without."""
    return sorted({name for grant in GRANTS[role] for name in grant.requires if not getattr(scope, name)})


def policy(role: str, scope: Scope) -> dict:
    """The IAM policy document for `role`, scoped to `scope`; PolicyInputError names what is missing."""
    if role not in GRANTS:
        raise PolicyInputError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    missing = missing_inputs(role, scope)
    if missing:
        raise PolicyInputError(f"the {role} policy needs " + ", ".join(f"--{name.replace('_', '-')}" for name in missing))
    statements = []
    for grant in GRANTS[role]:
        if not grant.needed(scope):
            continue
        statement = {"Sid": grant.sid, "Effect": "Allow", "Action": sorted(grant.actions), "Resource": grant.resources(scope)}
        if grant.condition:
            statement["Condition"] = grant.condition(scope)
        statements.append(statement)
    statements += _s3_statements(role, scope) + _kms_statements(role, scope)
    return {"Version": POLICY_VERSION, "Statement": statements}


def policies(scope: Scope, roles: Iterable[str] = ROLES) -> dict[str, dict]:
    """Every role's policy that `scope` can be scoped for (notebook 03 writes these)."""
    return {role: policy(role, scope) for role in roles if not missing_inputs(role, scope)}


def allowed_actions(document: Mapping) -> set[str]:
    """The actions a policy document allows (lower-cased, as IAM compares them)."""
    return {action.lower() for statement in document["Statement"] if statement["Effect"] == "Allow"
            for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])}


def write_policies(scope: Scope, folder_uri: str) -> dict[str, str]:
    """`<folder>/iam-policy-<role>.json` for every role `scope` covers; returns role -> where written."""
    from diversity_monitor import storage

    written = {}
    for role, document in policies(scope).items():
        uri = f"{folder_uri.rstrip('/')}/iam-policy-{role}.json"
        storage.write_bytes(uri, (json.dumps(document, indent=2) + "\n").encode())
        written[role] = uri
    return written


# --- `diversity-monitor policy ROLE ...` ------------------------------------------------------------

_OPTIONS = (
    ("--account", "account", "the AWS account id (12 digits) the resources live in", True),
    ("--region", "region", "the region of the endpoint, schedule and alarms", True),
    ("--endpoint-name", "endpoint_name", "the monitored SageMaker endpoint", True),
    ("--capture-s3-uri", "capture_s3_uri", "the endpoint's DataCaptureConfig.DestinationS3Uri", True),
    ("--reports-s3-uri", "reports_s3_uri", "where the schedule's reports go (its S3Output.S3Uri)", True),
    ("--monitor-s3-uri", "monitor_s3_uri", "folder of the validation set, catalog and baselines", True),
    ("--schedule-name", "schedule_name", "the monitoring schedule (data-scientist, oncall)", False),
    ("--processing-schedule-name", "processing_schedule_name", "the EventBridge Scheduler schedule of the plain Processing path", False),
    ("--image-uri", "image_uri", "the monitoring image in ECR (job)", False),
    ("--job-role-arn", "job_role_arn", "the job's execution role, passed to SageMaker (scheduler, data-scientist, oncall)", False),
    ("--scheduler-role-arn", "scheduler_role_arn", "the role EventBridge Scheduler assumes (data-scientist)", False),
    ("--pager-topic", "pager_topic", "the SNS topic the alarms notify (data-scientist)", False),
    ("--output-kms-key-arn", "output_kms_key_arn", "KMS key of the reports (MonitoringOutputConfig.KmsKeyId)", False),
    ("--volume-kms-key-arn", "volume_kms_key_arn", "KMS key of the job's volume (ClusterConfig.VolumeKmsKeyId)", False),
    ("--capture-kms-key-arn", "capture_kms_key_arn", "KMS key of the captured data (DataCaptureConfig.KmsKeyId)", False),
)


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("role", choices=ROLES, help="whose policy: the monitoring job's execution role, the EventBridge "
                        "Scheduler role, the data scientist (notebooks), the on-call (runbooks)")
    for flag, dest, help_text, required in _OPTIONS:
        metavar = next((m for suffix, m in (("_uri", "URI"), ("_arn", "ARN"), ("account", "ID"), ("region", "REGION"))
                        if dest.endswith(suffix)), "NAME")
        parser.add_argument(flag, dest=dest, required=required, help=help_text, metavar=metavar)
    parser.add_argument("--subnet", dest="subnets", action="append", default=[], metavar="SUBNET_ID",
                        help="a subnet of the job's NetworkConfig.VpcConfig (repeat; job: its network interfaces)")
    parser.add_argument("--security-group", dest="security_groups", action="append", default=[], metavar="SG_ID",
                        help="a security group of the job's NetworkConfig.VpcConfig (repeat)")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        scope = Scope(**{dest: getattr(args, dest) for _, dest, _, _ in _OPTIONS},
                      subnets=tuple(args.subnets), security_groups=tuple(args.security_groups))
        document = policy(args.role, scope)
    except PolicyInputError as error:
        print(f"diversity-monitor policy: {error}", file=sys.stderr)
        return 2
    print(json.dumps(document, indent=2))
    return 0

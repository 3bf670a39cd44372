"""The IAM policies the kit generates: linted by parliament, scoped as IAM requires, printed by the CLI.

Linter: parliament (duo-labs), because it is a linter: it checks each action against AWS's own
catalogue of actions, resource types and condition keys (shipped inside the wheel, so it runs
offline) and reports malformed statements, mismatched resources and needless `*`. policy_sentry
writes policies from that catalogue but does not audit one it did not write.

Its core auditors must report nothing at all. Its community auditors flag every action that can
manage permissions or return credentials (MEDIUM); the only ones allowed are those the roles
cannot work without, each held by the condition or resource that makes it safe (`INHERENT`).

That every call the kit's code makes is allowed is checked where the calls are audited: the
notebook, runbook and container tests (`helpers.permissions.assert_permitted`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings

import pytest

from diversity_monitor import cli
from diversity_monitor.setup import permissions

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # parliament imports pkg_resources, deprecated
    import parliament
    from parliament import analyze_policy_string, enhance_finding, override_config

ACCOUNT = "123456789012"
KEY = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
MINIMAL = dict(account=ACCOUNT, region="eu-west-1", endpoint_name="recommender-prod",
               capture_s3_uri="s3://recs-capture/capture", reports_s3_uri="s3://recs-monitor/reports",
               monitor_s3_uri="s3://recs-monitor/monitor", schedule_name="recommender-diversity-hourly",
               image_uri=f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/diversity-monitor:v3",
               job_role_arn=f"arn:aws:iam::{ACCOUNT}:role/service-role/AmazonSageMaker-ExecutionRole",
               pager_topic="oncall-pager")
FULL = dict(MINIMAL, scheduler_role_arn=f"arn:aws:iam::{ACCOUNT}:role/diversity-monitor-scheduler",
            processing_schedule_name="recommender-diversity-hourly-processing",
            output_kms_key_arn=KEY, volume_kms_key_arn=KEY.replace("1234abcd", "5678abcd"),
            capture_kms_key_arn=KEY.replace("1234abcd", "9999abcd"),
            subnets=("subnet-0a1b2c3d",), security_groups=("sg-0a1b2c3d",))
SCOPES = {"minimal": permissions.Scope(**MINIMAL), "full": permissions.Scope(**FULL)}
# Community findings the roles cannot do without: (finding, action) -> why it is safe here.
INHERENT = {
    ("PERMISSIONS_MANAGEMENT_ACTIONS", "iam:passrole"): "held to one role and one service by iam:PassedToService",
    ("PERMISSIONS_MANAGEMENT_ACTIONS", "kms:creategrant"): "the volume key only, kms:GrantIsForAWSResource",
    ("PERMISSIONS_MANAGEMENT_ACTIONS", "sns:createtopic"): "the one pager topic's ARN",
    ("PERMISSIONS_MANAGEMENT_ACTIONS", "ec2:createnetworkinterfacepermission"): "AWS's documented VPC set for jobs",
    ("PERMISSIONS_MANAGEMENT_ACTIONS", "ec2:deletenetworkinterfacepermission"): "AWS's documented VPC set for jobs",
    ("CREDENTIALS_EXPOSURE", "ecr:getauthorizationtoken"): "an image pull needs it; it takes no resource",
}


def findings(document: dict, community: bool) -> list:
    found = analyze_policy_string(json.dumps(document), include_community_auditors=community).findings
    return [enhance_finding(finding) for finding in found]


@pytest.fixture(scope="module", autouse=True)
def community_severities():
    override_config(os.path.join(os.path.dirname(parliament.__file__), "community_auditors", "config_override.yaml"))


@pytest.mark.parametrize("scope", SCOPES, ids=str)
@pytest.mark.parametrize("role", permissions.ROLES)
def test_parliament_finds_nothing_in_any_policy(role, scope):
    document = permissions.policy(role, SCOPES[scope])
    assert [(f.issue, f.severity, f.detail) for f in findings(document, community=False)] == []
    for finding in findings(document, community=True):
        actions = finding.detail["actions"] if isinstance(finding.detail, dict) else []
        unexplained = [action for action in actions if (finding.issue, action) not in INHERENT]
        assert not unexplained, f"{role}: {finding.issue} {finding.severity} for {unexplained}"


def statements_with(document: dict, action: str) -> list[dict]:
    return [s for s in document["Statement"] if action in s["Action"]]


def test_describe_endpoint_config_is_granted_on_the_endpoint_configs_arn():
    for role in ("job", "data-scientist", "oncall"):
        (statement,) = statements_with(permissions.policy(role, SCOPES["full"]), "sagemaker:DescribeEndpointConfig")
        assert statement["Resource"] == [f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:endpoint-config/recommender-prod*"]


def test_list_bucket_is_held_to_the_kits_prefixes():
    document = permissions.policy("job", SCOPES["full"])
    listings = statements_with(document, "s3:ListBucket")
    assert {s["Resource"][0] for s in listings} == {"arn:aws:s3:::recs-capture", "arn:aws:s3:::recs-monitor"}
    prefixes = {s["Resource"][0]: s["Condition"]["StringLike"]["s3:prefix"] for s in listings}
    assert prefixes["arn:aws:s3:::recs-monitor"] == ["monitor", "monitor/*", "reports", "reports/*"]
    assert prefixes["arn:aws:s3:::recs-capture"] == ["capture", "capture/*"]
    (writes,) = statements_with(document, "s3:PutObject")
    assert writes["Resource"] == ["arn:aws:s3:::recs-monitor/reports/*"]


def test_pass_role_names_the_role_and_the_service_it_is_passed_to():
    for role in ("scheduler", "data-scientist", "oncall"):
        passes = statements_with(permissions.policy(role, SCOPES["full"]), "iam:PassRole")
        by_service = {s["Condition"]["StringEquals"]["iam:PassedToService"]: s["Resource"] for s in passes}
        assert by_service["sagemaker.amazonaws.com"] == [FULL["job_role_arn"]]
    ds = statements_with(permissions.policy("data-scientist", SCOPES["full"]), "iam:PassRole")
    assert {s["Condition"]["StringEquals"]["iam:PassedToService"] for s in ds} == {
        "sagemaker.amazonaws.com", "scheduler.amazonaws.com"}
    scheduler = permissions.policy("scheduler", SCOPES["minimal"])
    assert permissions.allowed_actions(scheduler) == {"sagemaker:createprocessingjob", "iam:passrole"}


def test_the_job_can_pull_its_image_write_its_logs_and_use_the_keys():
    document = permissions.policy("job", SCOPES["full"])
    (pull,) = statements_with(document, "ecr:BatchGetImage")
    assert pull["Resource"] == [f"arn:aws:ecr:eu-west-1:{ACCOUNT}:repository/diversity-monitor"]
    assert statements_with(document, "logs:PutLogEvents")[0]["Resource"] == [
        f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/aws/sagemaker/ProcessingJobs:log-stream:*"]
    (decrypt,) = statements_with(document, "kms:Decrypt")
    assert set(decrypt["Resource"]) == {FULL["output_kms_key_arn"], FULL["capture_kms_key_arn"]}
    (metrics,) = statements_with(document, "cloudwatch:PutMetricData")
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": "aws/sagemaker/Endpoints/data-metrics"}}
    (interfaces,) = statements_with(document, "ec2:CreateNetworkInterface")
    assert f"arn:aws:ec2:eu-west-1:{ACCOUNT}:subnet/subnet-0a1b2c3d" in interfaces["Resource"]
    minimal = permissions.policy("job", SCOPES["minimal"])
    assert not any(action.startswith(("kms:", "ec2:")) for action in permissions.allowed_actions(minimal))


def test_iam_actions_of_botocore_operations():
    assert permissions.iam_action("s3", "ListObjectsV2") == "s3:ListBucket"
    assert permissions.iam_action("s3", "HeadObject") == "s3:GetObject"
    assert permissions.iam_action("sagemaker-runtime", "InvokeEndpoint") == "sagemaker:InvokeEndpoint"
    assert permissions.iam_action("cloudwatch", "ListMetrics") == "cloudwatch:ListMetrics"


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


BASE_ARGS = ("--account", ACCOUNT, "--region", "eu-west-1", "--endpoint-name", "recommender-prod",
             "--capture-s3-uri", "s3://recs-capture/capture", "--reports-s3-uri", "s3://recs-monitor/reports",
             "--monitor-s3-uri", "s3://recs-monitor/monitor")


def test_cli_prints_the_policy_as_json():
    code, out, _ = run_cli("policy", "job", *BASE_ARGS, "--image-uri", MINIMAL["image_uri"])
    assert code == 0
    assert json.loads(out) == permissions.policy("job", permissions.Scope(**{
        key: MINIMAL[key] for key in ("account", "region", "endpoint_name", "capture_s3_uri", "reports_s3_uri",
                                      "monitor_s3_uri", "image_uri")}))


def test_cli_names_what_a_role_needs_and_what_is_malformed():
    code, out, err = run_cli("policy", "scheduler", *BASE_ARGS)
    assert (code, out) == (2, "")
    assert "the scheduler policy needs --job-role-arn" in err
    code, _, err = run_cli("policy", "job", *BASE_ARGS[:1], "12345", *BASE_ARGS[2:], "--image-uri", "nginx:latest",
                           "--subnet", "subnet-0abc")
    assert code == 2
    assert "--account '12345' is not a 12-digit AWS account id" in err
    assert "--image-uri 'nginx:latest' is not an ECR image URI" in err
    assert "a VPC needs both --subnet and --security-group" in err

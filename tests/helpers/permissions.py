"""Check the botocore calls a role's code made (the tests' audit) against that role's IAM policy.

`assert_permitted(role, audit, scope)` evaluates every audited call the way IAM would for an
Allow-only policy: the action (`permissions.iam_action`) must be allowed by a statement whose
Resource covers the call's resource where the call names one this check can tell (S3 objects and
prefixes, the endpoint), and ListBucket's `s3:prefix` condition must admit the listed prefix. A
new call without a permission fails the test that made it, naming the call and the role.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from diversity_monitor.setup import permissions


def _statements(document: dict, action: str) -> list[dict]:
    return [statement for statement in document["Statement"] if statement["Effect"] == "Allow"
            and any(fnmatchcase(action.lower(), pattern.lower()) for pattern in statement["Action"])]


def _resource(record: dict, scope: permissions.Scope) -> tuple[str | None, str | None]:
    """(resource ARN, s3:prefix) of an audited call, where the audit's parameters name them."""
    params, service = record["params"], record["service"]
    if service == "s3" and "Bucket" in params:
        if "Key" in params:
            return f"arn:aws:s3:::{params['Bucket']}/{params['Key']}", None
        return f"arn:aws:s3:::{params['Bucket']}", params.get("Prefix", "")
    if service in ("sagemaker", "sagemaker-runtime") and record["operation"] in ("InvokeEndpoint", "DescribeEndpoint"):
        return scope.sagemaker(f"endpoint/{params['EndpointName']}"), None
    if service == "iam" and record["operation"] == "PassRole":
        return params["RoleArn"], None
    if service == "sagemaker" and "EndpointConfigName" in params:
        return scope.sagemaker(f"endpoint-config/{params['EndpointConfigName']}"), None
    return None, None


def _allows(statement: dict, resource: str | None, prefix: str | None, passed_to: str | None = None) -> bool:
    if resource is not None and not any(fnmatchcase(resource, pattern) for pattern in statement["Resource"]):
        return False
    service = statement.get("Condition", {}).get("StringEquals", {}).get("iam:PassedToService")
    if passed_to is not None and service != passed_to:
        return False
    condition = statement.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
    return prefix is None or condition is None or any(fnmatchcase(prefix, pattern) for pattern in condition)


def denied_calls(role: str, audit: list[dict], scope: permissions.Scope) -> list[str]:
    document = permissions.policy(role, scope)
    denied = []
    for record in audit:
        action = permissions.iam_action(record["service"], record["operation"])
        resource, prefix = _resource(record, scope)
        passed_to = record["params"].get("PassedToService")
        if not any(_allows(statement, resource, prefix, passed_to) for statement in _statements(document, action)):
            denied.append(f"{record['service']}.{record['operation']} -> {action} on {resource or '*'}"
                          + (f" (prefix {prefix!r})" if prefix is not None else ""))
    return sorted(set(denied))


def assert_permitted(role: str, audit: list[dict], scope: permissions.Scope) -> None:
    assert audit, f"no audited calls to check against the {role} policy"
    denied = denied_calls(role, audit, scope)
    assert not denied, f"the {role} policy (setup/permissions.py GRANTS) does not allow calls its code made:\n" + "\n".join(denied)


def endpoints_called(audit: list[dict]) -> set[str]:
    return {record["params"]["EndpointName"] for record in audit if "EndpointName" in record["params"]}


def scope_for(endpoint: str, *, monitor_s3_uri: str = "s3://recs-monitor/",
              capture_s3_uri: str = "s3://recs-capture/datacapture", reports_s3_uri: str = "s3://recs-monitor/reports",
              schedule_name: str | None = "recommender-diversity-hourly", **extra) -> permissions.Scope:
    """The scope the tests' worlds live in (the demo scenario's buckets, account and region)."""
    defaults = {"image_uri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/diversity-monitor:test",
                "job_role_arn": "arn:aws:iam::123456789012:role/service-role/AmazonSageMaker-ExecutionRole",
                "pager_topic": "oncall-pager"}
    return permissions.Scope(
        account="123456789012", region="eu-west-1", endpoint_name=endpoint, capture_s3_uri=capture_s3_uri,
        reports_s3_uri=reports_s3_uri, monitor_s3_uri=monitor_s3_uri, schedule_name=schedule_name,
        **{**defaults, **extra})


def assert_role_permits(role: str, audit: list[dict], **scope) -> None:
    """Every audited call allowed by `role`'s policy for the one endpoint the calls name."""
    endpoints = endpoints_called(audit)
    assert len(endpoints) <= 1, f"one role's policy covers one endpoint; the calls named {sorted(endpoints)}"
    endpoint = next(iter(endpoints), scope.pop("endpoint", "recommender-prod"))
    scope.pop("endpoint", None)
    assert_permitted(role, audit, scope_for(endpoint, **scope))

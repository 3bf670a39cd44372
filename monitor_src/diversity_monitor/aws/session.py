"""Pointing a notebook's boto3 at AWS or at the local stack: one parameter, no branches.

Notebooks take `endpoint_url` (None for AWS) and `region` as papermill parameters and call
`use_endpoint` once; after that every boto3 client they (and the kit) create goes there through
boto3's own `AWS_ENDPOINT_URL` setting. The kit's code never asks which one it is talking to.

A local stack started by `local up` on this machine is found from its URL (`local_stacks`), and
its credentials are read from its state folder, so a notebook needs nothing but the URL. What
stops a notebook before its first real call (nothing answers at the URL, no credentials, no such
endpoint) is raised as `SetupError`: one sentence that says what to do, shown without a traceback.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request

import boto3
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, NoRegionError

from diversity_monitor.aws import local_stacks

REACH_TIMEOUT_SECONDS = 5


class SetupError(RuntimeError):
    """The notebook cannot start; the message says what to do. Jupyter shows the message alone."""

    def _render_traceback_(self) -> list[str]:  # IPython's hook: the sentence, not 30 frames
        return [f"{type(self).__name__}: {self}"]


def use_endpoint(endpoint_url: str | None, region: str | None = None) -> dict[str, str | None]:
    if endpoint_url:
        os.environ["AWS_ENDPOINT_URL"] = endpoint_url
        _answers(endpoint_url)
        stack = local_stacks.stack_at(endpoint_url)
        credentials = local_stacks.credentials_of(stack) if stack else None
        if credentials:
            os.environ["AWS_ACCESS_KEY_ID"] = credentials["aws_access_key_id"]
            os.environ["AWS_SECRET_ACCESS_KEY"] = credentials["aws_secret_access_key"]
            os.environ.pop("AWS_SESSION_TOKEN", None)
            os.environ.pop("AWS_PROFILE", None)
            region = region or credentials.get("region_name")
    if region:
        os.environ["AWS_DEFAULT_REGION"] = region
        os.environ["AWS_REGION"] = region
    boto3.setup_default_session()  # forget any session built before the settings changed
    if boto3.session.Session().get_credentials() is None:
        raise SetupError(missing_credentials_message(endpoint_url))
    return {"endpoint_url": os.environ.get("AWS_ENDPOINT_URL"), "region": boto3.session.Session().region_name}


def missing_credentials_message(endpoint_url: str | None) -> str:
    if endpoint_url:
        return (f"no credentials for {endpoint_url}: no stack started by `diversity-monitor local up` on this machine "
                f"serves that URL (check endpoint_url, or `diversity-monitor local status`), and no AWS_ACCESS_KEY_ID "
                f"is set in the kernel's environment")
    return ("no AWS credentials: configure them (`aws configure`, or AWS_PROFILE) before starting Jupyter, "
            "or set endpoint_url to the local stack's URL")


def _answers(endpoint_url: str) -> None:
    """Raise SetupError when nothing answers HTTP at `endpoint_url` (any HTTP status is an answer)."""
    try:
        with urllib.request.urlopen(endpoint_url, timeout=REACH_TIMEOUT_SECONDS):
            return
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise SetupError(f"nothing answers at {endpoint_url} ({reason}): start the local stack "
                         f"(`diversity-monitor local up --detach`, or `make drill`), or fix endpoint_url") from None


def require_endpoint(endpoint_name: str) -> dict:
    """DescribeEndpoint, or SetupError naming the endpoints that do exist."""
    try:
        sagemaker = boto3.client("sagemaker")
        return sagemaker.describe_endpoint(EndpointName=endpoint_name)
    except NoRegionError:
        raise SetupError("no AWS region: set AWS_DEFAULT_REGION (or pass region), or point endpoint_url at the "
                         "local stack") from None
    except NoCredentialsError:
        raise SetupError(missing_credentials_message(os.environ.get("AWS_ENDPOINT_URL"))) from None
    except EndpointConnectionError as error:
        raise SetupError(f"nothing answers at {error.kwargs.get('endpoint_url')}: start the local stack "
                         "(`diversity-monitor local up --detach`) or fix the endpoint URL") from None
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ValidationException":
            raise
    names = [item["EndpointName"] for item in sagemaker.list_endpoints(MaxResults=100).get("Endpoints", [])]
    where = os.environ.get("AWS_ENDPOINT_URL") or "AWS"
    raise SetupError(f"endpoint {endpoint_name!r} does not exist in {sagemaker.meta.region_name} at {where}: "
                     f"fix endpoint_name (endpoints there: {', '.join(names) or 'none'})")

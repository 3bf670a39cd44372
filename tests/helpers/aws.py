"""The AWS settings every test that talks to a stand-in (moto, the local stack) shares."""

from __future__ import annotations

REGION = "eu-west-1"


def stack_client(service: str, stack, session=None, **config):
    """A boto3 client for a running local stack (`RunningStack`, `StackHolder` or `LocalPlatform`),
    signing with the credentials the stack generated (it refuses any other), no retries."""
    import boto3
    from botocore.config import Config

    credentials = stack.credentials
    return (session or boto3.session.Session()).client(
        service, endpoint_url=stack.url, region_name=REGION, aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        config=Config(retries={"max_attempts": 1}, **config),
    )


def signed_control_call(stack, method: str, route: str, payload: dict | None = None) -> dict:
    """A `/_local/` control route of the stack, signed as the CLI signs it; the JSON answer."""
    import json
    import urllib.request

    from diversity_monitor.local.access import signed_control_headers

    body = json.dumps(payload).encode() if payload is not None else b""
    url = f"{stack.url}{route}"
    request = urllib.request.Request(url, data=body or None, method=method,
                                     headers=signed_control_headers(method, url, body, stack.credentials))
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())

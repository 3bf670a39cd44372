"""The endpoint's deployments: what is live, turning capture on, rolling out, rolling back.

Data capture lives on the EndpointConfig, not the endpoint, so enabling it on a live endpoint
means a new config (a copy of the variants plus `DataCaptureConfig`) and an UpdateEndpoint;
the old config is kept, which is also what makes a rollback possible.

Deployment history: SageMaker keeps no list of the configs an endpoint has had. The kit's
convention is that an endpoint's configs carry its name (`<endpoint>-...`), so the history is
ListEndpointConfigs(NameContains=endpoint) by creation time; the live one comes from
DescribeEndpoint. A config's creation time stands in for its deploy time (they are minutes apart
in the kit's own flows; CloudTrail's UpdateEndpoint events are the exact record on AWS).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import boto3
import pandas as pd

from diversity_monitor.clock import as_utc, utcnow
from diversity_monitor.setup.endpoint_support import check_supported

_VARIANT_READ_ONLY = ("CurrentWeight", "DesiredWeight", "DeployedImages", "CurrentInstanceCount",
                      "DesiredInstanceCount", "VariantStatus", "CurrentServerlessConfig", "DesiredServerlessConfig")


@dataclass(frozen=True)
class Deployment:
    config_name: str
    created: datetime
    models: tuple[str, ...]
    live: bool
    capture: bool


def sagemaker_client():
    return boto3.client("sagemaker")


def wait_in_service(endpoint_name: str, client=None, poll_seconds: float = 30, max_attempts: int = 120) -> dict:
    """botocore's own waiter; poll faster against the local stack."""
    client = client or sagemaker_client()
    client.get_waiter("endpoint_in_service").wait(
        EndpointName=endpoint_name, WaiterConfig={"Delay": poll_seconds, "MaxAttempts": max_attempts})
    return client.describe_endpoint(EndpointName=endpoint_name)


def capture_state(endpoint_name: str, client=None) -> dict:
    """The live config and its capture settings, as a notebook shows them."""
    client = client or sagemaker_client()
    endpoint = client.describe_endpoint(EndpointName=endpoint_name)
    config = client.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    capture = config.get("DataCaptureConfig") or {}
    return {
        "endpoint": endpoint_name,
        "status": endpoint["EndpointStatus"],
        "config": endpoint["EndpointConfigName"],
        "variants": [variant["VariantName"] for variant in config["ProductionVariants"]],
        "capture_enabled": bool(capture.get("EnableCapture")),
        "destination": capture.get("DestinationS3Uri"),
        "sampling_percentage": capture.get("InitialSamplingPercentage"),
        "capture_options": [option["CaptureMode"] for option in capture.get("CaptureOptions", [])],
        "json_content_types": (capture.get("CaptureContentTypeHeader") or {}).get("JsonContentTypes", []),
        "kms_key": capture.get("KmsKeyId") or None,
    }


def capture_kms_key(endpoint_name: str, client=None) -> str | None:
    """The KMS key the endpoint's capture is encrypted with (DataCaptureConfig.KmsKeyId), if any."""
    client = client or sagemaker_client()
    config = client.describe_endpoint_config(
        EndpointConfigName=client.describe_endpoint(EndpointName=endpoint_name)["EndpointConfigName"])
    return (config.get("DataCaptureConfig") or {}).get("KmsKeyId") or None


def data_capture_config(destination_s3_uri: str, sampling_percentage: int = 100,
                        json_content_types: tuple[str, ...] = ("application/json",), kms_key_id: str | None = None) -> dict:
    """DataCaptureConfig; `kms_key_id` encrypts the captured objects (readers then need kms:Decrypt on it)."""
    if not 0 <= sampling_percentage <= 100:
        raise ValueError(f"sampling_percentage must be 0-100, got {sampling_percentage}")
    return {
        **({"KmsKeyId": kms_key_id} if kms_key_id else {}),
        "EnableCapture": True,
        "InitialSamplingPercentage": sampling_percentage,
        "DestinationS3Uri": destination_s3_uri,
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        # JSON content types keep payloads readable (not base64) in the capture files.
        "CaptureContentTypeHeader": {"JsonContentTypes": list(json_content_types)},
    }


def new_config_name(endpoint_name: str, purpose: str, now: datetime | None = None) -> str:
    stamp = (now or utcnow()).strftime("%Y%m%d-%H%M%S")
    return f"{endpoint_name}-{purpose}-{stamp}"[:63]


def enable_capture(endpoint_name: str, destination_s3_uri: str, sampling_percentage: int = 100,
                   json_content_types: tuple[str, ...] = ("application/json",), *, client=None,
                   poll_seconds: float = 30, kms_key_id: str | None = None) -> tuple[bool, str]:
    """Returns (changed, message). Already capturing as asked: nothing changes."""
    client = client or sagemaker_client()
    check_supported(endpoint_name, client)  # serverless endpoints cannot capture
    state = capture_state(endpoint_name, client)
    wanted = data_capture_config(destination_s3_uri, sampling_percentage, json_content_types, kms_key_id)
    if (state["capture_enabled"] and state["destination"] == destination_s3_uri
            and state["kms_key"] == kms_key_id
            and state["sampling_percentage"] == sampling_percentage
            and set(state["json_content_types"]) == set(json_content_types)):
        return False, f"capture already on for {endpoint_name} ({state['config']}); nothing changed"
    current = client.describe_endpoint_config(EndpointConfigName=state["config"])
    name = new_config_name(endpoint_name, "capture")
    client.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[{k: v for k, v in variant.items() if k not in _VARIANT_READ_ONLY}
                            for variant in current["ProductionVariants"]],
        DataCaptureConfig=wanted,
    )
    deploy_config(endpoint_name, name, client=client, poll_seconds=poll_seconds)
    return True, f"{endpoint_name} now on {name} with capture to {destination_s3_uri} ({sampling_percentage}%)"


def deploy_config(endpoint_name: str, config_name: str, *, deployment_config: dict | None = None,
                  client=None, poll_seconds: float = 30) -> dict:
    """UpdateEndpoint to `config_name` and wait until it serves (blue/green when configured)."""
    client = client or sagemaker_client()
    request = {"EndpointName": endpoint_name, "EndpointConfigName": config_name}
    if deployment_config:
        request["DeploymentConfig"] = deployment_config
    client.update_endpoint(**request)
    return wait_in_service(endpoint_name, client, poll_seconds)


def describe_config(config_name: str, live_config: str | None = None, client=None) -> Deployment:
    """One endpoint config as a Deployment (its models per variant, capture on or off)."""
    client = client or sagemaker_client()
    config = client.describe_endpoint_config(EndpointConfigName=config_name)
    return Deployment(
        config_name=config_name,
        created=as_utc(config["CreationTime"]),
        models=tuple(variant["ModelName"] for variant in config["ProductionVariants"]),
        live=config_name == live_config,
        capture=bool((config.get("DataCaptureConfig") or {}).get("EnableCapture")),
    )


def deployments(endpoint_name: str, client=None) -> list[Deployment]:
    """The endpoint's configs (named `<endpoint>` or `<endpoint>-...`, the kit's convention), oldest first.

    ListEndpointConfigs' NameContains is a substring match, so names are checked again here:
    `recommender-prod` must not pick up `staging-recommender-prod-...`.
    """
    client = client or sagemaker_client()
    live = client.describe_endpoint(EndpointName=endpoint_name)["EndpointConfigName"]
    names = []
    for page in client.get_paginator("list_endpoint_configs").paginate(
            NameContains=endpoint_name, SortBy="CreationTime", SortOrder="Ascending"):
        names += [summary["EndpointConfigName"] for summary in page["EndpointConfigs"]
                  if summary["EndpointConfigName"] == endpoint_name
                  or summary["EndpointConfigName"].startswith(f"{endpoint_name}-")]
    if live not in names:  # a live config named otherwise is still part of the history
        names.append(live)
    return sorted((describe_config(name, live, client) for name in names), key=lambda d: d.created)


def deployments_frame(history: list[Deployment]) -> pd.DataFrame:
    return pd.DataFrame([{
        "created": d.created, "config": d.config_name, "models": ", ".join(d.models),
        "live": d.live, "capture": d.capture,
    } for d in history])


def previous_config(history: list[Deployment]) -> Deployment | None:
    """The config that was live before the current one (the default rollback target)."""
    live_positions = [i for i, d in enumerate(history) if d.live]
    if not live_positions or live_positions[0] == 0:
        return None
    return history[live_positions[0] - 1]

"""Endpoints the monitor cannot watch, recognised before anything is created (notebooks 01 and 03).

- Serverless endpoints (a variant with `ServerlessConfig`): SageMaker Serverless Inference does
  not support data capture or Model Monitor (developer guide, "Serverless Inference", feature
  exclusions). Without capture there is no live traffic, and Model Monitor has nothing to run on.
- Multi-model endpoints (a model whose container has `Mode: MultiModel`): Model Monitor does not
  support them (developer guide, Model Monitor overview), and the replay would have to name a
  `TargetModel` on every call, which it does not.

`check_supported` raises `UnsupportedEndpoint` naming every reason at once; the set-up functions
(`deployment.enable_capture`, `schedule.apply_schedule`, `processing_schedule.apply_processing_schedule`)
call it first, so nothing is half set up.
"""

from __future__ import annotations

import boto3

SERVERLESS_REASON = ("is a serverless endpoint: Serverless Inference supports neither data capture nor Model Monitor "
                     "(SageMaker developer guide, Serverless Inference feature exclusions), so there would be no live "
                     "traffic to read and no schedule to run. Monitor a provisioned (instance-backed) endpoint")
MULTI_MODEL_REASON = ("is a multi-model endpoint: Model Monitor does not support multi-model endpoints (SageMaker "
                      "developer guide, Model Monitor), and the replay sends no TargetModel. Monitor a single-model "
                      "endpoint serving the recommender")


class UnsupportedEndpoint(ValueError):
    """The endpoint is of a kind the monitor cannot watch; the message says why."""


def endpoint_problems(endpoint_name: str, client=None) -> list[str]:
    """Why `endpoint_name` cannot be monitored (empty when it can)."""
    client = client or boto3.client("sagemaker")
    config_name = client.describe_endpoint(EndpointName=endpoint_name)["EndpointConfigName"]
    config = client.describe_endpoint_config(EndpointConfigName=config_name)
    problems = []
    variants = config.get("ProductionVariants", [])
    serverless = [v["VariantName"] for v in variants if v.get("ServerlessConfig")]
    if serverless:
        problems.append(f"{endpoint_name} {SERVERLESS_REASON} (variants {', '.join(serverless)} of {config_name})")
    multi_model = []
    for variant in variants:
        if not variant.get("ModelName"):
            continue
        model = client.describe_model(ModelName=variant["ModelName"])
        containers = [model.get("PrimaryContainer") or {}, *model.get("Containers", [])]
        if any(container.get("Mode") == "MultiModel" for container in containers):
            multi_model.append(variant["ModelName"])
    if multi_model:
        problems.append(f"{endpoint_name} {MULTI_MODEL_REASON} (models {', '.join(multi_model)} run in MultiModel mode)")
    return problems


def check_supported(endpoint_name: str, client=None) -> None:
    problems = endpoint_problems(endpoint_name, client)
    if problems:
        raise UnsupportedEndpoint("; ".join(problems))

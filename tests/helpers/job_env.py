"""The monitoring job's test world: a SageMaker Runtime endpoint server and the job's inputs in moto.

Shared by the container tests (test_monitoring_job.py) and the report tests (test_report.py):
`runtime` serves InvokeEndpoint (helpers/runtime_server.py), `stack_env` puts the validation set
and the catalog in moto's S3 and a `healthy-recs` endpoint in moto's SageMaker control plane.
tests/conftest.py registers this module as a plugin, so its fixtures are there for every test.
"""

from __future__ import annotations

import json

import boto3
import pytest

from diversity_monitor.local.platform import free_port
from helpers.runtime_server import RuntimeServer, catalog_rows

SESSIONS = 40
BUCKET = "recs-monitor"
CATALOG_KEY = "catalog/catalog.csv"
ARGS = ["--validation-set", f"s3://{BUCKET}/validation/sessions.jsonl",
        "--catalog", f"s3://{BUCKET}/{CATALOG_KEY}", "--concurrency", "8"]
# What the moto control plane says serves `healthy-recs` (DescribeEndpoint / DescribeEndpointConfig).
HEALTHY_CONFIG, HEALTHY_MODEL = "healthy-recs-config-v3", "healthy-recs-model-v3"
ROLE = "arn:aws:iam::123456789012:role/monitor"


def catalog_csv(rows) -> bytes:
    return ("article_id,category,title\n" + "\n".join(f"{a},{c},t" for a, c in rows)).encode()


@pytest.fixture(scope="module")
def runtime():
    server = RuntimeServer(free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def fresh_runtime(runtime):
    """Each test sees only its own calls (the flaky and throttled endpoints count calls per user)."""
    runtime.calls.clear()
    runtime.invocations = 0
    runtime.inference_ids.clear()
    runtime.bodies.clear()
    runtime.target_variants.clear()
    runtime.control_plane_calls.clear()
    runtime.on_invoke = None
    yield
    runtime.on_invoke = None


def create_endpoint(sagemaker, endpoint: str, config: str, model: str) -> None:
    sagemaker.create_model(ModelName=model, ExecutionRoleArn=ROLE,
                           PrimaryContainer={"Image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/recs:1"})
    sagemaker.create_endpoint_config(EndpointConfigName=config, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": model, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)


@pytest.fixture
def stack_env(aws_env, runtime, monkeypatch):
    """S3, CloudWatch and the SageMaker control plane on moto; SageMaker Runtime on the test endpoint server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", runtime.url)
    stage_inputs()
    return aws_env


def stage_inputs() -> None:
    """The validation set and the catalog in S3, `healthy-recs` in the control plane (idempotent)."""
    s3 = boto3.client("s3")
    if BUCKET not in {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    sessions = "\n".join(
        json.dumps({"session_id": f"s{i:03d}", "request": {"user_id": f"u{i:03d}", "history": [], "k": 10}})
        for i in range(SESSIONS)
    )
    s3.put_object(Bucket=BUCKET, Key="validation/sessions.jsonl", Body=sessions.encode())
    s3.put_object(Bucket=BUCKET, Key=CATALOG_KEY, Body=catalog_csv(catalog_rows()))
    sagemaker = boto3.client("sagemaker")
    if not sagemaker.list_endpoints(NameContains="healthy-recs")["Endpoints"]:
        create_endpoint(sagemaker, "healthy-recs", HEALTHY_CONFIG, HEALTHY_MODEL)



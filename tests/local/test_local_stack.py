"""The embedded local stack's gateway, SageMaker hosting and runtime, over real HTTP with plain boto3.

One stack per module (simulated clock, moto child process, real model servers of the reference
recommender); the tests share it and run in file order (`--dist loadfile`). The last test
restarts it on the same state folder and port.
"""

from __future__ import annotations

import base64
import functools
import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
from botocore.exceptions import ClientError

from diversity_monitor.capture import record as capture
from diversity_monitor.local.platform import PortInUse
from diversity_monitor.local.stack import start_stack
from helpers.aws import REGION, signed_control_call, stack_client
from helpers.stack import StackHolder

pytestmark = pytest.mark.slow

START = datetime(2027, 10, 31, 6, 0, tzinfo=timezone.utc)
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/news-recommender:1.0"
ROLE = "arn:aws:iam::123456789012:role/sagemaker-execution"
BUCKET = "models"
CAPTURE_URI = f"s3://{BUCKET}/datacapture"
REQUEST = {"user_id": "u0001", "history": [], "k": 3}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with StackHolder(tmp_path_factory.mktemp("local-stack"), START) as holder:
        yield holder


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    """Two versions of a small reference model: model.tar.gz paths by version."""
    from diversity_monitor.recommender import data, model

    root = tmp_path_factory.mktemp("models")
    data.generate(root / "data", n_articles=170, n_users=200, n_validation=20)
    return {version: model.train(root / "data", root / version, version) for version in ("v1", "v2")}


def client(stack, service, **config):
    return _client(stack, service, tuple(sorted(config.items())))


@functools.cache
def _client(stack, service, config):
    return stack_client(service, stack, **dict(config))


def capture_config(percentage=100):
    return {
        "EnableCapture": True,
        "InitialSamplingPercentage": percentage,
        "DestinationS3Uri": CAPTURE_URI,
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
    }


def variant(name, model, weight=1.0):
    return {"VariantName": name, "ModelName": model, "InitialInstanceCount": 1,
            "InstanceType": "ml.m5.large", "InitialVariantWeight": weight}


@pytest.fixture(scope="module")
def deployed(stack, archives):
    """Models m-v1/m-v2, configs c-v1/c-v2 (capture on), endpoint `recs` serving c-v1."""
    s3, sagemaker = client(stack, "s3"), client(stack, "sagemaker")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    for version, archive in archives.items():
        s3.upload_file(str(archive), BUCKET, f"{version}/model.tar.gz")
        sagemaker.create_model(
            ModelName=f"m-{version}", ExecutionRoleArn=ROLE,
            PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/{version}/model.tar.gz"},
        )
        sagemaker.create_endpoint_config(
            EndpointConfigName=f"c-{version}", ProductionVariants=[variant("AllTraffic", f"m-{version}")],
            DataCaptureConfig=capture_config(),
        )
    sagemaker.create_endpoint(EndpointName="recs", EndpointConfigName="c-v1")
    sagemaker.get_waiter("endpoint_in_service").wait(EndpointName="recs", WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    return "recs"


def invoke(stack, endpoint, **extra):
    answer = client(stack, "sagemaker-runtime").invoke_endpoint(
        EndpointName=endpoint, Body=json.dumps(REQUEST), ContentType="application/json", Accept="application/json", **extra
    )
    return answer, json.loads(answer["Body"].read())


def advance(stack, seconds):
    return signed_control_call(stack, "POST", "/_local/advance", {"seconds": seconds})


def error_of(call, *args, **kwargs) -> dict:
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    return caught.value.response


# --- hosting and runtime, end to end ------------------------------------------------------------

def test_endpoint_describes_its_deployment(stack, deployed):
    description = client(stack, "sagemaker").describe_endpoint(EndpointName=deployed)
    assert description["EndpointStatus"] == "InService"
    assert description["EndpointConfigName"] == "c-v1"
    assert description["EndpointArn"] == "arn:aws:sagemaker:eu-west-1:123456789012:endpoint/recs"
    assert description["CreationTime"] == START
    [summary] = description["ProductionVariants"]
    assert (summary["VariantName"], summary["CurrentWeight"], summary["DesiredWeight"]) == ("AllTraffic", 1.0, 1.0)
    assert summary["DeployedImages"][0]["SpecifiedImage"] == IMAGE
    assert description["DataCaptureConfig"] == {
        "EnableCapture": True, "CaptureStatus": "Started", "CurrentSamplingPercentage": 100,
        "DestinationS3Uri": CAPTURE_URI, "KmsKeyId": "",
    }
    listed = client(stack, "sagemaker").list_endpoints(NameContains="rec")["Endpoints"]
    assert [(item["EndpointName"], item["EndpointStatus"]) for item in listed] == [("recs", "InService")]


def test_invocation_is_served_and_captured_at_the_clock_hour(stack, deployed):
    hour = stack.platform.clock.now()
    answer, body = invoke(stack, deployed, InferenceId="live-0001", CustomAttributes="trace=1")
    assert answer["InvokedProductionVariant"] == "AllTraffic"
    assert answer["ContentType"] == "application/json"
    assert body["model_version"] == "v1" and len(body["recommendations"]) == 3

    advance(stack, 60)  # the minute tick delivers the buffered capture to S3
    prefix = f"datacapture/{deployed}/AllTraffic/{capture.hour_path(hour)}/"
    s3 = client(stack, "s3")
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]
    events = [
        capture.parse_line(line)
        for key in keys
        for line in s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().splitlines()
    ]
    [event] = [event for event in events if event.inference_id == "live-0001"]
    assert event.inference_time == hour
    assert event.custom_attributes == "trace=1"
    assert event.input_payload.encoding == "JSON" and event.input_payload.json() == REQUEST
    assert event.output_payload.content_type == "application/json"
    assert event.output_payload.json() == body


def test_model_errors_come_back_as_424_with_the_original_status(stack, deployed):
    runtime = client(stack, "sagemaker-runtime")
    response = error_of(runtime.invoke_endpoint, EndpointName=deployed, Body=b"not json", ContentType="application/json")
    assert response["Error"]["Code"] == "ModelError"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert response["OriginalStatusCode"] == 400
    assert "not valid JSON" in response["OriginalMessage"]
    assert response["Error"]["Message"].startswith("Received client error (400) from primary with message")


def test_update_endpoint_rolls_out_a_new_config_and_back(stack, deployed):
    sagemaker = client(stack, "sagemaker")
    policy = {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}}}
    sagemaker.update_endpoint(EndpointName=deployed, EndpointConfigName="c-v2", DeploymentConfig=policy)
    sagemaker.get_waiter("endpoint_in_service").wait(EndpointName=deployed, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    description = sagemaker.describe_endpoint(EndpointName=deployed)
    assert description["EndpointConfigName"] == "c-v2"
    assert description["LastDeploymentConfig"] == policy
    assert "PendingDeploymentSummary" not in description
    assert invoke(stack, deployed)[1]["model_version"] == "v2"
    assert sagemaker.describe_endpoint_config(EndpointConfigName="c-v1")["ProductionVariants"][0]["ModelName"] == "m-v1"

    sagemaker.update_endpoint(EndpointName=deployed, EndpointConfigName="c-v1", RetainAllVariantProperties=True)
    sagemaker.get_waiter("endpoint_in_service").wait(EndpointName=deployed, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    assert sagemaker.describe_endpoint(EndpointName=deployed)["EndpointConfigName"] == "c-v1"
    assert invoke(stack, deployed)[1]["model_version"] == "v1"


def test_a_deployment_that_cannot_start_fails_and_a_failed_rollout_keeps_the_old_one(stack, deployed):
    s3, sagemaker = client(stack, "s3"), client(stack, "sagemaker")
    s3.put_object(Bucket=BUCKET, Key="broken/model.tar.gz", Body=b"not an archive")
    sagemaker.create_model(ModelName="m-broken", ExecutionRoleArn=ROLE,
                           PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/broken/model.tar.gz"})
    sagemaker.create_endpoint_config(EndpointConfigName="c-broken", ProductionVariants=[variant("AllTraffic", "m-broken")])
    sagemaker.create_endpoint(EndpointName="broken", EndpointConfigName="c-broken")
    with pytest.raises(Exception, match="Failed"):  # the waiter stops on a Failed endpoint
        sagemaker.get_waiter("endpoint_in_service").wait(EndpointName="broken", WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    description = sagemaker.describe_endpoint(EndpointName="broken")
    assert "is not a gzipped tar archive" in description["FailureReason"]
    error = error_of(invoke, stack, "broken")["Error"]
    assert error["Code"] == "ValidationError" and "not in service (status Failed)" in error["Message"]
    sagemaker.delete_endpoint(EndpointName="broken")

    sagemaker.update_endpoint(EndpointName=deployed, EndpointConfigName="c-broken")
    sagemaker.get_waiter("endpoint_in_service").wait(EndpointName=deployed, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    description = sagemaker.describe_endpoint(EndpointName=deployed)
    assert description["EndpointConfigName"] == "c-v1"
    assert "update to c-broken failed" in description["FailureReason"]
    assert invoke(stack, deployed)[1]["model_version"] == "v1"


def test_target_variant_and_weights_route_invocations(stack, deployed):
    sagemaker = client(stack, "sagemaker")
    sagemaker.create_endpoint_config(
        EndpointConfigName="c-canary", ProductionVariants=[variant("Main", "m-v1", 1.0), variant("Canary", "m-v2", 0.0)]
    )
    sagemaker.create_endpoint(EndpointName="canary", EndpointConfigName="c-canary")
    sagemaker.get_waiter("endpoint_in_service").wait(EndpointName="canary", WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    try:
        answer, body = invoke(stack, "canary")  # weight 0 never receives untargeted traffic
        assert (answer["InvokedProductionVariant"], body["model_version"]) == ("Main", "v1")
        answer, body = invoke(stack, "canary", TargetVariant="Canary")
        assert (answer["InvokedProductionVariant"], body["model_version"]) == ("Canary", "v2")
        response = error_of(invoke, stack, "canary", TargetVariant="Shadow")
        assert response["Error"]["Code"] == "ValidationError"
        assert "Shadow" in response["Error"]["Message"]
        assert "DataCaptureConfig" not in sagemaker.describe_endpoint(EndpointName="canary")
    finally:
        sagemaker.delete_endpoint(EndpointName="canary")
    assert error_of(sagemaker.describe_endpoint, EndpointName="canary")["Error"]["Code"] == "ValidationException"


# --- data capture as each endpoint config says ---------------------------------------------------

ECHO_SERVER = """
import os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Echo(BaseHTTPRequestHandler):  # a model that answers with what it was sent
    def do_GET(self):
        self.send_response(200 if self.path == "/ping" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", self.headers.get("Content-Type", "application/octet-stream"))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(os.environ["SAGEMAKER_BIND_TO_PORT"])), Echo).serve_forever()
"""
ECHO_IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/echo-model:1"


@pytest.fixture(scope="module")
def echo_endpoints(stack, tmp_path_factory):
    """An echo model behind three endpoints whose capture configs differ; deleted afterwards."""
    from diversity_monitor.local import images

    folder = tmp_path_factory.mktemp("echo")
    (folder / "echo.py").write_text(ECHO_SERVER)
    (folder / "Dockerfile.echo").write_text(f'FROM python:3.12-slim\nWORKDIR /opt/ml\nENTRYPOINT ["python", "{folder / "echo.py"}"]\n')
    sagemaker = client(stack, "sagemaker")
    configs = {
        "echo-sampled": capture_config(percentage=30),
        "echo-input-only": {**capture_config(), "CaptureOptions": [{"CaptureMode": "Input"}]},
        "echo-csv": {**capture_config(), "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"]}},
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(images.LOCAL_IMAGES, "echo-model", str(folder / "Dockerfile.echo"))
        s3 = client(stack, "s3")
        if BUCKET not in {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}:
            s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        sagemaker.create_model(ModelName="echo", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": ECHO_IMAGE})
        for name, config in configs.items():
            sagemaker.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant("AllTraffic", "echo")],
                                             DataCaptureConfig=config)
            sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
        for name in configs:
            sagemaker.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        yield list(configs)
        for name in configs:
            sagemaker.delete_endpoint(EndpointName=name)


def captured_lines(stack, endpoint) -> list[dict]:
    """Every capture line S3 holds for the endpoint, after the minute tick that delivers them."""
    advance(stack, 60)
    s3 = client(stack, "s3")
    keys = [item["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"datacapture/{endpoint}/AllTraffic/")
            for item in page.get("Contents", [])]
    return [json.loads(line) for key in keys for line in s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().splitlines()]


def test_capture_samples_the_configured_percentage(stack, echo_endpoints):
    runtime = client(stack, "sagemaker-runtime")

    def call(n):
        runtime.invoke_endpoint(EndpointName="echo-sampled", Body=json.dumps({"n": n}), ContentType="application/json")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(call, range(300)))
    lines = captured_lines(stack, "echo-sampled")
    # 30% of 300 is 90 (standard deviation 7.9): outside 40..140 happens about once in 10^10 runs.
    assert 40 <= len(lines) <= 140, len(lines)
    assert all(line["captureData"]["endpointOutput"]["encoding"] == "JSON" for line in lines)
    numbers = [json.loads(line["captureData"]["endpointInput"]["data"])["n"] for line in lines]
    assert len(set(numbers)) == len(numbers)  # each captured invocation once


def test_capture_options_input_only_leave_the_output_out(stack, echo_endpoints):
    client(stack, "sagemaker-runtime").invoke_endpoint(EndpointName="echo-input-only", Body=json.dumps(REQUEST),
                                                       ContentType="application/json", InferenceId="only-input")
    [line] = captured_lines(stack, "echo-input-only")
    assert list(line["captureData"]) == ["endpointInput"]
    assert line["captureData"]["endpointInput"] == {
        "observedContentType": "application/json", "mode": "INPUT", "data": json.dumps(REQUEST), "encoding": "JSON"}
    assert line["eventMetadata"]["inferenceId"] == "only-input"


def test_csv_content_types_are_kept_as_text_and_unlisted_ones_base64(stack, echo_endpoints):
    runtime = client(stack, "sagemaker-runtime")
    runtime.invoke_endpoint(EndpointName="echo-csv", Body=b"u0001,3\n", ContentType="text/csv", InferenceId="csv")
    binary = bytes(range(256))
    runtime.invoke_endpoint(EndpointName="echo-csv", Body=binary, ContentType="application/x-npy", InferenceId="npy")
    by_id = {line["eventMetadata"]["inferenceId"]: line["captureData"] for line in captured_lines(stack, "echo-csv")}
    assert by_id["csv"]["endpointInput"] == {"observedContentType": "text/csv", "mode": "INPUT", "data": "u0001,3\n", "encoding": "CSV"}
    assert by_id["csv"]["endpointOutput"] == {"observedContentType": "text/csv", "mode": "OUTPUT", "data": "u0001,3\n", "encoding": "CSV"}
    encoded = base64.b64encode(binary).decode()
    for side, mode in (("endpointInput", "INPUT"), ("endpointOutput", "OUTPUT")):
        assert by_id["npy"][side] == {"observedContentType": "application/x-npy", "mode": mode, "data": encoded, "encoding": "BASE64"}


# --- error paths --------------------------------------------------------------------------------

def test_unknown_endpoint_is_a_validation_error_everywhere(stack, deployed):
    sagemaker, runtime = client(stack, "sagemaker"), client(stack, "sagemaker-runtime")
    arn = "arn:aws:sagemaker:eu-west-1:123456789012:endpoint/missing"
    for call, kwargs in (
        (sagemaker.describe_endpoint, {}),
        (sagemaker.delete_endpoint, {}),
        (sagemaker.update_endpoint, {"EndpointConfigName": "c-v1"}),
    ):
        error = error_of(call, EndpointName="missing", **kwargs)["Error"]
        assert (error["Code"], error["Message"]) == ("ValidationException", f'Could not find endpoint "{arn}".')
    error = error_of(runtime.invoke_endpoint, EndpointName="missing", Body=b"{}", ContentType="application/json")["Error"]
    assert (error["Code"], error["Message"]) == ("ValidationError", "Endpoint missing of account 123456789012 not found.")


def test_create_and_update_refer_to_what_exists(stack, deployed):
    sagemaker = client(stack, "sagemaker")
    error = error_of(sagemaker.create_endpoint, EndpointName=deployed, EndpointConfigName="c-v1")["Error"]
    assert error["Message"] == 'Cannot create already existing endpoint "arn:aws:sagemaker:eu-west-1:123456789012:endpoint/recs".'
    error = error_of(sagemaker.create_endpoint, EndpointName="other", EndpointConfigName="c-missing")["Error"]
    assert error["Message"] == 'Could not find endpoint configuration "arn:aws:sagemaker:eu-west-1:123456789012:endpoint-config/c-missing".'
    error = error_of(sagemaker.update_endpoint, EndpointName=deployed, EndpointConfigName="c-missing")["Error"]
    assert "Could not find endpoint configuration" in error["Message"]
    error = error_of(sagemaker.create_endpoint_config, EndpointConfigName="c-x", ProductionVariants=[variant("A", "m-missing")])["Error"]
    assert error["Message"] == 'Could not find model "arn:aws:sagemaker:eu-west-1:123456789012:model/m-missing".'
    error = error_of(sagemaker.create_model, ModelName="m-bad", ExecutionRoleArn=ROLE,
                     PrimaryContainer={"Image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/unknown:1"})["Error"]
    assert error["Code"] == "ValidationException" and "unknown" in error["Message"]
    error = error_of(sagemaker.create_model, ModelName="m-bad", ExecutionRoleArn=ROLE,
                     PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/nothing/model.tar.gz"})["Error"]
    assert error["Message"].startswith(f"Could not access model data at s3://{BUCKET}/nothing/model.tar.gz")
    assert sagemaker.describe_endpoint(EndpointName=deployed)["EndpointConfigName"] == "c-v1"


def test_requests_are_validated_against_the_service_model_at_the_server(stack, deployed):
    sagemaker = client(stack, "sagemaker", parameter_validation=False)
    runtime = client(stack, "sagemaker-runtime", parameter_validation=False)
    error = error_of(sagemaker.describe_endpoint)["Error"]
    assert error["Code"] == "ValidationException" and 'Missing required parameter in input: "EndpointName"' in error["Message"]
    error = error_of(sagemaker.create_endpoint_config, EndpointConfigName="c-bad",
                     ProductionVariants=[variant("A", "m-v1")], DataCaptureConfig=capture_config(percentage=150))["Error"]
    assert error["Message"] == (
        "1 validation error detected: Value '150' at 'dataCaptureConfig.initialSamplingPercentage' failed to "
        "satisfy constraint: Member must have value less than or equal to 100"
    )
    error = error_of(sagemaker.create_endpoint, EndpointName="other", EndpointConfigName=123)["Error"]
    assert "Invalid type for parameter EndpointConfigName" in error["Message"]
    error = error_of(sagemaker.create_endpoint, EndpointName="bad name!", EndpointConfigName="c-v1")["Error"]
    assert "Value 'bad name!' at 'endpointName' failed to satisfy constraint" in error["Message"]
    error = error_of(runtime.invoke_endpoint, EndpointName="bad name!", Body=b"{}")["Error"]
    assert error["Code"] == "ValidationError" and "at 'endpointName' failed to satisfy constraint" in error["Message"]
    with pytest.raises(ClientError):
        sagemaker.describe_endpoint_config(EndpointConfigName="c-bad")  # nothing was stored


def test_unimplemented_sagemaker_operations_say_so(stack):
    error = error_of(client(stack, "sagemaker").list_training_jobs)["Error"]
    assert error["Code"] == "UnknownOperationException"
    assert "ListTrainingJobs" in error["Message"]


def test_control_routes(stack):
    assert signed_control_call(stack, "GET", "/_local/clock")["simulated"] is True
    with pytest.raises(urllib.error.HTTPError) as caught:
        advance(stack, -5)
    assert caught.value.code == 400


def test_a_taken_port_is_a_clear_error(stack, tmp_path):
    with pytest.raises(PortInUse, match=f"port {stack.port} on 127.0.0.1 is already in use"):
        start_stack(tmp_path, port=stack.port)


def test_restart_keeps_state_and_redeploys_endpoints(stack, deployed):
    s3 = client(stack, "s3")
    s3.put_object(Bucket=BUCKET, Key="reports/recs/2027/10/31/07/constraint_violations.json", Body=b'{"violations": []}')
    configs_before = client(stack, "sagemaker").list_endpoint_configs(SortBy="Name", SortOrder="Ascending")["EndpointConfigs"]
    stack.restart()
    assert s3.get_object(Bucket=BUCKET, Key="reports/recs/2027/10/31/07/constraint_violations.json")["Body"].read() == b'{"violations": []}'
    assert client(stack, "sagemaker").describe_endpoint(EndpointName=deployed)["EndpointStatus"] == "InService"
    assert invoke(stack, deployed)[1]["model_version"] == "v1"
    configs = client(stack, "sagemaker").list_endpoint_configs(SortBy="Name", SortOrder="Ascending")["EndpointConfigs"]
    # Every config survives, whichever tests of this module made them.
    assert [item["EndpointConfigName"] for item in configs] == [item["EndpointConfigName"] for item in configs_before]
    assert "c-v1" in {item["EndpointConfigName"] for item in configs}  # the deployed fixture's, at least


def test_restart_keeps_the_pager_and_the_metric_data_alarms_evaluate(stack):
    """SNS, SQS and CloudWatch live in moto's memory: after a restart the topic, the queue and its
    waiting messages, the subscription (raw delivery) and the metric data must all be back, so
    an alarm evaluates on data published before the restart and pages through the same queue."""
    sns, sqs, cloudwatch = client(stack, "sns"), client(stack, "sqs"), client(stack, "cloudwatch")
    topic = sns.create_topic(Name="pager", Attributes={"DisplayName": "On-call pager"})["TopicArn"]
    queue_url = sqs.create_queue(QueueName="pager-standin", Attributes={"VisibilityTimeout": "45"})["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    now = stack.platform.clock.now().replace(second=0, microsecond=0)
    dimensions = [{"Name": "MonitoringSchedule", "Value": "hourly"}, {"Name": "Endpoint", "Value": "recs"}]
    cloudwatch.put_metric_data(Namespace="aws/sagemaker/Endpoints/data-metrics", MetricData=[{
        "MetricName": "top10_category_diversity_mean", "Value": 2.0, "Dimensions": dimensions,
        "Timestamp": now - timedelta(minutes=30)}])
    # 2 of 2 hours below 4; missing hours do not breach: one bad hour alone keeps it OK.
    cloudwatch.put_metric_alarm(
        AlarmName="diversity-low", Namespace="aws/sagemaker/Endpoints/data-metrics",
        MetricName="top10_category_diversity_mean", Dimensions=dimensions[::-1], Statistic="Average",
        Period=3600, EvaluationPeriods=2, DatapointsToAlarm=2, Threshold=4.0,
        ComparisonOperator="LessThanThreshold", TreatMissingData="notBreaching",
        AlarmActions=[topic], OKActions=[topic])
    assert cloudwatch.describe_alarms(AlarmNames=["diversity-low"])["MetricAlarms"][0]["StateValue"] == "OK"

    stack.restart()

    [subscription] = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert subscription["Endpoint"] == queue_arn
    attributes = sns.get_subscription_attributes(SubscriptionArn=subscription["SubscriptionArn"])["Attributes"]
    assert attributes["RawMessageDelivery"] == "true"
    assert sns.get_topic_attributes(TopicArn=topic)["Attributes"]["DisplayName"] == "On-call pager"
    assert sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["VisibilityTimeout"])["Attributes"] == {
        "VisibilityTimeout": "45"}
    [kept] = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]  # sent before the restart
    assert json.loads(kept["Body"])["NewStateValue"] == "OK"
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=kept["ReceiptHandle"])

    # A second bad hour after the restart: with the first one restored, 2 of 2 breach.
    cloudwatch.put_metric_data(Namespace="aws/sagemaker/Endpoints/data-metrics", MetricData=[{
        "MetricName": "top10_category_diversity_mean", "Value": 3.0, "Dimensions": dimensions,
        "Timestamp": now + timedelta(minutes=30)}])
    advance(stack, 3600)
    assert cloudwatch.describe_alarms(AlarmNames=["diversity-low"])["MetricAlarms"][0]["StateValue"] == "ALARM"
    [paged] = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    notification = json.loads(paged["Body"])  # raw delivery: the alarm's message itself, no SNS envelope
    assert (notification["OldStateValue"], notification["NewStateValue"]) == ("OK", "ALARM")
    assert notification["NewStateReason"].startswith("Threshold Crossed: 2 out of the last 2 datapoints [3.0")

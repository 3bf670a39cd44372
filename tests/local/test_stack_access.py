"""The local stack stays local: only its own signed clients drive it, and nothing a request names
runs on the host (issue 14, finding 1).

Each refusal is checked the way its sender would meet it: boto3's ClientError code and message,
a real Chromium page's fetch, raw HTTP with a forged Host; and each is checked to have had no
effect (no alarm created, no model stored, no marker file written by a would-be command).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import stat
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore import UNSIGNED
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from diversity_monitor.local import access, processing
from diversity_monitor.local.clock import SimulatedClock
from diversity_monitor.local.platform import StackError
from diversity_monitor.local.stack import start_stack
from helpers.aws import REGION, stack_client
from helpers.stack import StackHolder

START = datetime(2027, 10, 31, 8, 30, tzinfo=timezone.utc)
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/diversity-monitor:latest"
RECOMMENDER = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/news-recommender:latest"
ROLE = "arn:aws:iam::123456789012:role/monitor"
ALARM_FORM = ("Action=PutMetricAlarm&Version=2010-08-01&AlarmName=from-a-web-page&Namespace=x&MetricName=m"
              "&Statistic=Average&Period=60&EvaluationPeriods=1&Threshold=1&ComparisonOperator=LessThanThreshold")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with StackHolder(tmp_path_factory.mktemp("access"), START) as holder:
        yield holder


def error_of(call, **kwargs) -> dict:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return caught.value.response


def alarm_names(stack) -> list[str]:
    return [alarm["AlarmName"] for alarm in stack_client("cloudwatch", stack).describe_alarms()["MetricAlarms"]]


# --- who may talk to it -----------------------------------------------------------------------


def test_credentials_are_generated_for_the_state_folder_and_kept_owner_only(stack):
    path = stack.state_dir / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text())
    assert document == {"aws_access_key_id": stack.credentials.access_key_id,
                        "aws_secret_access_key": stack.credentials.secret_access_key, "region_name": REGION}
    assert stack.credentials.access_key_id != "testing" and len(stack.credentials.secret_access_key) >= 40
    # The processes the stack starts sign with them too.
    assert stack.platform.process_environment()["AWS_SECRET_ACCESS_KEY"] == stack.credentials.secret_access_key


def test_a_signed_client_works_for_every_protocol(stack):
    assert stack_client("sagemaker", stack).list_endpoints()["Endpoints"] == []  # JSON, ours
    s3 = stack_client("s3", stack)  # REST-XML, moto's, S3's unnormalised paths
    s3.create_bucket(Bucket="access-bucket", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="access-bucket", Key="a b/ü.txt", Body=b"kept")
    assert s3.get_object(Bucket="access-bucket", Key="a b/ü.txt")["Body"].read() == b"kept"
    cloudwatch = stack_client("cloudwatch", stack)  # CBOR, ours and moto's
    cloudwatch.put_metric_data(Namespace="access", MetricData=[{"MetricName": "m", "Value": 1.0}])
    assert cloudwatch.list_metrics(Namespace="access")["Metrics"]
    # No answer approves a cross-origin read (moto's server approves every origin on its own).
    headers = s3.list_objects_v2(Bucket="access-bucket")["ResponseMetadata"]["HTTPHeaders"]
    assert not [name for name in headers if name.lower().startswith("access-control-")]


def test_a_presigned_url_opens_until_it_expires(stack):
    s3 = stack_client("s3", stack, signature_version="s3v4")
    s3.create_bucket(Bucket="presigned", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="presigned", Key="report.html", Body=b"<p>report</p>")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "presigned", "Key": "report.html"}, ExpiresIn=60)
    with urllib.request.urlopen(url) as response:
        assert response.read() == b"<p>report</p>"
    tampered = url.replace("report.html", "other.html")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(tampered)
    assert caught.value.code == 403 and b"SignatureDoesNotMatch" in caught.value.read()
    expired = s3.generate_presigned_url("get_object", Params={"Bucket": "presigned", "Key": "report.html"}, ExpiresIn=1)
    time.sleep(2.1)
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(expired)
    assert caught.value.code == 403 and b"presigned URL expired" in caught.value.read()


@pytest.mark.parametrize(("service", "call", "code"), [
    ("sagemaker", "list_endpoints", "UnrecognizedClientException"),
    ("cloudwatch", "list_metrics", "UnrecognizedClientException"),
    ("s3", "list_buckets", "InvalidAccessKeyId"),
])
def test_the_old_shared_dummy_credentials_are_refused(stack, service, call, code):
    client = boto3.session.Session().client(service, endpoint_url=stack.url, region_name=REGION,
                                            aws_access_key_id="testing", aws_secret_access_key="testing",
                                            config=Config(retries={"max_attempts": 1}))
    error = error_of(getattr(client, call))
    assert error["Error"]["Code"] == code
    assert "access key 'testing' is not this stack's" in error["Error"]["Message"]
    assert "credentials.json" in error["Error"]["Message"]  # says where the right ones are


def test_a_wrong_secret_and_an_unsigned_request_are_refused(stack):
    wrong = boto3.session.Session().client("sagemaker", endpoint_url=stack.url, region_name=REGION,
                                           aws_access_key_id=stack.credentials.access_key_id,
                                           aws_secret_access_key="not-the-secret", config=Config(retries={"max_attempts": 1}))
    error = error_of(wrong.create_model, ModelName="unsigned-model", ExecutionRoleArn=ROLE,
                     PrimaryContainer={"Image": RECOMMENDER})
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == ("InvalidSignatureException", 403)
    unsigned = boto3.session.Session().client("sagemaker", endpoint_url=stack.url, region_name=REGION,
                                              config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}))
    error = error_of(unsigned.create_model, ModelName="unsigned-model", ExecutionRoleArn=ROLE,
                     PrimaryContainer={"Image": RECOMMENDER})
    assert error["Error"]["Code"] == "MissingAuthenticationTokenException"
    assert "the request is not signed" in error["Error"]["Message"]
    # Neither reached the handler.
    assert stack_client("sagemaker", stack).list_models()["Models"] == []


def test_control_routes_need_the_signature_too(stack):
    for route, data in (("/_local/clock", None), ("/_local/advance", b'{"seconds": 3600}')):
        request = urllib.request.Request(stack.url + route, data=data, method="POST" if data else "GET")
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request)
        assert caught.value.code == 403
    assert stack.platform.clock.now() == START  # the unsigned advance did not move the clock


def _signed(stack, host: str, body: bytes) -> dict:
    """Headers of a request correctly signed with the stack's credentials, for `host`."""
    request = AWSRequest(method="POST", url=f"http://{host}/", data=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(Credentials(stack.credentials.access_key_id, stack.credentials.secret_access_key),
              "monitoring", REGION).add_auth(request)
    return dict(request.headers.items())


def test_another_host_name_is_refused_even_when_signed(stack):
    """DNS rebinding: a page's own name resolving to 127.0.0.1 sends its own Host."""
    port = int(stack.url.rsplit(":", 1)[1])
    body = ALARM_FORM.encode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/", body=body, headers={**_signed(stack, f"attacker.example:{port}", body),
                                                            "Host": f"attacker.example:{port}"})
        answer = connection.getresponse()
        text = answer.read().decode()
    finally:
        connection.close()
    assert answer.status == 403
    assert "Host 'attacker.example:" in text and "is not this local stack" in text
    assert "from-a-web-page" not in alarm_names(stack)

    # The same signed request with the stack's own Host goes through (the test can tell the difference).
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/", body=body, headers=_signed(stack, f"127.0.0.1:{port}", body))
        assert connection.getresponse().status == 200
    finally:
        connection.close()
    assert "from-a-web-page" in alarm_names(stack)
    stack_client("cloudwatch", stack).delete_alarms(AlarmNames=["from-a-web-page"])


class _PageServer:
    """A web page on another origin (what the developer happens to open)."""

    def __init__(self, html: str) -> None:
        class Page(BaseHTTPRequestHandler):
            def do_GET(self):
                body = html.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_web_page_cannot_drive_the_stack(stack, browser, caplog):
    """A page posts a "simple" cross-origin request (no preflight: the browser sends it and only
    hides the answer) to create an alarm, and tries a CORS read of the stack's status."""
    page_server = _PageServer("<html><body>an innocent page</body></html>")
    page = browser.new_page()
    try:
        page.goto(page_server.url)
        with caplog.at_level(logging.WARNING, logger="diversity_monitor.local.gateway"):
            sent = page.evaluate("""async ([url, form]) => {
                await fetch(url + "/", {method: "POST", mode: "no-cors", body: form,
                                        headers: {"Content-Type": "application/x-www-form-urlencoded"}});
                return "sent";
            }""", [stack.url, ALARM_FORM])
            read = page.evaluate("""async (url) => {
                try { const answer = await fetch(url + "/_local/status"); return "read: " + answer.status; }
                catch (error) { return "blocked: " + error.message; }
            }""", stack.url)
    finally:
        page.close()
        page_server.close()
    assert sent == "sent"
    assert read.startswith("blocked:")  # no CORS approval: the page cannot read any answer
    refused = [record.getMessage() for record in caplog.records if "a request from a web page" in record.getMessage()]
    assert any(f"Origin {page_server.url.rstrip('/')}" in message for message in refused), refused
    assert "from-a-web-page" not in alarm_names(stack)


# --- what it refuses to run -------------------------------------------------------------------


def _schedule(**changes) -> dict:
    definition = {
        "MonitoringInputs": [{"EndpointInput": {"EndpointName": "recommender-prod",
                                                "LocalPath": "/opt/ml/processing/input/endpoint"}}],
        "MonitoringOutputConfig": {"MonitoringOutputs": [{"S3Output": {
            "S3Uri": "s3://reports/x", "LocalPath": changes.pop("output_path", "/opt/ml/processing/output")}}]},
        "MonitoringResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m6i.large", "VolumeSizeInGB": 20}},
        "MonitoringAppSpecification": {"ImageUri": IMAGE, **changes.pop("app", {})},
        "RoleArn": ROLE,
        **changes,
    }
    return {"ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"}, "MonitoringJobDefinition": definition}


def test_a_schedule_naming_a_command_a_dangerous_variable_or_a_host_path_is_refused_all_at_once(stack, tmp_path):
    marker = tmp_path / "ran"
    config = _schedule(
        app={"ContainerEntrypoint": ["/bin/sh", "-c", f"touch {marker}"],
             "ContainerArguments": ["--catalog", "/etc/passwd", f"--validation-set={tmp_path}/sessions.jsonl"]},
        Environment={"PYTHONWARNINGS": "ignore::antigravity.x", "BROWSER": f"touch {marker}", "LD_PRELOAD": "/x.so",
                     "AWS_ENDPOINT_URL": "http://attacker.example", "output_path": "/home/someone/.bashrc"},
        output_path="/opt/ml/processing/../../../etc",
    )
    error = error_of(stack_client("sagemaker", stack).create_monitoring_schedule,
                     MonitoringScheduleName="hostile", MonitoringScheduleConfig=config)["Error"]
    assert error["Code"] == "ValidationException"
    message = error["Message"]
    for expected in (
        "MonitoringOutputs[0].S3Output.LocalPath '/opt/ml/processing/../../../etc' leaves /opt/ml/processing once normalised (/etc)",
        "MonitoringAppSpecification.ContainerEntrypoint is refused",
        "'/etc/passwd' names a path outside /opt/ml",
        f"'--validation-set={tmp_path}/sessions.jsonl' names a path outside /opt/ml",
        "key 'PYTHONWARNINGS' changes how Python, a shell, the dynamic loader or a browser starts",
        "key 'BROWSER' changes how Python",
        "key 'LD_PRELOAD' changes how Python",
        "key 'AWS_ENDPOINT_URL' is set by the local stack itself",
        "output_path='/home/someone/.bashrc' names a path outside /opt/ml",
    ):
        assert expected in message, (expected, message)
    assert stack_client("sagemaker", stack).list_monitoring_schedules()["MonitoringScheduleSummaries"] == []
    assert not marker.exists()


def test_a_model_whose_environment_changes_how_python_starts_is_refused(stack, tmp_path):
    marker = tmp_path / "ran"
    sagemaker = stack_client("sagemaker", stack)
    error = error_of(sagemaker.create_model, ModelName="hostile-model", ExecutionRoleArn=ROLE,
                     PrimaryContainer={"Image": RECOMMENDER, "Environment": {
                         "BROWSER": f"touch {marker}", "PYTHONSTARTUP": str(tmp_path / "x.py"), "RECOMMENDER_LATENCY_MS": "5"}})
    assert error["Error"]["Code"] == "ValidationException"
    assert "key 'BROWSER'" in error["Error"]["Message"] and "key 'PYTHONSTARTUP'" in error["Error"]["Message"]
    assert "RECOMMENDER_LATENCY_MS" not in error["Error"]["Message"]  # a model's own setting is fine
    assert sagemaker.list_models()["Models"] == [] and not marker.exists()


def test_a_job_described_with_an_entrypoint_or_an_escaping_path_fails_before_anything_runs(stack, tmp_path):
    """Defence in depth below the API: whoever describes a job, `run_processing_job` checks it."""
    marker = tmp_path / "ran"
    record = processing.run_processing_job(stack.platform, {
        "ProcessingJobName": "hostile-job",
        "AppSpecification": {"ImageUri": IMAGE, "ContainerEntrypoint": ["/bin/sh", "-c", f"touch {marker}"]},
        "ProcessingOutputConfig": {"Outputs": [{"OutputName": "out", "S3Output": {
            "S3Uri": "s3://reports/x", "LocalPath": "/opt/ml/processing/../../../home", "S3UploadMode": "EndOfJob"}}]},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}},
        "RoleArn": ROLE,
    })
    assert record["ProcessingJobStatus"] == "Failed"
    assert record["FailureReason"].startswith("ClientError: AppSpecification.ContainerEntrypoint is refused")
    assert "leaves /opt/ml/processing once normalised (/home)" in record["FailureReason"]
    assert not marker.exists()


def test_an_output_holding_a_link_is_not_uploaded(stack, tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_text("not for S3")
    folder = processing.job_folder(stack.platform, "linking-job")
    outputs = folder.local("/opt/ml/processing/output")
    outputs.mkdir(parents=True)
    (outputs / "statistics.json").write_text("{}")
    os.symlink(secret, outputs / "leak.txt")
    with pytest.raises(processing.JobError, match=r"holds a symbolic link \(leak.txt\)"):
        processing._upload_output(stack.platform.aws_client("s3"), {"OutputName": "out", "S3Output": {
            "S3Uri": "s3://access-bucket/out", "LocalPath": "/opt/ml/processing/output"}}, folder)


# --- the credentials file ---------------------------------------------------------------------


def test_a_credentials_file_others_can_read_or_a_link_stops_the_start(tmp_path):
    clock = SimulatedClock(START)
    readable = tmp_path / "readable"
    readable.mkdir()
    (readable / "credentials.json").write_text(json.dumps({"aws_access_key_id": "A", "aws_secret_access_key": "B",
                                                           "region_name": REGION}))
    os.chmod(readable / "credentials.json", 0o644)
    with pytest.raises(StackError, match=r"must belong to you and be readable by you only \(mode 0o644\)"):
        start_stack(readable, port=0, clock=clock)
    linked = tmp_path / "linked"
    linked.mkdir()
    os.symlink(tmp_path / "elsewhere.json", linked / "credentials.json")
    with pytest.raises(StackError, match="a symbolic link is refused"):
        start_stack(linked, port=0, clock=clock)
    assert not (tmp_path / "elsewhere.json").exists()


def test_credentials_survive_a_restart_of_the_same_state_folder(tmp_path):
    """A JupyterLab kernel started against the stack keeps working after `local down` / `up`."""
    first = access.load_or_create_credentials(tmp_path, REGION)
    assert access.load_or_create_credentials(tmp_path, REGION) == first
    other = tmp_path / "other"
    other.mkdir()
    assert access.load_or_create_credentials(other, REGION) != first


def test_a_person_clicking_a_presigned_report_link_on_a_page_opens_it(stack, browser):
    """Report links in JupyterLab are presigned URLs on another origin's page: a click (a top-level
    navigation the page cannot read) opens the report; a forged link without the signature does not."""
    s3 = stack_client("s3", stack, signature_version="s3v4")
    s3.create_bucket(Bucket="linked-reports", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="linked-reports", Key="report.html", Body=b"<p id=verdict>HEALTHY</p>", ContentType="text/html")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "linked-reports", "Key": "report.html"})
    forged = f"{stack.url}/linked-reports/report.html"
    page_server = _PageServer(f'<a id=good href="{url}">report</a> <a id=forged href="{forged}">forged</a>')
    page = browser.new_page()
    try:
        page.goto(page_server.url)
        with page.expect_navigation():
            page.click("#good")
        assert page.text_content("#verdict") == "HEALTHY"
        page.goto(page_server.url)
        with page.expect_navigation():
            page.click("#forged")
        assert "AccessDenied" in page.content() and "HEALTHY" not in page.content()
    finally:
        page.close()
        page_server.close()

"""Report links a person can open: the S3 console page on AWS, the object itself (presigned) elsewhere."""

from __future__ import annotations

import urllib.request
import uuid

import boto3

from diversity_monitor import storage


def test_on_a_custom_endpoint_the_link_is_the_object_presigned(aws_env):
    s3 = boto3.client("s3")
    bucket = f"recs-links-{uuid.uuid4().hex[:8]}"  # the moto server is shared with other tests
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_object(Bucket=bucket, Key="reports/e/s/2027/10/31/10/report.html", Body=b"<!doctype html><p>r</p>",
                  ContentType="text/html")
    link = storage.browser_url(f"s3://{bucket}/reports/e/s/2027/10/31/10/report.html")
    assert link.startswith(f"{aws_env}/{bucket}/reports/e/s/2027/10/31/10/report.html?")
    assert "X-Amz-Signature=" in link and "testing" not in link.split("X-Amz-Credential=")[0]
    with urllib.request.urlopen(link, timeout=10) as page:  # a browser's GET: no AWS credentials of its own
        assert page.read() == b"<!doctype html><p>r</p>"


def test_on_aws_the_link_is_the_s3_console_page(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert storage.browser_url("s3://recs-monitor/reports/a b/report.html") == (
        "https://eu-west-1.console.aws.amazon.com/s3/object/recs-monitor?region=eu-west-1&prefix=reports/a%20b/report.html")


def test_a_local_path_is_a_file_url(tmp_path):
    assert storage.browser_url(str(tmp_path / "report.html")) == (tmp_path / "report.html").as_uri()

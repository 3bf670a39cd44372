"""URI storage: S3 through plain boto3 settings, local paths, and no silent overwrites."""

from __future__ import annotations

import socket

import boto3
import pytest

from diversity_monitor import storage
from diversity_monitor.local.stack import MotoProcess


def test_s3_client_follows_a_changed_endpoint_url(aws_env, monkeypatch, tmp_path):
    """A notebook's `use_endpoint` (or a second local stack) moves AWS_ENDPOINT_URL mid-process.

    The second S3 is a moto child process: moto servers in one process share their state.
    """
    boto3.client("s3").create_bucket(Bucket="first", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    storage.write_bytes("s3://first/a.txt", b"one")
    assert storage.read_bytes("s3://first/a.txt") == b"one"

    second = MotoProcess(tmp_path / "moto.log")
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", second.url)
        boto3.client("s3").create_bucket(Bucket="second", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        storage.write_bytes("s3://second/b.txt", b"two")  # NoSuchBucket if the old client were kept
        assert list(storage.list_objects("s3://second/")) == ["s3://second/b.txt"]
        with pytest.raises(storage.StorageError, match="NoSuchBucket"):
            storage.read_bytes("s3://first/a.txt")  # that bucket lives on the first server only
    finally:
        second.stop()


def test_write_refuses_to_overwrite_when_asked(aws_env, tmp_path):
    boto3.client("s3").create_bucket(Bucket="keep", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    for uri in ("s3://keep/report.json", str(tmp_path / "report.json")):
        storage.write_bytes(uri, b"first", overwrite=False)
        with pytest.raises(storage.StorageError, match="already exists"):
            storage.write_bytes(uri, b"second", overwrite=False)
        assert storage.read_bytes(uri) == b"first"


def test_unreadable_uris_are_named(aws_env, tmp_path):
    with pytest.raises(storage.StorageError, match=r"cannot read s3://missing-bucket/x: NoSuchBucket"):
        storage.read_bytes("s3://missing-bucket/x")
    with pytest.raises(storage.StorageError, match=f"cannot read {tmp_path}/nope"):
        storage.read_bytes(str(tmp_path / "nope"))
    with pytest.raises(storage.StorageError, match="is not an s3://bucket/key URI"):
        storage.S3Location.parse("s3:///no-bucket")


def test_an_unreachable_s3_is_a_named_storage_error(aws_env, monkeypatch):
    """Connection errors are BotoCoreErrors, not ClientErrors: they must not escape as tracebacks."""
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(storage.StorageError, match=r"cannot read s3://b/k: EndpointConnectionError"):
        storage.read_bytes("s3://b/k")
    with pytest.raises(storage.StorageError, match=r"cannot check s3://b/k: EndpointConnectionError"):
        storage.exists("s3://b/k")
    with pytest.raises(storage.StorageError, match=r"cannot write s3://b/k: EndpointConnectionError"):
        storage.write_bytes("s3://b/k", b"x", overwrite=False)

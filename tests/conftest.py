"""Shared fixtures: a real moto server on loopback and boto3 pointed at it the ordinary way."""

from __future__ import annotations

import os

import pytest

from diversity_monitor.local.platform import free_port
from helpers.aws import REGION

# The monitoring job's test world (an endpoint server, inputs in moto): fixtures shared by test files.
pytest_plugins = ["helpers.job_env", "helpers.browser"]


@pytest.fixture(scope="session", autouse=True)
def own_stack_registry(tmp_path_factory):
    """Stacks the tests start (`local up`) register in a registry of the tests' own, never in the
    developer's (`aws.local_stacks`: $XDG_STATE_HOME); subprocesses inherit it."""
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state-home"))


@pytest.fixture(scope="session")
def moto_url():
    """moto in server mode: real HTTP, one URL for every service moto implements."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws_env(monkeypatch, moto_url):
    """boto3's own settings (AWS_ENDPOINT_URL...) point unmodified code at the moto server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_url

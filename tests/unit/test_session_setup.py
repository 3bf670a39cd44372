"""A notebook's first cell against the local stack: the URL is enough when a registered stack serves it,
and what stops it (nothing answering, no credentials) is one sentence saying what to do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest

from diversity_monitor.aws import local_stacks, session
from diversity_monitor.conventions import LOCAL_STACK_CREDENTIALS_FILE
from diversity_monitor.local.platform import free_port


class _Answer(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def answering_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def fresh_shell(monkeypatch, tmp_path):
    """No AWS settings at all, no ~/.aws, a registry of our own."""
    for key in [key for key in os.environ if key.startswith("AWS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    yield
    boto3.setup_default_session()


def test_nothing_answering_is_one_sentence(fresh_shell):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(session.SetupError) as raised:
        session.use_endpoint(url, "eu-west-1")
    assert str(raised.value).startswith(f"nothing answers at {url}")
    assert "diversity-monitor local up" in str(raised.value)
    assert raised.value._render_traceback_() == [f"SetupError: {raised.value}"]  # what Jupyter shows: no frames


def test_an_unregistered_url_without_credentials_says_so(fresh_shell, answering_url):
    with pytest.raises(session.SetupError, match=f"no credentials for {answering_url}"):
        session.use_endpoint(answering_url, "eu-west-1")


def test_a_registered_stacks_credentials_are_found_from_its_url(fresh_shell, answering_url, tmp_path):
    state_dir = tmp_path / "stack"
    state_dir.mkdir()
    (state_dir / LOCAL_STACK_CREDENTIALS_FILE).write_text(json.dumps(
        {"aws_access_key_id": "AKIDLOCAL", "aws_secret_access_key": "s3cr3t", "region_name": "eu-west-1"}))
    local_stacks.register_stack({"pid": os.getpid(), "url": answering_url.replace("127.0.0.1", "localhost"),
                                 "state_dir": str(state_dir), "region": "eu-west-1", "clock": "real time"})
    assert session.use_endpoint(answering_url, None) == {"endpoint_url": answering_url, "region": "eu-west-1"}
    credentials = boto3.session.Session().get_credentials()
    assert (credentials.access_key, credentials.secret_key) == ("AKIDLOCAL", "s3cr3t")


def test_a_stale_record_is_dropped(fresh_shell, tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    path = local_stacks.register_stack({"pid": gone.pid, "url": "http://127.0.0.1:4599", "state_dir": str(tmp_path),
                                        "region": "eu-west-1", "clock": "real time"})
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert local_stacks.running_stacks() == [] and not path.exists()
    assert local_stacks.stack_at("http://127.0.0.1:4599") is None

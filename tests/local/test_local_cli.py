"""`diversity-monitor local up/status/advance/down`, run as a user runs them: real subprocesses.

The shell that starts the stack carries AWS settings of its own (a profile that does not exist
here, an S3 endpoint override, endpoint URLs switched off), as a developer's shell may: the stack
must not be affected, and the printed lines must point boto3 at the stack regardless.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from diversity_monitor.local.platform import free_port

pytestmark = pytest.mark.slow

START = "2027-10-31T06:00:00+00:00"
# What a developer's shell may hold: each would divert or break boto3 if it reached the stack.
FOREIGN_AWS = {
    "AWS_PROFILE": "no-such-profile",
    "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true",
    "AWS_SESSION_TOKEN": "not-the-stacks",
}


def shell_environment() -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    return {**environment, **FOREIGN_AWS}


def local(*arguments: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "diversity_monitor.cli", "local", *arguments],
                          capture_output=True, text=True, env=shell_environment(), timeout=timeout)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def state_dir(tmp_path):
    """A state folder; a stack still running from it when the test ends is stopped."""
    folder = tmp_path / "state"
    yield folder
    record = folder / "stack.json"
    if record.exists():
        pid = json.loads(record.read_text())["pid"]
        if alive(pid):
            os.kill(pid, signal.SIGTERM)
            for _ in range(300):
                if not alive(pid):
                    break
                time.sleep(0.1)


def boto3_through_exports(exports: str, script: str) -> subprocess.CompletedProcess:
    """Run `script` in a bash that evaluated `exports`, starting from the foreign shell settings."""
    return subprocess.run(["bash", "-c", f'eval "$1"\nexec "{sys.executable}" -c "$2"', "bash", exports, script],
                          capture_output=True, text=True, env=shell_environment(), timeout=120)


BUCKET_SCRIPT = """
import boto3
s3 = boto3.client("s3")
names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
if "reports" not in names:
    s3.create_bucket(Bucket="reports", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_object(Bucket="reports", Key="hourly/07/statistics.json", Body=b"{}")
print(s3.get_object(Bucket="reports", Key="hourly/07/statistics.json")["Body"].read().decode())
print(s3.meta.endpoint_url)
"""


def test_up_status_advance_down_and_up_again(state_dir):
    port = free_port()
    up = local("up", "--detach", "--state-dir", str(state_dir), "--port", str(port), "--simulated-clock", START)
    assert up.returncode == 0, up.stderr
    url = f"http://127.0.0.1:{port}"
    record = json.loads((state_dir / "stack.json").read_text())
    assert record["url"] == url and record["state_dir"] == str(state_dir.resolve()) and record["region"] == "eu-west-1"
    assert alive(record["pid"])
    lines = up.stdout.splitlines()
    assert f"export AWS_ENDPOINT_URL={url}" in lines
    # The credentials the stack generated for itself, kept owner-only in its state folder.
    credentials_file = state_dir / "credentials.json"
    assert credentials_file.stat().st_mode & 0o777 == 0o600
    credentials = json.loads(credentials_file.read_text())
    assert credentials["aws_access_key_id"] != "testing" and len(credentials["aws_secret_access_key"]) >= 40
    assert {f"export AWS_ACCESS_KEY_ID={credentials['aws_access_key_id']}",
            f"export AWS_SECRET_ACCESS_KEY={credentials['aws_secret_access_key']}",
            "export AWS_DEFAULT_REGION=eu-west-1"} <= set(lines)
    assert f"unset {' '.join(sorted(FOREIGN_AWS))}" in lines

    # The printed lines are all a shell needs: plain boto3 then talks to the stack.
    used = boto3_through_exports(up.stdout, BUCKET_SCRIPT)
    assert used.returncode == 0, used.stderr
    assert used.stdout.splitlines() == ["{}", url]

    status = local("status", "--state-dir", str(state_dir))
    assert status.returncode == 0, status.stderr
    assert f"url:       {url}" in status.stdout and f"clock:     {START} (simulated)" in status.stdout
    advanced = local("advance", "90m", "--state-dir", str(state_dir))
    assert (advanced.returncode, advanced.stdout.strip()) == (0, "clock now 2027-10-31T07:30:00+00:00")
    document = json.loads(local("status", "--json", "--state-dir", str(state_dir)).stdout)
    assert document["clock"] == {"now": "2027-10-31T07:30:00+00:00", "simulated": True}

    again = local("up", "--detach", "--state-dir", str(state_dir), "--port", str(free_port()))
    assert again.returncode == 1 and "a stack is already running from" in again.stderr
    taken = local("up", "--detach", "--state-dir", str(state_dir.parent / "other"), "--port", str(port))
    assert taken.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in taken.stderr

    down = local("down", "--state-dir", str(state_dir))
    assert down.returncode == 0, down.stderr
    assert f"stopped the stack on {url}" in down.stdout
    assert not alive(record["pid"]) and not (state_dir / "stack.json").exists()
    stopped = local("status", "--state-dir", str(state_dir))
    assert stopped.returncode == 1 and "no stack is running" in stopped.stderr

    # Up again on the same folder: what was stored is still there, and the simulated clock resumes where it stopped.
    up = local("up", "--detach", "--state-dir", str(state_dir), "--port", str(port))
    assert up.returncode == 0, up.stderr
    assert "# clock: simulated, now 2027-10-31T07:30:00+00:00" in up.stdout
    used = boto3_through_exports(up.stdout, BUCKET_SCRIPT)
    assert used.returncode == 0, used.stderr
    assert used.stdout.splitlines() == ["{}", url]
    assert local("down", "--state-dir", str(state_dir)).returncode == 0
    # --real-clock leaves the simulated time behind.
    real = local("up", "--detach", "--state-dir", str(state_dir), "--port", str(port), "--real-clock")
    assert real.returncode == 0 and "# clock: real time" in real.stdout, real.stderr
    assert local("down", "--state-dir", str(state_dir)).returncode == 0


def test_a_port_another_server_listens_on_every_interface_is_refused(state_dir):
    """A server on 0.0.0.0:PORT: Linux refuses the loopback bind, macOS would allow it
    (SO_REUSEADDR) and split the traffic; the stack checks whether something answers first."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.bind(("0.0.0.0", 0))
        other.listen(1)
        port = other.getsockname()[1]
        up = local("up", "--detach", "--state-dir", str(state_dir), "--port", str(port))
    assert up.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use (a server answers there)" in up.stderr
    assert not (state_dir / "stack.json").exists()


def test_advance_on_a_real_clock_says_why_not(state_dir):
    up = local("up", "--detach", "--state-dir", str(state_dir), "--port", str(free_port()))
    assert up.returncode == 0, up.stderr
    try:
        refused = local("advance", "1h", "--state-dir", str(state_dir))
        assert refused.returncode == 1
        assert "only a stack started with a simulated clock can be advanced" in refused.stderr
        bad = local("advance", "soon", "--state-dir", str(state_dir))
        assert bad.returncode == 2 and "use numbers with units d, h, m, s" in bad.stderr
    finally:
        assert local("down", "--state-dir", str(state_dir)).returncode == 0

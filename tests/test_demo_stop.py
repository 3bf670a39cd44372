"""`diversity-monitor demo` stopped by a signal leaves nothing running (issue 14, finding 12).

Before: SIGTERM (a `timeout` around `make demo`, `kill`) or SIGHUP (a closed terminal) killed the
demo process on the spot; moto and the model servers, in their own sessions, kept running and
kept their ports an hour later. Now the signal stops the stack like Ctrl-C does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from diversity_monitor.demo.command import STOPPED_FILE

pytestmark = pytest.mark.slow


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def serving(process: psutil.Process) -> bool:
    """A model server of the demo's endpoint (the recommender image's `serve` entrypoint)."""
    try:
        return "serve" in process.cmdline()
    except psutil.Error:
        return False


def describe(process: psutil.Process) -> str:
    try:
        return f"{process.pid} {' '.join(process.cmdline())}"
    except psutil.Error as error:
        return f"{process.pid} ({error})"


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGHUP])
def test_a_stopped_demo_stops_its_stack_and_says_so(tmp_path: Path, stop_signal):
    output = tmp_path / "demo"
    environment = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    demo = subprocess.Popen(
        [sys.executable, "-m", "diversity_monitor.cli", "demo", "--output", str(output), "--sessions", "20",
         "--live-requests", "10"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment,
        start_new_session=True,  # so the test can clean up whatever it finds, whatever happens
    )
    seen: dict[int, psutil.Process] = {}
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and demo.poll() is None:
            for process in descendants(demo.pid):
                seen.setdefault(process.pid, process)
            if any(serving(process) for process in seen.values()) and len(seen) >= 2:
                break
            time.sleep(0.2)
        assert demo.poll() is None, demo.communicate()
        assert any(serving(process) for process in seen.values()), "no model server started within 240 s"
        ports = {conn.laddr.port for process in seen.values() if alive(process)
                 for conn in process.net_connections(kind="tcp") if conn.status == psutil.CONN_LISTEN}
        assert ports  # moto and the model server listen

        demo.send_signal(stop_signal)  # to the demo process only, as `timeout` and `kill` do
        stdout, stderr = demo.communicate(timeout=30)
        stopped_at = time.monotonic()
        leftovers = [process for process in seen.values() if alive(process)]
        while leftovers and time.monotonic() - stopped_at < 10:
            time.sleep(0.2)
            leftovers = [process for process in leftovers if alive(process)]
        left = [describe(process) for process in leftovers]
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
        for process in seen.values():
            if alive(process):
                process.kill()

    assert left == []
    assert demo.returncode == 128 + stop_signal, (stdout, stderr)
    name = signal.Signals(stop_signal).name
    assert f"demo stopped by {name}: the local stack, its model servers and jobs are stopped" in stderr
    assert (output / STOPPED_FILE).read_text().startswith(f"demo stopped by {name}")
    assert not (output / "timeline.png").exists()  # nothing that looks like a finished run
    listening = {conn.laddr.port for conn in psutil.net_connections(kind="tcp") if conn.status == psutil.CONN_LISTEN}
    assert not ports & listening

"""The running local stack: `start_stack` starts moto, the stand-in modules and the gateway.

`start_stack(state_dir, port, clock)` starts moto (a child process on a free loopback port, so
its in-memory state is this stack's alone), loads the state folder's credentials (generating them
at its first start, `access`), restores S3, SNS and SQS from the state folder,
installs the modules (metric data and alarms come back with theirs), redeploys endpoints that
were in service, and serves the gateway on 127.0.0.1:port. The snapshot is saved at every full
hour of the clock and at stop (`snapshot`).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from diversity_monitor import clock as process_clock
from diversity_monitor.local import metric_data, snapshot
from diversity_monitor.local.access import CredentialsFileError, StackCredentials, load_or_create_credentials
from diversity_monitor.local.clock import Clock, RealClock, SimulatedClock
from diversity_monitor.local.gateway import GatewayServer
from diversity_monitor.local.platform import (
    DEFAULT_PORT,
    DEFAULT_REGION,
    LOOPBACK,
    LocalPlatform,
    StackError,
    bind_loopback,
    free_port,
    install_modules,
    stop_process,
    wait_until_answering,
)

log = logging.getLogger(__name__)


class MotoProcess:
    """moto in server mode as a child process: its own memory, gone when the stack stops."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(self.port)],
                env={key: value for key, value in os.environ.items() if not key.startswith("AWS_")},
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until_answering(f"{self.url}/moto-api/", self.process, "moto server", log_path)

    def stop(self) -> None:
        stop_process(self.process)


class MinuteTicker:
    """Ticks a RealClock at each wall-clock minute (CloudWatch and schedules work in minutes)."""

    def __init__(self, clock: RealClock) -> None:
        self.clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="local-stack-clock", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(60 - time.time() % 60):
            try:
                self.clock.tick()
            except Exception:
                log.exception("a clock subscriber failed")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


@dataclass
class RunningStack:
    platform: LocalPlatform
    url: str
    installed: list[str]
    _moto: MotoProcess
    _gateway: GatewayServer
    _ticker: MinuteTicker | None = None
    _stopped: bool = field(default=False)

    def stop(self) -> None:
        """Stop serving, stop model servers and jobs, snapshot S3, stop moto. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._ticker:
            self._ticker.stop()
        try:
            self.platform.stop()  # jobs and model servers first: a running job may still call the gateway
            self._gateway.stop()
            save_state(self.platform, final=True)
        finally:
            self._moto.stop()

    @property
    def credentials(self) -> StackCredentials:
        """What a client signs with: `boto3.client(..., endpoint_url=stack.url, **stack.client_arguments())`."""
        return self.platform.credentials

    def client_arguments(self) -> dict[str, str]:
        return {"aws_access_key_id": self.credentials.access_key_id,
                "aws_secret_access_key": self.credentials.secret_access_key, "region_name": self.platform.region}

    def __enter__(self) -> RunningStack:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def start_stack(
    state_dir: str | Path,
    port: int = DEFAULT_PORT,
    clock: Clock | None = None,
    region: str = DEFAULT_REGION,
) -> RunningStack:
    """Start everything; `port=0` takes a free port. Stop with `.stop()` (or use `with`)."""
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    clock = clock or RealClock()
    try:
        credentials = load_or_create_credentials(state_dir, region)
    except CredentialsFileError as error:
        raise StackError(str(error)) from None
    sock = bind_loopback(port)  # first: a taken port fails before anything starts
    url = f"http://{LOOPBACK}:{sock.getsockname()[1]}"
    moto = None
    try:
        moto = MotoProcess(state_dir / "logs" / "moto.log")
        platform = LocalPlatform(state_dir, clock, moto.url, url, region, credentials)
        restore_state(platform)
        installed = install_modules(platform)
        # Subscribed last, so it sees what every module wrote at that minute.
        clock.subscribe(lambda now: _hourly_snapshot(platform, now))
        if platform.hosting is not None:
            platform.hosting.restore()
        gateway = GatewayServer(platform, sock)
    except BaseException:
        sock.close()
        if moto:
            moto.stop()
        raise
    ticker = MinuteTicker(clock) if isinstance(clock, RealClock) else None
    return RunningStack(platform, url, installed, moto, gateway, ticker)


def _hourly_snapshot(platform: LocalPlatform, now: datetime) -> None:
    """Keep the snapshot at most an hour behind, so a crash loses little (stop saves it all)."""
    if now.minute == 0:
        save_state(platform, final=False)


def save_state(platform: LocalPlatform, final: bool) -> None:
    """Snapshot what moto holds (S3, SNS and SQS; queued messages only when `final`, at stop,
    since receiving them hides them from consumers) and trim the metric journal to two weeks."""
    count = snapshot.save(platform.aws_client("s3"), platform.state_dir / "s3")
    messaging = snapshot.save_messaging(platform.aws_client("sns"), platform.aws_client("sqs"),
                                        platform.state_dir / snapshot.MESSAGING, messages=final)
    snapshot.save_clock(platform.state_dir, platform.clock.simulated, platform.clock.now())
    metric_data.metric_journal(platform).retained(platform.clock.now() - metric_data.METRIC_PAST_LIMIT)
    log.info("saved %d S3 objects and %s to %s", count, messaging, platform.state_dir)


def restore_state(platform: LocalPlatform) -> None:
    """Put the snapshot back into a fresh moto (metric data: `metric_data.install`)."""
    count = snapshot.restore(platform.aws_client("s3"), platform.state_dir / "s3", platform.region)
    messaging = snapshot.restore_messaging(platform.aws_client("sns"), platform.aws_client("sqs"),
                                           platform.state_dir / snapshot.MESSAGING)
    log.info("restored %d S3 objects and %s", count, messaging)


def parse_clock(start: str | None, state_dir: Path | None = None, real_time: bool = False) -> Clock:
    """An ISO-8601 instant -> a simulated clock starting there; `real_time` -> real time; otherwise
    the state folder's simulated clock where it stopped (a restored run keeps its own time), else real time."""
    if start is None:
        resumed = None if real_time or state_dir is None else snapshot.saved_simulated_time(state_dir)
        return SimulatedClock(resumed) if resumed else RealClock()
    try:
        moment = process_clock.parse_instant(start)
    except ValueError:
        raise StackError(f"simulated clock start {start!r} is not an ISO-8601 instant (e.g. 2027-10-31T06:00:00Z)") from None
    return SimulatedClock(moment.astimezone(timezone.utc))


# --- stopping on a signal ---------------------------------------------------------------------

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived; raised in the main thread like Ctrl-C's KeyboardInterrupt, so every
    `with start_stack(...)` on the way out stops moto, the model servers and the jobs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.signal_name = signal.Signals(signum).name


@contextmanager
def stopped_by_signals() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP (Ctrl-C, a `timeout` or `kill`, a closed terminal) raise
    `Interrupted` in the main thread. Python's default for SIGTERM and SIGHUP is to die on the
    spot, leaving the stack's child processes (in their own sessions) running and their ports
    taken. Further signals are ignored while the stack stops, so the clean-up is not cut short."""
    def interrupt(signum, _frame):
        for other in STOP_SIGNALS:
            signal.signal(other, signal.SIG_IGN)
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, interrupt) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

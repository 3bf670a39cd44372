"""The local platform: what the stack's modules share (`LocalPlatform`) and the process helpers they use.

`LocalPlatform` is the object every stand-in module receives: the resource store, the clock,
the folders, boto3 clients pointed at moto, ARNs, and `register_operations` through which a
module plugs its handlers into the gateway. Modules install themselves with
`install(platform)`, in the order of `MODULES`.

Records in `platform.store` have the shape of the matching Describe* response. Their timestamps
are ISO-8601 strings (`platform.timestamp()`); the gateway turns every timestamp member into the
wire form when it answers, so a handler returns a stored record as it is.

Starting it all (moto, the modules, the gateway, the clock) is stack.py's `start_stack`.
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, MutableMapping
from datetime import datetime, timedelta
from pathlib import Path

import boto3
import urllib3
from botocore.config import Config

from diversity_monitor import clock as process_clock
from diversity_monitor.local.access import StackCredentials
from diversity_monitor.local.clock import Clock, SimulatedClock
from diversity_monitor.local.protocols import isolated_botocore_session, service_model
from diversity_monitor.local.store import Store

log = logging.getLogger(__name__)

DEFAULT_PORT = 4566
DEFAULT_REGION = "eu-west-1"
ACCOUNT_ID = "123456789012"  # moto's default account: ARNs from moto and from us agree
# moto checks no signature: the stack's own clients to it (never exposed) sign with these.
MOTO_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
LOOPBACK = "127.0.0.1"

# Modules that plug into the platform, in install order. Order matters for the clock: tick
# subscribers run in subscription order, so runtime's capture flush (installed first) lands a
# minute's captures in S3 before a schedule firing at that minute reads them.
MODULES = (
    "diversity_monitor.local.hosting",
    "diversity_monitor.local.runtime",
    "diversity_monitor.local.metric_data",  # before monitoring and alarms: its journal is replayed at install
    "diversity_monitor.local.monitoring",
    "diversity_monitor.local.monitoring_scheduler",  # after the API it runs
    "diversity_monitor.local.processing_jobs",  # CreateProcessingJob (the plain path's target)
    "diversity_monitor.local.eventbridge_scheduler",  # fires moto's Scheduler schedules; after what they call
    "diversity_monitor.local.alarms",
    "diversity_monitor.local.dashboards",  # draws metric data: after metric_data's journal is replayed
)

Handler = Callable[["LocalPlatform", dict], dict]


# boto3 reads no profile, endpoint or credentials from the user's ~/.aws with these.
ISOLATED_AWS_FILES = {"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}


def isolate_aws_environment(environ: MutableMapping[str, str], settings: Mapping[str, str]) -> dict[str, str]:
    """Replace every AWS_* variable of `environ` by `settings` (a `client_environment()`).

    Inherited AWS_ENDPOINT_URL_<SERVICE>, AWS_IGNORE_CONFIGURED_ENDPOINT_URLS, AWS_PROFILE,
    session tokens or config-file paths would otherwise send calls elsewhere or sign them with
    other credentials. Returns the AWS_* variables that were there, for `restore_aws_environment`.
    """
    previous = {key: value for key, value in environ.items() if key.startswith("AWS_")}
    for key in previous:
        del environ[key]
    environ.update(settings)
    return previous


def restore_aws_environment(environ: MutableMapping[str, str], previous: Mapping[str, str]) -> None:
    for key in [key for key in environ if key.startswith("AWS_")]:
        del environ[key]
    environ.update(previous)


class StackError(RuntimeError):
    """The stack cannot start or stop as asked; the message says why and what to do."""


class PortInUse(StackError):
    pass


class LocalPlatform:
    account_id = ACCOUNT_ID

    def __init__(self, state_dir: Path, clock: Clock, moto_url: str, url: str, region: str = DEFAULT_REGION,
                 credentials: StackCredentials | None = None) -> None:
        self.state_dir = Path(state_dir)
        # What every client of the gateway signs with (`access`); generated if not given (tests).
        self.credentials = credentials or StackCredentials.generate(region)
        self.jobs_dir = self.state_dir / "jobs"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(self.state_dir / "store")
        self.clock = clock
        self.moto_url = moto_url
        self.url = url
        self.region = region
        self.hosting = None  # set by hosting.install: the live endpoints runtime routes to
        self.processing_jobs = None  # set by processing_jobs.install: runs created Processing jobs
        self._operations: dict[tuple[str, str], Handler] = {}
        self._clients: dict[str, object] = {}
        self._clients_lock = threading.Lock()
        self._stop_hooks: list[Callable[[], None]] = []

    # --- the gateway's registry ---------------------------------------------------------------

    def register_operations(self, service_name: str, operations: dict[str, Handler]) -> None:
        """Plug handlers in: `{"CreateEndpoint": handler, ...}` for a botocore service name."""
        model = service_model(service_name)  # raises UnknownServiceError for a misspelt service
        for name, handler in operations.items():
            if name not in model.operation_names:
                raise ValueError(f"{service_name} has no operation {name!r} in botocore's service model")
            if (service_name, name) in self._operations:
                raise ValueError(f"{service_name}.{name} is already registered")
            self._operations[(service_name, name)] = handler

    def handler(self, service_name: str, operation_name: str) -> Handler | None:
        return self._operations.get((service_name, operation_name))

    def registered_services(self) -> list[str]:
        return sorted({service for service, _ in self._operations})

    def registered_operations(self, service_name: str) -> list[str]:
        return sorted(name for service, name in self._operations if service == service_name)

    # --- helpers for modules ------------------------------------------------------------------

    def aws_client(self, service_name: str):
        """A boto3 client talking to moto directly (moto's credentials, no retries of 500s); it
        reads nothing from this process's AWS_* variables or ~/.aws (`isolated_botocore_session`)."""
        with self._clients_lock:
            client = self._clients.get(service_name)
            if client is None:
                client = boto3.session.Session(botocore_session=isolated_botocore_session()).client(
                    service_name,
                    endpoint_url=self.moto_url,
                    region_name=self.region,
                    aws_access_key_id=MOTO_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                    aws_secret_access_key=MOTO_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                    config=Config(retries={"max_attempts": 1}),
                )
                self._clients[service_name] = client
            return client

    def arn(self, resource_type: str, name: str) -> str:
        """`arn:aws:sagemaker:<region>:<account>:<type>/<name>`; SageMaker lower-cases names in ARNs."""
        return f"arn:aws:sagemaker:{self.region}:{self.account_id}:{resource_type}/{name.lower()}"

    def timestamp(self) -> str:
        """Now, as records store it."""
        return self.clock.now().isoformat()

    def aws_environment(self) -> dict[str, str]:
        """Variables that point boto3 at this stack (what `local up` prints as exports)."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            **self.credentials.environment(),
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }

    def client_environment(self) -> dict[str, str]:
        """The complete AWS settings of a process that must talk to this stack and nothing else:
        `aws_environment()`, with empty config and credentials files so that no profile,
        `ignore_configured_endpoint_urls` or service endpoint from ~/.aws applies. Use it on an
        environment without any other AWS_* variable (`isolate_aws_environment`)."""
        return {**self.aws_environment(), **ISOLATED_AWS_FILES}

    def process_environment(self) -> dict[str, str]:
        """Platform variables for every process the stack launches (model servers, jobs); the
        launcher keeps the host's AWS_* variables out, so these are its only AWS settings."""
        environment = self.client_environment()
        if self.clock.simulated:
            environment[process_clock.NOW_ENV] = self.clock.now().isoformat()
        return environment

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Run `callback` when the stack stops (last registered runs first)."""
        self._stop_hooks.append(callback)

    # --- control ------------------------------------------------------------------------------

    def advance(self, seconds: float) -> datetime:
        if not isinstance(self.clock, SimulatedClock):
            raise StackError("the clock is real time; only a stack started with a simulated clock can be advanced")
        return self.clock.advance(timedelta(seconds=seconds))

    def status(self) -> dict:
        endpoints = [
            {
                "EndpointName": record["EndpointName"],
                "EndpointStatus": record["EndpointStatus"],
                "EndpointConfigName": record["EndpointConfigName"],
                "Variants": [variant["VariantName"] for variant in record.get("ProductionVariants", [])],
            }
            for record in self.store.list("Endpoint")
        ]
        schedules = [
            {
                "MonitoringScheduleName": record.get("MonitoringScheduleName"),
                "MonitoringScheduleStatus": record.get("MonitoringScheduleStatus"),
                "EndpointName": record.get("EndpointName"),
            }
            for record in self.store.list("MonitoringSchedule")
        ]
        return {
            "url": self.url,
            "region": self.region,
            "state_dir": str(self.state_dir),
            "clock": {"now": self.clock.now().isoformat(), "simulated": self.clock.simulated},
            "endpoints": endpoints,
            "schedules": schedules,
        }

    def stop(self) -> None:
        for callback in reversed(self._stop_hooks):
            try:
                callback()
            except Exception:  # one module failing to stop must not keep the others running
                log.exception("stop hook %r failed", callback)


def install_modules(platform: LocalPlatform) -> list[str]:
    """Install every module, in order; returns their names."""
    for name in MODULES:
        importlib.import_module(name).install(platform)
    return list(MODULES)


# --- processes and threads the stack runs ---------------------------------------------------

def _port_in_use(port: int, how: str) -> PortInUse:
    return PortInUse(
        f"port {port} on {LOOPBACK} is already in use ({how}): is a stack already running "
        f"(`diversity-monitor local status`)? Stop it, or choose another port with --port"
    )


def something_listens(port: int) -> bool:
    """Whether a server accepts connections on 127.0.0.1:port (bound there or to every interface)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        return probe.connect_ex((LOOPBACK, port)) == 0


def bind_loopback(port: int) -> socket.socket:
    """The gateway's listening socket on 127.0.0.1, or a clear error if the port is taken.

    Two checks, because the bind alone is not enough everywhere: SO_REUSEADDR (needed to restart
    over connections in TIME_WAIT) lets macOS and the BSDs bind 127.0.0.1:PORT while another
    process listens on the wildcard address 0.0.0.0:PORT, and that process would then get half
    the traffic. So a port on which something already accepts connections is refused first; the
    bind then catches the rest (Linux refuses it with EADDRINUSE).
    """
    if port and something_listens(port):
        raise _port_in_use(port, "a server answers there")
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it every small response waits out a 40 ms delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart over TIME_WAIT, not over a listener
    try:
        sock.bind((LOOPBACK, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise _port_in_use(port, "it cannot be bound") from None
        raise StackError(f"cannot listen on {LOOPBACK}:{port}: {error.strerror}") from None
    sock.listen(128)
    return sock


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def wait_until_answering(url: str, process: subprocess.Popen, what: str, log_path: Path, timeout: float = 60.0) -> None:
    """Poll `url` until it answers 200; fail early (with the log's tail) if the process exits."""
    http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=1.0, read=5.0))
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise StackError(f"{what} exited with status {process.returncode} during startup:\n{log_tail(log_path)}")
        try:
            if http.request("GET", url).status == 200:
                return
        except urllib3.exceptions.HTTPError:
            pass
        if time.monotonic() > deadline:
            stop_process(process)
            raise StackError(f"{what} did not answer {url} within {timeout:.0f} s:\n{log_tail(log_path)}")
        time.sleep(0.05)


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def stop_process(process: subprocess.Popen, grace: float = 10.0, first: signal.Signals = signal.SIGTERM) -> None:
    """`first` (SIGTERM) to the process group (the process and its children), SIGKILL after `grace` seconds."""
    if process.poll() is not None:
        return
    for sig, wait in ((first, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue

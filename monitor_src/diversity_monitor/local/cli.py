"""`diversity-monitor local up|down|status|advance`: the embedded local stack's lifecycle.

`up` serves the stack in the foreground until Ctrl-C / SIGTERM, or with `--detach` in a
background process. Either way the running stack is recorded in `<state-dir>/stack.json`
(pid, url, state dir, region, clock) and in the per-user registry of running stacks
(`aws.local_stacks`), so `down`, `status` and `advance` find it without `--state-dir` when it
is the only one, and notebooks find its credentials from its URL. A state folder whose stack
ran on a simulated clock resumes that clock where it stopped (`--real-clock` to leave it). `up` prints
`export` lines (after `#` comments, and after an `unset` of the shell's other AWS_* variables,
such as AWS_PROFILE or AWS_ENDPOINT_URL_S3, that would send boto3 elsewhere), so
`eval "$(diversity-monitor local up --detach)"` points the shell's boto3 at it. The stack
itself ignores the shell's AWS settings (`protocols.isolated_botocore_session`), and the
processes it starts get exactly its own.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from diversity_monitor.aws import local_stacks
from diversity_monitor.cli import whole_option
from diversity_monitor.local.access import (
    CredentialsFileError,
    credentials_path,
    read_credentials,
    signed_control_headers,
)
from diversity_monitor.local.platform import (
    DEFAULT_PORT,
    DEFAULT_REGION,
    StackError,
    log_tail,
)

DEFAULT_STATE_DIR = Path(".local-stack")
STACK_FILE = "stack.json"
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_VARIABLE_NAME = re.compile(r"AWS_[A-Za-z0-9_]+")
_UNIT_SECONDS = (86400, 3600, 60, 1)


def register(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="local_command", metavar="SUBCOMMAND", required=True)

    up = commands.add_parser("up", help="start the stack (foreground, or --detach)")
    up.add_argument(
        "--state-dir", type=Path, default=DEFAULT_STATE_DIR,
        help=f"where the stack keeps its state (default {DEFAULT_STATE_DIR}); a demo's or drill's "
             "`.local-stack` brings that run back",
    )
    up.add_argument("--port", type=whole_option("--port", 0, 65535), default=DEFAULT_PORT,
                    help=f"gateway port on 127.0.0.1 (default {DEFAULT_PORT}; 0 takes a free one)")
    up.add_argument("--region", default=DEFAULT_REGION, help=f"region in ARNs and clients (default {DEFAULT_REGION})")
    up.add_argument(
        "--simulated-clock", metavar="INSTANT", default=None,
        help="start a simulated clock at this ISO-8601 instant (e.g. 2027-10-31T06:00:00Z); move it with `advance`. "
             "Default: the state folder's simulated clock where it stopped, else real time",
    )
    up.add_argument("--real-clock", action="store_true",
                    help="run on real time even if the state folder's stack ran on a simulated clock")
    up.add_argument("--detach", action="store_true", help="run in the background; stop with `local down`")
    up.add_argument("--verbose", action="store_true", help="log what the stack does")
    up.set_defaults(handler=_up)

    down = commands.add_parser("down", help="stop the stack (its state stays in the state dir)")
    _state_dir_argument(down)
    down.set_defaults(handler=_down)

    status = commands.add_parser("status", help="url, clock, endpoints and schedules of the running stack")
    _state_dir_argument(status)
    status.add_argument("--json", action="store_true", help="print the raw status document")
    status.set_defaults(handler=_status)

    advance = commands.add_parser("advance", help="move a simulated clock forward (e.g. 3h, 90m, 1h30m, 2d)")
    _state_dir_argument(advance)
    advance.add_argument("duration", type=parse_duration)
    advance.set_defaults(handler=_advance)


def _state_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir", type=Path, default=None,
        help="the stack's state folder (default: the one stack running on this machine, from the registry of "
             "running stacks)",
    )


def chosen_state_dir(state_dir: Path | None) -> Path:
    """`--state-dir` when given, else the state folder of the only registered running stack."""
    if state_dir is not None:
        return state_dir.resolve()
    running = local_stacks.running_stacks()
    if len(running) == 1:
        return Path(running[0]["state_dir"])
    if not running:
        raise StackError(f"no stack is running (none registered in {local_stacks.registry_folder()}); start one with "
                         "`diversity-monitor local up --detach`, or give --state-dir")
    listed = "; ".join(f"{record['url']} from {record['state_dir']}" for record in running)
    raise StackError(f"{len(running)} stacks are running ({listed}): give --state-dir")


def parse_duration(text: str) -> int:
    """`3h` -> 10800; units d, h, m, s, combinable in that order (`1h30m`)."""
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None:
        raise argparse.ArgumentTypeError(f"duration {text!r}: use numbers with units d, h, m, s, e.g. 3h, 90m, 1h30m")
    seconds = sum(int(part or 0) * unit for part, unit in zip(match.groups(), _UNIT_SECONDS))
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"duration {text!r} must be longer than zero")
    return seconds


# --- the stack file ---------------------------------------------------------------------------

def _stack_file(state_dir: Path) -> Path:
    return state_dir / STACK_FILE


_alive = local_stacks.process_alive


def running_stack(state_dir: Path) -> dict | None:
    """The stack recorded in `state_dir` if its process is alive; a stale record is removed."""
    path = _stack_file(state_dir)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if _alive(record["pid"]):
        return record
    path.unlink(missing_ok=True)
    return None


def _credentials(state_dir: Path):
    try:
        credentials = read_credentials(credentials_path(state_dir))
    except CredentialsFileError as error:
        raise StackError(str(error)) from None
    if credentials is None:
        raise StackError(f"{credentials_path(state_dir)} is missing: the stack writes it when it starts")
    return credentials


def export_lines(url: str, region: str, environ: Mapping[str, str], credentials: Mapping[str, str]) -> str:
    """Shell lines pointing boto3 at the stack and signing with its `credentials` (AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY); other AWS_* variables of `environ` are unset."""
    variables = {"AWS_ENDPOINT_URL": url, **credentials, "AWS_DEFAULT_REGION": region, "AWS_REGION": region}
    others = sorted(key for key in environ if _VARIABLE_NAME.fullmatch(key) and key not in variables)
    lines = [f"export {key}={shlex.quote(value)}" for key, value in variables.items()]
    if others:
        lines.insert(0, f"unset {' '.join(others)}")
        lines.insert(0, "# this shell's other AWS settings would send boto3 elsewhere or sign with other credentials:")
    return "\n".join(lines)


def _announce(record: dict, environ: Mapping[str, str]) -> None:
    print(f"# local stack on {record['url']} (pid {record['pid']}, state in {record['state_dir']})")
    print(f"# clock: {record['clock']}")
    credentials = _credentials(Path(record["state_dir"])).environment()
    print(export_lines(record["url"], record["region"], environ, credentials))
    sys.stdout.flush()


# --- commands ---------------------------------------------------------------------------------

def _up(args: argparse.Namespace) -> int:
    state_dir = args.state_dir.resolve()
    existing = running_stack(state_dir)
    if args.simulated_clock and args.real_clock:
        print("error: --simulated-clock and --real-clock: choose one", file=sys.stderr)
        return 2
    if existing:
        print(f"error: a stack is already running from {state_dir} (pid {existing['pid']}, {existing['url']}); "
              f"`diversity-monitor local down --state-dir {args.state_dir}` stops it", file=sys.stderr)
        return 1
    if args.detach:
        return _up_detached(args, state_dir)
    return _up_foreground(args, state_dir)


def _up_foreground(args: argparse.Namespace, state_dir: Path) -> int:
    from diversity_monitor.local.stack import parse_clock, start_stack

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    try:
        clock = parse_clock(args.simulated_clock, state_dir, real_time=args.real_clock)
        stack = start_stack(state_dir, args.port, clock, args.region)
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # Ctrl-C, `kill`/`local down`, a closed terminal
        signal.signal(sig, lambda *_: stop.set())
    describe_clock = f"simulated, now {clock.now().isoformat()}" if clock.simulated else "real time"
    record = {"pid": os.getpid(), "url": stack.url, "state_dir": str(state_dir), "region": args.region, "clock": describe_clock}
    path = _stack_file(state_dir)
    path.write_text(json.dumps(record))
    local_stacks.register_stack(record)
    try:
        _announce(record, os.environ)
        stop.wait()
    finally:
        print("# stopping the local stack...", file=sys.stderr)
        try:
            stack.stop()
        finally:
            local_stacks.unregister_stack(record["url"], record["pid"])
            path.unlink(missing_ok=True)
    return 0


def _up_detached(args: argparse.Namespace, state_dir: Path) -> int:
    try:
        record = start_detached(state_dir, args.port, args.region, args.simulated_clock, args.real_clock, args.verbose)
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    _announce(record, os.environ)
    return 0


def start_detached(state_dir: Path, port: int = DEFAULT_PORT, region: str = DEFAULT_REGION,
                   simulated_clock: str | None = None, real_clock: bool = False, verbose: bool = False,
                   timeout: float = 120.0) -> dict:
    """`local up --detach`: the stack in a background process; returns its record once it serves."""
    log_path = state_dir / "logs" / "stack.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "diversity_monitor.cli", "local", "up",
               "--state-dir", str(state_dir), "--port", str(port), "--region", region]
    if simulated_clock:
        command += ["--simulated-clock", simulated_clock]
    if real_clock:
        command.append("--real-clock")
    if verbose:
        command.append("--verbose")
    with open(log_path, "ab") as log_file:
        child = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = running_stack(state_dir)
        if record and record["pid"] == child.pid:
            return record
        if child.poll() is not None:
            raise StackError(f"the stack exited during startup (status {child.returncode}); {log_path}:\n{log_tail(log_path)}")
        time.sleep(0.1)
    child.terminate()
    raise StackError(f"the stack did not start within {timeout:.0f} s; see {log_path}")


def _down(args: argparse.Namespace, timeout: float = 120.0) -> int:
    try:
        state_dir = chosen_state_dir(args.state_dir)
    except StackError as error:
        print(error)
        return 0
    record = running_stack(state_dir)
    if record is None:
        print(f"no stack is running from {state_dir}")
        return 0
    os.kill(record["pid"], signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(record["pid"]):
        if time.monotonic() > deadline:
            print(f"error: the stack (pid {record['pid']}) did not stop within {timeout:.0f} s", file=sys.stderr)
            return 1
        time.sleep(0.1)
    print(f"stopped the stack on {record['url']} (state kept in {state_dir})")
    return 0


def call_stack(state_dir: Path | None, method: str, route: str, payload: dict | None = None) -> dict:
    """One request to the running stack's own routes (`/_local/status`, `/_local/advance`)."""
    state_dir = chosen_state_dir(state_dir)
    record = running_stack(state_dir)
    if record is None:
        raise StackError(f"no stack is running from {state_dir}; start one with `diversity-monitor local up`")
    data = json.dumps(payload).encode() if payload is not None else b""
    url = record["url"] + route
    headers = signed_control_headers(method, url, data, _credentials(Path(record["state_dir"])))
    request = urllib.request.Request(url, data=data or None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=3600) as response:  # an advance runs every job it fires
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        detail = json.loads(error.read() or b"{}").get("error", error.reason)
        raise StackError(detail) from None


def _status(args: argparse.Namespace) -> int:
    try:
        status = call_stack(args.state_dir, "GET", "/_local/status")
    except StackError as error:
        print(f"not running: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    clock = status["clock"]
    print(f"url:       {status['url']}")
    print(f"state dir: {status['state_dir']}")
    print(f"clock:     {clock['now']} ({'simulated' if clock['simulated'] else 'real time'})")
    print(f"endpoints: {len(status['endpoints']) or 'none'}")
    for endpoint in status["endpoints"]:
        print(f"  {endpoint['EndpointName']}: {endpoint['EndpointStatus']}, config {endpoint['EndpointConfigName']}, "
              f"variants {', '.join(endpoint['Variants']) or '-'}")
    print(f"schedules: {len(status['schedules']) or 'none'}")
    for schedule in status["schedules"]:
        print(f"  {schedule['MonitoringScheduleName']}: {schedule['MonitoringScheduleStatus']} on {schedule['EndpointName']}")
    return 0


def _advance(args: argparse.Namespace) -> int:
    try:
        answer = call_stack(args.state_dir, "POST", "/_local/advance", {"seconds": args.duration})
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"clock now {answer['now']}")
    return 0

"""`diversity-monitor drill` (`make drill`): rehearse the incident as the on-call lives it.

Starts the local stack in the background on a simulated clock (`local up --detach`), plays the
demo's incident (`scenario.IncidentScenario.run_until_page`) up to five minutes after the
second bad run, when the diversity alarm has paged, and stops there: the stack keeps serving at
that simulated moment, with the regressed model live. It prints the page and how to walk the
alarm runbook for real (JupyterLab or papermill, rollback included), then how to let the clock
run on (`local advance`) until the alarm clears, and how to stop (`local down`). Nothing else is
needed: the runbook finds the stack's credentials from its URL, and `as_of` puts the notebook's
"now" on the stack's clock. The stack's state folder keeps the drill: `local up --state-dir` on
it later resumes at the simulated moment it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import boto3

from diversity_monitor import clock as process_clock
from diversity_monitor.aws import local_stacks
from diversity_monitor.cli import whole_option
from diversity_monitor.conventions import DIVERSITY_ALARM_RUNBOOK
from diversity_monitor.demo.command import DEMO_ROOT, fresh_output_folder, run_with_progress
from diversity_monitor.demo.scenario import REGION, IncidentScenario, ScenarioPlan
from diversity_monitor.local import cli as local_cli
from diversity_monitor.local.platform import (
    DEFAULT_PORT,
    ISOLATED_AWS_FILES,
    StackError,
    isolate_aws_environment,
    restore_aws_environment,
)

DRILL_FILE = "drill.json"  # what the drill left: url, state folder, the page, the moment it stopped


@dataclass
class StackClock:
    """The detached stack's simulated clock, moved over HTTP (`/_local/advance`)."""

    state_dir: Path
    current: datetime

    def now(self) -> datetime:
        return self.current  # a simulated clock only moves when advanced

    def advance(self, seconds: float) -> datetime:
        answer = local_cli.call_stack(self.state_dir, "POST", "/_local/advance", {"seconds": seconds})
        self.current = process_clock.parse_instant(answer["now"])
        return self.current


def stack_environment(record: dict) -> dict[str, str]:
    """The AWS settings that point this process's boto3 at the stack (its own credentials file)."""
    credentials = local_stacks.credentials_of(record) or {}
    return {
        "AWS_ENDPOINT_URL": record["url"],
        "AWS_ACCESS_KEY_ID": credentials.get("aws_access_key_id", ""),
        "AWS_SECRET_ACCESS_KEY": credentials.get("aws_secret_access_key", ""),
        "AWS_DEFAULT_REGION": record["region"],
        "AWS_REGION": record["region"],
        **ISOLATED_AWS_FILES,
    }


def run_drill(output: Path, plan: ScenarioPlan, port: int = DEFAULT_PORT, progress: bool = False) -> dict:
    """Play the incident up to the page on a background stack that keeps serving; returns the drill's record."""
    state_dir = (output / ".local-stack").resolve()
    record = local_cli.start_detached(state_dir, port, REGION, simulated_clock=plan.start.isoformat())
    inherited = isolate_aws_environment(os.environ, stack_environment(record))
    boto3.setup_default_session()  # the default session keeps the credentials it resolved first
    try:
        stack_clock = StackClock(state_dir, plan.start)
        scenario = IncidentScenario(workdir=output / "work", advance=stack_clock.advance, now=stack_clock.now, plan=plan)
        steps = run_with_progress(scenario, progress, until_page=True)
        pager = scenario.pager_messages()
        # What paged: the composite alarm (the runbook resolves the child that fired it).
        alarm = boto3.client("cloudwatch").describe_alarms(
            AlarmNames=[scenario.page_alarm], AlarmTypes=["CompositeAlarm"])["CompositeAlarms"][0]
    except BaseException:
        os.kill(record["pid"], signal.SIGTERM)  # a drill that did not reach the page leaves no stack behind
        raise
    finally:
        restore_aws_environment(os.environ, inherited)
        boto3.setup_default_session()
    page = next((message for message in pager if message.get("NewStateValue") == "ALARM"), None)
    drill = {
        "url": record["url"], "pid": record["pid"], "state_dir": str(state_dir), "region": record["region"],
        "as_of": process_clock.iso_z(stack_clock.now()), "alarm_name": alarm["AlarmName"],
        "alarm_state": alarm["StateValue"], "page": page, "steps": steps,
    }
    (output / DRILL_FILE).write_text(json.dumps(drill, indent=2, default=str))
    return drill


def instructions(drill: dict, output: Path) -> str:
    """What the on-call does next, in order (printed at the end of `make drill`)."""
    page = drill["page"] or {}
    runbook = DIVERSITY_ALARM_RUNBOOK
    papermill = (f"papermill {runbook} {output}/runbook-as-is.ipynb -p endpoint_url {drill['url']} "
                 f"-p as_of {drill['as_of']} -p alarm_name {drill['alarm_name']}")
    return "\n".join([
        "",
        f"PAGE  {IncidentScenario.pager_line(page)}" if page else "PAGE  ?  no page received (see the alarm state)",
        f"      alarm {drill['alarm_name']} is {drill['alarm_state']}; the regressed model is live.",
        "",
        f"The local stack keeps serving on {drill['url']}, its simulated clock stopped at {drill['as_of']}",
        f"(state in {drill['state_dir']}). You are the on-call now:",
        "",
        f"  1. Open the alarm runbook:   .venv/bin/jupyter lab {runbook}",
        "     In its parameters cell set:",
        f"       endpoint_url = {drill['url']!r}",
        f"       as_of = {drill['as_of']!r}",
        "     Run it top to bottom as it is (it changes nothing), read it, then set confirm_rollback = True and run it again.",
        f"     Headless instead:  .venv/bin/{papermill}",
        f"                        .venv/bin/{papermill.replace('runbook-as-is', 'runbook-rollback')} -p confirm_rollback True",
        "  2. Let two hourly runs pass; the alarm returns to OK:",
        "       .venv/bin/diversity-monitor local advance 2h && .venv/bin/diversity-monitor local status",
        "  3. Stop the stack (the drill stays in its state folder; `local up --state-dir` resumes it):",
        "       .venv/bin/diversity-monitor local down",
        "",
        f"Drill record: {output / DRILL_FILE}",
    ])


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", type=Path, default=None,
                        help=f"an empty or new folder for the drill's stack state (default: {DEMO_ROOT}/drill-<time>/)")
    parser.add_argument("--port", type=whole_option("--port", 0, 65535), default=DEFAULT_PORT,
                        help=f"port the stack serves on, on 127.0.0.1 (default {DEFAULT_PORT}; 0: any free port)")
    parser.add_argument("--sessions", type=whole_option("--sessions", 1, 100_000), default=ScenarioPlan.sessions, help="validation sessions replayed each hour")
    parser.add_argument("--live-requests", type=whole_option("--live-requests", 0, 100_000), default=ScenarioPlan.live_requests_per_hour,
                        help="live requests per simulated hour")
    parser.set_defaults(handler=_drill)


def _drill(args: argparse.Namespace) -> int:
    plan = ScenarioPlan(sessions=args.sessions, live_requests_per_hour=args.live_requests)
    output = args.output or fresh_output_folder(prefix="drill")
    if output.exists() and any(output.iterdir()):
        print(f"error: {output} is not empty: pass --output to a new folder", file=sys.stderr)
        return 1
    output.mkdir(parents=True, exist_ok=True)
    try:
        drill = run_drill(output, plan, args.port, progress=sys.stderr.isatty())
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(instructions(drill, output))
    return 0

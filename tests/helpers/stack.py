"""A running local stack with the reference recommender deployed, for notebook and runbook tests.

`deployed_stack(path, monkeypatch)` starts the embedded stack on a free port with a simulated
clock, points this process's boto3 (and so papermill kernels, which inherit the environment) at
it, and plays the scenario's setup: models v1 (healthy) and v2 (regressed) trained and
registered, `recommender-prod` serving v1 with capture, validation set and catalog in S3.
Everything else (baseline, schedule, alarms, hours passing) is up to the test, through the
scenario's own steps.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from diversity_monitor.demo.scenario import IncidentScenario, ScenarioPlan
from diversity_monitor.local.clock import SimulatedClock
from diversity_monitor.local.stack import start_stack
from helpers.aws import REGION

SMALL_PLAN = ScenarioPlan(sessions=100, live_requests_per_hour=40)


def point_process_at(stack, monkeypatch) -> None:
    """This process's boto3 (and the papermill kernels it starts) talks to `stack` and only to it:
    a developer's AWS_PROFILE or AWS_ENDPOINT_URL_S3 must not reach it, and boto3's default session,
    which keeps the credentials it first resolved, is rebuilt (each stack signs with its own)."""
    import boto3

    for key in [key for key in os.environ if key.startswith("AWS_")]:
        monkeypatch.delenv(key)
    for key, value in stack.platform.client_environment().items():
        monkeypatch.setenv(key, value)
    boto3.setup_default_session()


@contextmanager
def deployed_stack(path: Path, monkeypatch, plan: ScenarioPlan = SMALL_PLAN):
    clock = SimulatedClock(plan.start)
    with start_stack(path / "stack", port=0, clock=clock) as stack:
        point_process_at(stack, monkeypatch)
        scenario = IncidentScenario(workdir=path / "work", advance=stack.platform.advance, now=clock.now, plan=plan)
        scenario.prepare_models()
        scenario.deploy_initial()
        yield stack, scenario


class StackHolder:
    """A module's stack on a simulated clock from `start`; `restart` swaps in a new one on the same
    folder and port, at the clock's time (what survives a restart is what a test checks)."""

    def __init__(self, state_dir: Path, start) -> None:
        self.state_dir = state_dir
        self.stack = start_stack(state_dir, port=0, clock=SimulatedClock(start), region=REGION)
        self.port = int(self.stack.url.rsplit(":", 1)[1])

    @property
    def url(self) -> str:
        return self.stack.url

    @property
    def platform(self):
        return self.stack.platform

    @property
    def credentials(self):
        return self.stack.credentials

    def restart(self) -> None:
        now = self.platform.clock.now()
        self.stack.stop()
        self.stack = start_stack(self.state_dir, port=self.port, clock=SimulatedClock(now), region=REGION)

    def __enter__(self) -> StackHolder:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stack.stop()

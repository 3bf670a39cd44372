"""`diversity-monitor demo`: the incident from the design notes, end to end, on the local stack.

`--incident NAME` plays another incident instead: each of the reference recommender's defects
(`recommender.model.DEFECTS`), each ending paged and rolled back.

Starts the embedded stack with a simulated clock, plays `scenario.IncidentScenario` (healthy
hours, a regressed deploy, the alarm, the rollback, recovery), then prints the timeline and
leaves in `demo-output/run-<time>/` (`demo-output/latest` points at the newest run):
`timeline.csv`, `timeline.png`, `dashboard.png` (the endpoint's CloudWatch dashboard's graphs over the run,
drawn by the local stack's GetMetricWidgetImage), `pager.json`, `events.json`, every executed report
(`reports/<yyyy-mm-dd-HH>/report.ipynb|.html`, statistics, violations) and the stack's state
folder `.local-stack/` (`diversity-monitor local up --state-dir` on it brings the run back).

The demo process talks to its own stack only: every AWS_* variable it inherited (a profile, an
endpoint override) is replaced by the stack's settings while it runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from datetime import datetime, timedelta
from pathlib import Path

import boto3
import pandas as pd
from tqdm.auto import tqdm

from diversity_monitor import storage
from diversity_monitor.cli import whole_option
from diversity_monitor.conventions import DEFAULT_MIN_DIVERSITY
from diversity_monitor.demo.scenario import ENDPOINT, REPORTS_URI, SCHEDULE, IncidentScenario, ScenarioPlan
from diversity_monitor.job import report_views as report
from diversity_monitor.job.past_reports import load_reports
from diversity_monitor.local.clock import SimulatedClock
from diversity_monitor.local.platform import isolate_aws_environment, restore_aws_environment
from diversity_monitor.oncall import dashboard_view
from diversity_monitor.oncall.report_history import alarm_states, state_at
from diversity_monitor.recommender.model import DEFECTS

INCIDENTS = [name for name in DEFECTS if name]  # `--incident`: every defect of the reference recommender

DEMO_ROOT = Path("demo-output")
DASHBOARD_PICTURE = "dashboard.png"  # the endpoint's dashboard over the whole run, next to timeline.png
STOPPED_FILE = "STOPPED.txt"  # in a run a signal cut short: says so, next to what it left


def fresh_output_folder(root: Path = DEMO_ROOT, prefix: str = "run") -> Path:
    """`demo-output/<prefix>-<time>/`, with `demo-output/latest` pointing at the newest demo run: runs never overwrite."""
    folder = root / datetime.now().strftime(f"{prefix}-%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=False)
    if prefix != "run":
        return folder
    latest = root / "latest"
    if latest.is_symlink():
        latest.unlink()
    if not latest.exists():
        latest.symlink_to(folder.name)
    return folder


def live_config_at(events, moment: datetime) -> str:
    config = "-"
    for event in events:
        if event.what in ("deploy", "rollback") and event.at <= moment:
            config = event.detail.split(" ")[0]
    return config


def timeline(scenario: IncidentScenario) -> pd.DataFrame:
    import boto3

    executions = boto3.client("sagemaker").list_monitoring_executions(
        MonitoringScheduleName=SCHEDULE, SortBy="ScheduledTime", SortOrder="Ascending", MaxResults=100,
    )["MonitoringExecutionSummaries"]
    reports = {r.hour: r for r in load_reports(
        REPORTS_URI, ENDPOINT, SCHEDULE, scenario.plan.start, scenario.now())}
    changes = alarm_states(scenario.page_alarm) if scenario.page_alarm else []  # what pages: the composite
    rows = []
    for execution in executions:
        hour = execution["ScheduledTime"]
        figures = reports[hour].figures if hour in reports else {}
        live = figures.get("live") or {}
        rows.append({
            "hour": hour.strftime("%Y-%m-%d %H:%M"),
            "endpoint config": live_config_at(scenario.events, hour),
            "status": execution["MonitoringExecutionStatus"],
            "mean": round(figures["mean"], 2) if figures.get("mean") is not None else None,
            "min": figures.get("min"),
            "p5": figures.get("p5"),
            "max slot share": round(figures.get("max_slot_concentration") or 0, 2),
            "live mean": round(live["mean"], 2) if live.get("mean") is not None else None,
            "live lists": live.get("lists"),
            "violations": len(reports[hour].violations) if hour in reports else None,
            "alarm": state_at(changes, hour + timedelta(minutes=5)),
        })
    return pd.DataFrame(rows)


def collect_reports(output: Path, start: datetime, end: datetime) -> int:
    count = 0
    for hour_report in load_reports(REPORTS_URI, ENDPOINT, SCHEDULE, start, end):
        folder = output / "reports" / hour_report.hour.strftime("%Y-%m-%d-%H")
        folder.mkdir(parents=True, exist_ok=True)
        for uri in hour_report.files:
            (folder / uri.rsplit("/", 1)[-1]).write_bytes(storage.read_bytes(uri))
        count += 1
    return count


def run_demo(output: Path, plan: ScenarioPlan, progress: bool = True) -> dict:
    from diversity_monitor.local.stack import start_stack, stopped_by_signals

    if output.exists() and any(output.iterdir()):
        raise SystemExit(f"{output} is not empty: move it away or pass --output to a new folder "
                         "(the demo never overwrites an earlier run's reports)")
    output.mkdir(parents=True, exist_ok=True)
    clock = SimulatedClock(plan.start)
    with stopped_by_signals(), start_stack(output / ".local-stack", port=0, clock=clock) as stack:
        # Any boto3 code in this process now talks to the stack, and only to it.
        inherited = isolate_aws_environment(os.environ, stack.platform.client_environment())
        boto3.setup_default_session()  # it keeps the credentials it resolved first; this stack has its own
        try:
            scenario = IncidentScenario(workdir=output / "work", advance=stack.platform.advance, now=clock.now, plan=plan)
            steps = run_with_progress(scenario, progress)
            table = timeline(scenario)
            pager = scenario.pager_messages()
            reports = collect_reports(output, plan.start, clock.now())
            board = dashboard_view.board(ENDPOINT, plan.start, clock.now())
            (output / DASHBOARD_PICTURE).write_bytes(dashboard_view.board_picture(board.images))
            events = [{"at": e.at.isoformat(), "what": e.what, "detail": e.detail} for e in scenario.events]
            changes = alarm_states(scenario.alarm_names[0]) if scenario.alarm_names else []
        finally:
            restore_aws_environment(os.environ, inherited)
    table.to_csv(output / "timeline.csv", index=False)
    (output / "pager.json").write_text(json.dumps(pager, indent=2, default=str))
    (output / "events.json").write_text(json.dumps(events, indent=2))
    baseline = next((float(e.detail.split()[1].rstrip(",")) for e in scenario.events if e.what == "baseline"), None)
    figure = report.timeline_figure(table, scenario.events, threshold=DEFAULT_MIN_DIVERSITY, alarm_changes=changes,
                                    title=f"{ENDPOINT}: the incident, replay diversity per hourly run", baseline=baseline)
    figure.savefig(output / "timeline.png", dpi=110)
    shutil.rmtree(output / "work", ignore_errors=True)  # training data and models: rebuilt each run
    return {"timeline": table, "pager": pager, "reports": reports, "events": events, "steps": steps}


def run_with_progress(scenario: IncidentScenario, bar: bool, until_page: bool = False) -> list[str]:
    """Play the scenario (up to the page with `until_page`), printing `[i/N] step` as each step ends
    (to stdout, so a log or a pipe shows it too), under a tqdm bar when `bar` (a terminal). Returns the lines printed."""
    total = scenario.steps_until_page if until_page else scenario.step_count
    printed: list[str] = []
    with tqdm(total=total, desc="demo", unit="step", disable=not bar) as progress:
        def on_step(text: str) -> None:
            progress.update(1)
            printed.append(f"[{len(printed) + 1}/{total}] {text}")
            tqdm.write(printed[-1])
        (scenario.run_until_page if until_page else scenario.run)(on_step)
    return printed


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", type=Path, default=None,
                        help="an empty or new folder for reports and the timeline (default: demo-output/run-<time>/)")
    parser.add_argument("--sessions", type=whole_option("--sessions", 1, 100_000), default=500, help="validation sessions replayed each hour")
    parser.add_argument("--live-requests", type=whole_option("--live-requests", 0, 100_000), default=120, help="live requests per simulated hour")
    parser.add_argument("--incident", choices=INCIDENTS, default=ScenarioPlan.defect, metavar="NAME",
                        help=f"which regression v2 carries: {', '.join(INCIDENTS)} (default {ScenarioPlan.defect}, the "
                             "design notes' incident; each is described in recommender/model.py DEFECTS); each "
                             "ends paged and rolled back")
    parser.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from diversity_monitor.local.stack import Interrupted

    plan = ScenarioPlan(sessions=args.sessions, live_requests_per_hour=args.live_requests, defect=args.incident)
    output = args.output or fresh_output_folder()
    try:
        result = run_demo(output, plan, progress=sys.stderr.isatty())
    except Interrupted as stop:
        message = (f"demo stopped by {stop.signal_name}: the local stack, its model servers and jobs are stopped; "
                   f"{output} holds an incomplete run (no timeline)")
        (output / STOPPED_FILE).write_text(message + "\n")
        print(f"\n{message}", file=sys.stderr)
        return 128 + stop.signum
    print("\nTimeline (one row per scheduled monitoring run):")
    print(result["timeline"].to_string(index=False))
    print("\nPager (SNS -> SQS) received:")
    for message in result["pager"]:
        print(f"  {IncidentScenario.pager_line(message)}")
    shown = output
    latest = DEMO_ROOT / "latest"
    if args.output is None and latest.resolve() == output.resolve():
        shown = latest  # the name that stays valid: the README and the next steps use it
    print(f"\n{result['reports']} executed reports in {shown}/reports/; plots: {shown}/timeline.png, "
          f"{shown}/{DASHBOARD_PICTURE}")
    print(next_steps(shown, output))
    return 0


def next_steps(shown: Path, output: Path) -> str:
    """The demo's last lines: where everything is, and what to try next."""
    this_run = f" (this run: {output})" if shown != output else ""
    return "\n".join([
        f"\nEverything is in {shown}/{this_run}.",
        "Next:",
        "  make drill                     rehearse the page as the on-call: the alarm runbook in JupyterLab, rollback included",
        "  .venv/bin/jupyter lab notebooks/04_investigate_regression.ipynb   the incident hour by hour (endpoint_url: the stack's URL)",
        f"  .venv/bin/diversity-monitor local up --detach --state-dir {shown}/.local-stack   bring this run back, at its simulated time",
    ])

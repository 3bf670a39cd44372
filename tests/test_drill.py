"""The rehearsal, as a new on-call runs it: `diversity-monitor drill`, then the runbook, for real.

The drill plays the incident up to the page on a background stack (the real CLI, in a
subprocess) and stops there. The on-call's shell and kernels carry no AWS settings at all: the
runbook is given only the stack's URL and the drill's `as_of`, and finds the credentials from
the per-user registry of running stacks (XDG_STATE_HOME points it at the test's folder). The
stack is stopped and brought back from its state folder (its simulated clock resumes where it
stopped), the alarm runbook rolls back (confirm_rollback=True), two simulated hours pass
(`local advance`, no --state-dir) and the alarm is back to OK. On the same stack: the
failed-run runbook on a healthy schedule, and notebooks pointed at a missing stack or endpoint.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import boto3
import pytest

from diversity_monitor.aws import local_stacks
from diversity_monitor.clock import NOW_ENV
from helpers.notebooks import execute_notebook
from helpers.paths import AUDIT_DIR, NOTEBOOKS, RUNBOOKS

pytestmark = pytest.mark.slow

DIVERSITY_ALARM = "recommender-prod-diversity-below-floor"  # the child that fires for this incident
PAGE_ALARM = "recommender-prod-diversity-page"  # the composite: the only alarm that pages
PAGED_AT = "2027-10-31T10:05:00Z"  # five minutes after the second bad run: the alarm has paged


def cli(*arguments: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "diversity_monitor.cli", *arguments], env=env,
                          capture_output=True, text=True, timeout=900)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def stack_client(service: str, record: dict):
    credentials = local_stacks.credentials_of(record)
    return boto3.session.Session().client(
        service, endpoint_url=record["url"], region_name=credentials["region_name"],
        aws_access_key_id=credentials["aws_access_key_id"], aws_secret_access_key=credentials["aws_secret_access_key"])


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    path = tmp_path_factory.mktemp("drill")
    # A fresh shell: no AWS settings whatsoever, and this test's own registry of running stacks.
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", NOW_ENV))}
    env.update({"XDG_STATE_HOME": str(path / "state"), "MPLBACKEND": "Agg",
                "PYTHONPATH": os.pathsep.join([str(AUDIT_DIR), os.environ.get("PYTHONPATH", "")])})
    result: dict = {"path": path}
    with pytest.MonkeyPatch.context() as patch:
        for key in [key for key in os.environ if key.startswith("AWS_")]:
            patch.delenv(key)
        patch.setenv("XDG_STATE_HOME", env["XDG_STATE_HOME"])
        patch.setenv("PYTHONPATH", env["PYTHONPATH"])
        patch.setenv("MPLBACKEND", "Agg")
        drill = cli("drill", "--output", str(path / "out"), "--port", "0", "--sessions", "100", "--live-requests", "40",
                    env=env)
        result["drill_output"] = drill.stdout
        record = json.loads((path / "out" / "drill.json").read_text())
        result["drill"] = record
        try:
            result["alarm_at_page"] = alarm_state(record)
            # The on-call's machine restarts: the stack comes back from its state folder, on its own clock.
            result["down"] = cli("local", "down", env=env).stdout
            result["status_when_down"] = cli("local", "status", env=env, check=False)
            cli("local", "up", "--detach", "--port", "0", "--state-dir", record["state_dir"], env=env)
            result["status"] = cli("local", "status", env=env).stdout
            [restored] = local_stacks.running_stacks()
            result["restored"] = restored
            result["alarm_after_restart"] = alarm_state(restored)
            url = restored["url"]
            result["runbook"] = execute_notebook(
                RUNBOOKS / "diversity_alarm.ipynb", path / "runbook",
                {"endpoint_url": url, "as_of": record["as_of"], "confirm_rollback": True, "poll_seconds": 0.5})
            result["report_page"] = open_report_link(result["runbook"].text, url)
            result["advance"] = cli("local", "advance", "2h", env=env).stdout
            result["alarm_after"] = alarm_state(restored)
            result["config_after"] = stack_client("sagemaker", restored).describe_endpoint(
                EndpointName="recommender-prod")["EndpointConfigName"]
            clock_now = json.loads(cli("local", "status", "--json", env=env).stdout)["clock"]["now"]
            result["healthy_failed_run"] = execute_notebook(
                RUNBOOKS / "monitor_job_failed.ipynb", path / "failed-run",
                {"endpoint_url": url, "as_of": clock_now})
            result["wrong_endpoint"] = execute_notebook(
                NOTEBOOKS / "04_investigate_regression.ipynb", path / "nb04-typo",
                {"endpoint_url": url, "as_of": clock_now, "endpoint_name": "recommender-prd"})
            result["investigation"] = execute_notebook(
                NOTEBOOKS / "04_investigate_regression.ipynb", path / "nb04",
                {"endpoint_url": url, "as_of": clock_now, "reports_folder": str(path / "nb04" / "reports"),
                 "tables_folder": str(path / "nb04" / "tables")})
        finally:
            result["final_down"] = cli("local", "down", env=env, check=False).stdout
        # The stack is gone: the same runbook now says so in one sentence.
        result["no_stack"] = execute_notebook(RUNBOOKS / "diversity_alarm.ipynb", path / "no-stack",
                                              {"endpoint_url": url, "as_of": record["as_of"]})
    return result


def open_report_link(text: str, url: str) -> tuple[str, bytes]:
    """The first report link the runbook's table shows, opened as a browser would (no AWS credentials)."""
    links = re.findall(rf"{re.escape(url)}/recs-monitor/reports/[^\s\"<>']+", text)
    assert links, "no report link a browser can open"
    link = html.unescape(links[0])
    with urllib.request.urlopen(link, timeout=30) as response:
        return link, response.read()


def alarm_state(record: dict) -> str:
    alarms = stack_client("cloudwatch", record).describe_alarms(AlarmNames=[DIVERSITY_ALARM])["MetricAlarms"]
    return alarms[0]["StateValue"]


def test_drill_stops_at_the_page_and_says_what_to_do(rehearsal):
    printed, record = rehearsal["drill_output"], rehearsal["drill"]
    assert rehearsal["alarm_at_page"] == "ALARM"
    assert record["as_of"] == PAGED_AT
    page_line = next(line for line in printed.splitlines() if line.startswith("PAGE  "))
    assert page_line.startswith("PAGE  2027-10-31T10:01") and f'ALARM: "{PAGE_ALARM}"' in page_line
    assert DIVERSITY_ALARM in page_line.split("  <- ", 1)[1].split(", ")  # the children that fired it, the floor's among them
    assert f"endpoint_url = {record['url']!r}" in printed and f"as_of = {PAGED_AT!r}" in printed
    assert "jupyter lab runbooks/diversity_alarm.ipynb" in printed
    assert "confirm_rollback" in printed and "local advance 2h" in printed and "local down" in printed
    # the steps played, up to the second bad run and no further
    assert record["steps"][-1].endswith("10:00 run: regressed") and not any("rolled back" in s for s in record["steps"])


def test_local_commands_find_the_running_stack_without_state_dir(rehearsal):
    assert "stopped the stack" in rehearsal["down"]
    assert rehearsal["status_when_down"].returncode == 1
    assert "no stack is running" in rehearsal["status_when_down"].stderr
    assert "clock now 2027-10-31T12:05:00" in rehearsal["advance"]
    assert "stopped the stack" in rehearsal["final_down"]


def test_restored_stack_resumes_its_simulated_clock(rehearsal):
    assert f"clock:     {PAGED_AT.replace('Z', '+00:00')} (simulated)" in rehearsal["status"]
    assert rehearsal["alarm_after_restart"] == "ALARM"


def test_the_on_call_rolls_back_with_only_the_url_and_the_alarm_returns_to_ok(rehearsal):
    runbook = rehearsal["runbook"]
    assert runbook.error is None, runbook.error
    assert "CONFIRMED: the alarm is in ALARM" in runbook.text
    assert "COLLAPSE STILL LIVE" in runbook.text
    assert "ROLLED BACK: recommender-prod now serves recommender-prod-v1" in runbook.text
    assert "RECOVERED" in runbook.text and "NOT RECOVERED" not in runbook.text
    assert not runbook.invalid, runbook.invalid
    assert rehearsal["config_after"] == "recommender-prod-v1"
    assert rehearsal["alarm_after"] == "OK"


def test_the_reports_links_open_in_a_browser(rehearsal):
    link, page = rehearsal["report_page"]
    assert "/report.html?" in link and "X-Amz-Signature=" in link  # the object itself, presigned
    assert page.lstrip().lower().startswith(b"<!doctype html") and b"recommender-prod" in page


def test_failed_run_runbook_on_a_healthy_schedule_has_nothing_to_diagnose(rehearsal):
    healthy = rehearsal["healthy_failed_run"]
    assert healthy.error is None, healthy.error
    assert "NOTHING TO DIAGNOSE" in healthy.text
    assert "NOT STARTED: nothing to re-run." in healthy.text


def one_sentence_error(executed) -> str:
    """The error a reader sees: its traceback is the sentence alone, not a stack of frames."""
    [error] = [output for cell in executed.notebook.cells for output in cell.get("outputs", [])
               if output.get("output_type") == "error"]
    assert len(error["traceback"]) == 1, error["traceback"]
    return error["traceback"][0]


def test_a_mistyped_endpoint_is_one_sentence(rehearsal):
    message = one_sentence_error(rehearsal["wrong_endpoint"])
    assert "endpoint 'recommender-prd' does not exist" in message and "recommender-prod" in message


def test_a_stopped_stack_is_one_sentence_saying_how_to_start_it(rehearsal):
    message = one_sentence_error(rehearsal["no_stack"])
    assert f"nothing answers at {rehearsal['restored']['url']}" in message
    assert "local up" in message and "make drill" in message


def test_notebook_04_as_of_the_drill_draws_the_incident(rehearsal):
    investigation = rehearsal["investigation"]
    assert investigation.error is None, investigation.error
    assert "hourly reports" in investigation.text
    assert Path(rehearsal["path"] / "nb04" / "tables").is_dir()

"""Issue 14's red-team findings 2-11, each reproduced and shown fixed.

Real HTTP to the test endpoint server (tests/helpers/runtime_server.py), the real entrypoint
(in-process where a container adds nothing, as the Dockerfile declares it where signals and
process trees matter), the real papermill run of the report notebook.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from diversity_monitor import cli, storage
from diversity_monitor.aws import container_paths
from diversity_monitor.conventions import MAX_CATALOG_BYTES
from diversity_monitor.job import contract, entrypoint, report
from diversity_monitor.job.baseline import load_json_document
from diversity_monitor.job.contract import ContractError, ReplaySettings
from diversity_monitor.job.inputs import InputError, Session, invoke_body_limit, load_catalog, load_validation_set
from diversity_monitor.job.model_monitor_files import BaselineError, constraint_bounds
from diversity_monitor.job.replay import EndpointReplayer
from diversity_monitor.local import images
from diversity_monitor.measures.response_path import DEFAULT_RESPONSE_PATH
from helpers.container import MONITOR_IMAGE, audit_environment, model_monitor_env
from helpers.job_env import ARGS, BUCKET, catalog_csv
from helpers.runtime_server import TRICKLE_INTERVAL, catalog_rows

STOP_WITHIN = 10  # seconds: the bound for a stopped run to be gone, every process of it


def _settings(**changes) -> ReplaySettings:
    base = ReplaySettings("unused", "unused", 10, DEFAULT_RESPONSE_PATH, 4, None, 5.0, 1)
    return ReplaySettings(**{**base.__dict__, **changes})


# --- 3. a per-call wall-clock deadline -------------------------------------------------------------

def test_a_trickling_endpoint_is_timed_out_per_call_and_retried(runtime, fresh_runtime, aws_env, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", runtime.url)
    # Each byte comes well within the 1.5 s read timeout: only a deadline for the whole call ends it.
    assert TRICKLE_INTERVAL < 1.5
    sessions = [Session(f"s{i}", {"user_id": f"u{i}"}) for i in range(3)]
    started = time.monotonic()
    result = EndpointReplayer("trickle-recs", _settings(invoke_timeout=1.5, max_attempts=2),
                              "r", sleep=lambda _: None).replay(sessions, progress=False)
    elapsed = time.monotonic() - started
    assert result.succeeded == 0
    assert result.errors() == {"CallDeadlineExceeded": 3}
    assert all(outcome.attempts == 2 for outcome in result.outcomes)  # retried like any other timeout
    assert runtime.invocations == 6
    assert elapsed < 15, elapsed  # 3 sessions x 2 attempts x 1.5 s on 4 threads, not the trickle's minutes
    deadline = time.monotonic() + 5  # the server sees the connections closed and stops trickling
    while runtime.trickles_open and time.monotonic() < deadline:
        time.sleep(0.1)
    assert runtime.trickles_open == 0


def test_the_replay_budget_ends_a_slow_replay_as_failed_sessions(runtime, fresh_runtime, aws_env, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", runtime.url)
    sessions = [Session(f"s{i}", {"user_id": f"u{i}"}) for i in range(8)]
    settings = _settings(invoke_timeout=30, concurrency=2, budget=2.0)
    result = EndpointReplayer("trickle-recs", settings, "r").replay(sessions, progress=False)
    assert result.succeeded == 0
    errors = result.errors()
    assert set(errors) == {"CallDeadlineExceeded", "ReplayBudgetSpent"}, errors
    assert errors["CallDeadlineExceeded"] == 2 and errors["ReplayBudgetSpent"] == 6
    assert result.wall_seconds < 10, result.wall_seconds


# --- 8. requests sent as their exact bytes, checked against the 6 MB limit ------------------------

def test_requests_are_sent_as_the_exact_bytes_of_the_file(runtime, fresh_runtime, aws_env, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", runtime.url)
    request = '{"user_id": "u1",  "k": 10, "n": 123456789012345678901234567890, "f": 1.10, "x": 1, "x": 2}'
    validation = tmp_path / "sessions.jsonl"
    validation.write_text(f'{{"session_id": "s1", "request": {request}}}\n', encoding="utf-8")
    sessions = load_validation_set(str(validation))
    result = EndpointReplayer("healthy-recs", _settings(), "r").replay(sessions, progress=False)
    assert result.succeeded == 1, result.errors()
    assert runtime.bodies == [request.encode()]  # digits, spacing, both "x" keys: as written


def test_a_request_over_invoke_endpoints_body_limit_is_refused_at_load(tmp_path):
    limit = invoke_body_limit()
    assert limit == 6 * 1024 * 1024  # the service model's BodyBlob max; AWS documents 6 MB
    validation = tmp_path / "sessions.jsonl"
    big = json.dumps({"user_id": "u", "history": ["a" * (limit - 30)]})
    validation.write_text(f'{{"session_id": "ok", "request": {{}}}}\n{{"session_id": "big", "request": {big}}}\n')
    with pytest.raises(InputError, match=r"line 2: the request is 6,291,4\d\d bytes, over InvokeEndpoint's "
                                         r"6,291,456-byte body limit"):
        load_validation_set(str(validation))


def test_a_line_naming_request_twice_is_refused(tmp_path):
    validation = tmp_path / "sessions.jsonl"
    validation.write_text('{"session_id": "a", "request": {"u": 1}, "request": {"u": 2}}\n')
    with pytest.raises(InputError, match="line 1: 'request' given twice"):
        load_validation_set(str(validation))


# --- 4. size caps with named errors -----------------------------------------------------------------

def test_an_endless_catalog_is_refused_by_name_not_read_whole():
    # /dev/zero stands in for a wrong key on a huge object: it grew to 23 GB before the fix.
    before = psutil.Process().memory_info().rss
    with pytest.raises(InputError, match=r"catalog /dev/zero is larger than 268,435,456 bytes"):
        load_catalog("/dev/zero")
    assert psutil.Process().memory_info().rss - before < 2 * MAX_CATALOG_BYTES


def test_size_caps_on_s3_inputs_and_baseline_documents(aws_env, tmp_path):
    import boto3

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="caps", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_object(Bucket="caps", Key="big.json", Body=b"{" + b" " * 100 + b"}")
    with pytest.raises(storage.TooLarge, match=r"s3://caps/big.json is larger than 50 bytes"):
        storage.read_bytes("s3://caps/big.json", limit=50)
    assert storage.read_bytes("s3://caps/big.json", limit=500) == b"{" + b" " * 100 + b"}"
    s3.put_object(Bucket="caps", Key="empty", Body=b"")
    assert storage.read_bytes("s3://caps/empty", limit=10) == b""
    huge = tmp_path / "constraints.json"
    with open(huge, "wb") as handle:
        handle.truncate(17 * 1024 * 1024)  # sparse: 17 MiB of nothing, past the 16 MiB document cap
    with pytest.raises(BaselineError, match="baseline_constraints: .* is larger than 16,777,216 bytes"):
        load_json_document(huge, "baseline_constraints")


def test_an_endless_capture_line_is_refused_by_name(tmp_path):
    from diversity_monitor.capture.source import CaptureSourceError, open_lines

    capture = tmp_path / "capture.jsonl"
    with open(capture, "wb") as handle:
        handle.write(b'{"ok": 1}\n')
        handle.truncate(40 * 1024 * 1024)  # a 40 MiB "line" of zero bytes after the first
    with pytest.raises(CaptureSourceError, match=r"capture.jsonl line 2 is longer than 33,554,432 bytes"):
        with open_lines(str(capture)) as lines:
            for _ in lines:
                pass


# --- 5. duplicate constraints and out-of-range bounds refused at load, every error at once ----------

GOOD_CONSTRAINTS = {"version": 0, "features": [
    {"name": "top10_category_diversity", "diversity_constraints": {"mean_lower_bound": 5.8, "p5_lower_bound": 5}},
    {"name": "top10_max_slot_concentration", "upper_bound": 0.42}], "diversity_monitor": {"k": 10}}


def test_a_feature_named_twice_is_refused_not_first_wins():
    loose = {"name": "top10_category_diversity", "diversity_constraints": {"mean_lower_bound": 0, "p5_lower_bound": 0}}
    doubled = {**GOOD_CONSTRAINTS, "features": [loose, *GOOD_CONSTRAINTS["features"]]}
    with pytest.raises(BaselineError, match=r"feature 'top10_category_diversity' is named 2 times \(features\[0\], "
                                            r"features\[1\]\)"):
        constraint_bounds(doubled, 10, "constraints.json")


def test_out_of_range_bounds_are_refused_with_every_error_at_once():
    bad = {**GOOD_CONSTRAINTS, "features": [
        {"name": "top10_category_diversity", "diversity_constraints": {"mean_lower_bound": 99, "p5_lower_bound": -1}},
        {"name": "top10_max_slot_concentration", "upper_bound": 1.5}]}
    with pytest.raises(BaselineError) as raised:
        constraint_bounds(bad, 10, "constraints.json")
    text = str(raised.value)
    assert text.startswith("constraints.json: 3 problems:"), text
    assert "mean_lower_bound must be between 0 and k=10, got 99" in text
    assert "p5_lower_bound must be between 0 and k=10, got -1" in text
    assert "upper_bound must be a share between 0 and 1, got 1.5" in text
    assert constraint_bounds(GOOD_CONSTRAINTS, 10).mean_lower_bound == 5.8


# --- 6. outputs created exclusively, never through a link -------------------------------------------

def test_a_dangling_symlink_in_the_output_folder_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(container_paths.ML_ROOT_ENV, str(tmp_path))
    output = tmp_path / "out"
    output.mkdir()
    outside = tmp_path / "outside.json"
    (output / "statistics.json").symlink_to(outside)  # points nowhere yet
    inputs = tmp_path / "sessions.jsonl"
    inputs.write_text('{"session_id": "a", "request": {}}\n')
    catalog = tmp_path / "catalog.csv"
    catalog.write_text("article_id,category\na1,news\n")
    code = entrypoint.run_job(["--validation-set", str(inputs), "--catalog", str(catalog)],
                              {"sagemaker_endpoint_name": "healthy-recs", "output_path": str(output)})
    assert code == 1
    message = (tmp_path / "output/message").read_text()
    assert message.startswith("Failed: writing the report: JobFailed: ") and "statistics.json" in message, message
    assert not outside.exists()
    assert {path.name for path in output.iterdir()} == {"statistics.json"}


def test_exclusive_writes_never_follow_a_link(tmp_path):
    target = tmp_path / "target"
    link = tmp_path / "parameters.json"
    link.symlink_to(target)
    with pytest.raises(storage.StorageError, match="already exists \\(a symbolic link\\)"):
        storage.create_exclusively(link, b"{}")
    with pytest.raises(FileExistsError):
        storage.write_file_atomically(link, b"{}", exclusive=True)
    assert not target.exists() and link.is_symlink()
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".")]  # no temporary left


# --- 9. every CLI numeric option range-checked ------------------------------------------------------

def test_every_numeric_option_is_range_checked():
    """A plain `type=int`/`type=float` option accepts any size: each one goes through
    `cli.whole_option`/`cli.number_option` (walks every registered command and subcommand)."""
    import argparse

    def unchecked(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from unchecked(sub, f"{path} {name}")
            elif action.type in (int, float):
                yield f"{path} {'/'.join(action.option_strings) or action.dest}"

    found = [option for name in cli.COMMANDS for option in unchecked(cli.build_parser([name]), "diversity-monitor")]
    assert found == []


@pytest.mark.parametrize("argv, expected", [
    (["capture-stats", "s3://b/p", "--catalog", "c.csv", "--top-k", "1000000000"], "--top-k must be between 1 and 1000"),
    (["capture-stats", "s3://b/p", "--catalog", "c.csv", "--k", "1000000000"], "--top-k must be between 1 and 1000"),
    (["drill", "--port", "70000"], "--port must be between 0 and 65535"),
    (["capture-stats", "s3://b/p", "--catalog", "c.csv", "--workers", "0"], "--workers must be between 1 and"),
    (["capture-stats", "s3://b/p", "--catalog", "c.csv", "--max-locations", "-1"], "--max-locations must be between"),
    (["alarm-backtest", "--evaluation-periods", "0"], "--evaluation-periods must be between 1 and"),
    (["alarm-backtest", "--threshold", "nan"], "--threshold must be a finite number"),
    (["baseline-gate", "--min-diversity", "-3"], "--min-diversity must be between 0 and"),
    (["demo", "--sessions", "100000000"], "--sessions must be between 1 and"),
    (["local", "up", "--port", "70000"], "--port must be between 0 and 65535"),
    (["recommender", "generate", "--articles", "0"], "--articles must be between 1 and"),
])
def test_numeric_options_out_of_range_are_clear_errors(argv, expected, capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main(argv)
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert expected in err, err
    assert "Traceback" not in err and "MemoryError" not in err


# --- 11. ExitMessage: the stage and the error class, no URIs or payloads ----------------------------

def test_the_exit_message_keeps_stage_and_class_and_leaves_uris_to_the_log(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(container_paths.ML_ROOT_ENV, str(tmp_path))
    code = entrypoint.run_job(["--validation-set", "s3://secret-bucket/team/sessions.jsonl", "--catalog", "c.csv"],
                              {"sagemaker_endpoint_name": "healthy-recs", "output_path": str(tmp_path / "out"),
                               "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9"})
    assert code == 1
    message = (tmp_path / "output/message").read_text()
    assert message.startswith("Failed: bad input: InputError: validation set cannot read "), message
    assert "secret-bucket" not in message and "s3://" not in message
    assert "s3://secret-bucket/team/sessions.jsonl" in capsys.readouterr().err  # the job log has it


def test_an_unforeseen_error_says_stage_and_class_only(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(container_paths.ML_ROOT_ENV, str(tmp_path))
    inputs = tmp_path / "sessions.jsonl"
    inputs.write_text('{"session_id": "a", "request": {}}\n')

    def unforeseen(context):
        raise LookupError("endpoint said: {'token': 'abc'} at https://internal.example/x")

    monkeypatch.setattr(entrypoint, "preflight", unforeseen)
    entrypoint.run_job(["--validation-set", str(inputs), "--catalog", str(inputs)],
                       {"sagemaker_endpoint_name": "healthy-recs", "output_path": str(tmp_path / "out")})
    message = (tmp_path / "output/message").read_text()
    assert message == "Failed: bad input: LookupError (details in the job log)"
    assert "token" in capsys.readouterr().err


# --- 2. the report timeout is derived so it fires before the platform's stop -------------------------

def test_the_report_timeout_default_fires_before_max_runtime(tmp_path, monkeypatch):
    monkeypatch.setenv(container_paths.ML_ROOT_ENV, str(tmp_path))
    base = ["--validation-set", "v", "--catalog", "c"]
    env = {"sagemaker_endpoint_name": "healthy-recs"}
    no_config = contract.load_context(base, env)
    assert no_config.report_timeout == 3600 - contract.RUN_RESERVE_SECONDS
    config = tmp_path / "config/processingjobconfig.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"StoppingCondition": {"MaxRuntimeInSeconds": 1800}}))
    derived = contract.load_context(base, env)
    assert derived.report_timeout == 1800 - contract.RUN_RESERVE_SECONDS < 1800
    assert derived.replay.budget == pytest.approx(derived.report_timeout * contract.REPLAY_BUDGET_SHARE)
    with pytest.raises(ContractError, match="--report-timeout 1800 cannot fire before the platform stops the job"):
        contract.load_context([*base, "--report-timeout", "1800"], env)
    with pytest.raises(ContractError, match="--replay-budget 900 is not below the report timeout"):
        contract.load_context([*base, "--report-timeout", "900", "--replay-budget", "900"], env)


# --- 7. parameters reach the kernel intact; no 0-byte report -----------------------------------------

def test_an_empty_partial_notebook_is_not_kept_as_the_report(tmp_path):
    partial = report.in_progress_notebook(tmp_path)
    partial.write_bytes(b"")
    report._keep_notebook(partial, tmp_path)
    assert not partial.exists() and not (tmp_path / "report.ipynb").exists()


# --- the container: signals, emoji paths (real papermill runs) ----------------------------------------

def _job_processes(job_root: Path) -> list[psutil.Process]:
    """Every live process of this job: its environment names the job folder (kernels and workers inherit it)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            if process.environ().get(container_paths.ML_ROOT_ENV) == str(job_root):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _launch(job_root: Path, env: dict[str, str], arguments: list[str]) -> subprocess.Popen:
    test_aws = {key: value for key, value in os.environ.items() if key.startswith("AWS_")}
    log = job_root.parent / f"{job_root.name}.log"
    return images.launch(images.resolve(MONITOR_IMAGE), job_root,
                         {**test_aws, **env, **audit_environment(job_root.parent / "audit.jsonl")}, arguments,
                         log_path=log)


def _stop_and_check(process: subprocess.Popen, job_root: Path, sig: signal.Signals, *, measured: bool = False) -> str:
    tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    assert len(tree) >= 3, tree  # dumb-init, the entrypoint, papermill (and its kernel)
    stopped_at = time.monotonic()
    os.killpg(process.pid, sig)  # what the platform does to the container (dumb-init forwards it)
    process.wait(timeout=STOP_WITHIN)
    deadline = stopped_at + STOP_WITHIN
    while _job_processes(job_root) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _job_processes(job_root), [p.cmdline() for p in _job_processes(job_root)]
    print(f"{sig.name}: every process of the job gone {time.monotonic() - stopped_at:.2f} s after the signal")
    output = job_root / "processing/output"
    written = {path: path.stat().st_mtime_ns for path in output.rglob("*")}
    time.sleep(2)  # nothing is written afterwards
    assert {path: path.stat().st_mtime_ns for path in output.rglob("*")} == written
    assert (output / "statistics.json").exists() == measured  # written before the stop, or not at all
    assert not (output / "report.html").exists()  # nothing that looks like a finished report
    return (job_root / "output/message").read_text()


def _wait_for(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {seconds} s")
        time.sleep(0.05)


def test_sigterm_during_the_replay_stops_every_process_and_says_so(stack_env, runtime, fresh_runtime, tmp_path):
    job = tmp_path / "job"
    # The trickling endpoint keeps the replay busy; two worker processes join the tree.
    process = _launch(job, model_monitor_env("trickle-recs"),
                      ARGS[:-2] + ["--concurrency", "4", "--replay-processes", "2", "--invoke-timeout", "60"])
    try:
        _wait_for(lambda: runtime.trickles_open >= 2, 120, "the replay")
        message = _stop_and_check(process, job, signal.SIGTERM)
    finally:
        report.kill_tree(process.pid)
    assert message == "Failed: stopped by SIGTERM during report notebook (replay)", message
    assert (job / "processing/output/report.ipynb").stat().st_size > 0  # the partial notebook stays


def test_sigint_during_the_report_stops_every_process_and_says_so(stack_env, tmp_path):
    job = tmp_path / "job"
    process = _launch(job, model_monitor_env("healthy-recs"), ARGS)
    try:
        _wait_for(lambda: report.in_progress_notebook(job / "processing/output").exists(), 120, "the report start")
        message = _stop_and_check(process, job, signal.SIGINT)  # how Processing stops a container
    finally:
        report.kill_tree(process.pid)
    assert message.startswith("Failed: stopped by SIGINT during report notebook"), message


def test_sigterm_during_a_later_report_cell_stops_every_process_and_says_so(stack_env, tmp_path):
    # A test-only IPython startup file holds the slot-collapse cell (after the replay and the
    # measurement) for a minute and says so in a file: the stop lands inside that cell.
    startup = tmp_path / "ipython/profile_default/startup"
    startup.mkdir(parents=True)
    marker = tmp_path / "in-the-cell"
    (startup / "00-hold.py").write_text(
        "import time\n"
        "def _hold(info):\n"
        "    if 'slot_collapse_figure(' in (info.raw_cell or ''):\n"
        f"        open({str(marker)!r}, 'w').close()\n"
        "        time.sleep(60)\n"
        "get_ipython().events.register('pre_run_cell', _hold)\n"
    )
    job = tmp_path / "job"
    process = _launch(job, model_monitor_env("healthy-recs", IPYTHONDIR=str(tmp_path / "ipython")), ARGS)
    try:
        _wait_for(marker.exists, 180, "the slot-collapse cell")
        message = _stop_and_check(process, job, signal.SIGTERM, measured=True)
    finally:
        report.kill_tree(process.pid)
    assert message.startswith("Failed: stopped by SIGTERM during report notebook (cell "), message


def test_an_emoji_path_reaches_the_report_kernel_intact(stack_env, tmp_path):
    folder = tmp_path / "inputs 📈 ünï"
    folder.mkdir()
    validation = folder / "sessions 😀.jsonl"
    validation.write_text("\n".join(json.dumps({"session_id": f"s{i}", "request": {"user_id": f"u{i}", "k": 10}})
                                    for i in range(12)))
    catalog = folder / "catalog 🗞.csv"
    catalog.write_bytes(catalog_csv(catalog_rows()))
    job = tmp_path / "job"
    process = _launch(job, model_monitor_env("healthy-recs"),
                      ["--validation-set", str(validation), "--catalog", str(catalog)])
    assert process.wait(timeout=300) == 0, (job.parent / "job.log").read_text()
    output = job / "processing/output"
    parameters = json.loads((output / "parameters.json").read_text(encoding="utf-8"))
    assert parameters["context"]["replay"]["validation_set"] == str(validation)
    notebook = (output / "report.ipynb").read_text(encoding="utf-8")
    assert "sessions 😀.jsonl" in notebook  # injected as a Python literal, not mangled by YAML
    assert json.loads((output / "statistics.json").read_text())["diversity_monitor"]["sessions_succeeded"] == 12


def test_the_local_stand_in_stops_a_container_with_sigint_then_sigkill():
    from diversity_monitor.local import processing

    assert processing.STOP_SIGNAL == signal.SIGINT  # [PROC]: "SIGINT and SIGKILL signals"
    child = subprocess.Popen([sys.executable, "-c", "import signal, sys, time\n"
                              "signal.signal(signal.SIGINT, lambda *_: sys.exit(7))\nprint('ready', flush=True)\n"
                              "time.sleep(60)"], start_new_session=True, stdout=subprocess.PIPE)
    assert child.stdout.readline().strip() == b"ready"
    from diversity_monitor.local.platform import stop_process

    stop_process(child, grace=5, first=processing.STOP_SIGNAL)
    assert child.returncode == 7  # it got SIGINT first and could say so


# --- 10. the no-data loop -----------------------------------------------------------------------------

def test_the_kits_schedules_analyse_more_than_their_period_and_judge_live_traffic_over_one():
    from datetime import datetime, timedelta, timezone

    from diversity_monitor.aws.schedule_expression import analysis_window
    from diversity_monitor.job.analysis import live_start
    from diversity_monitor.setup.schedule import MonitorSpec, schedule_request

    spec = MonitorSpec("recs", "recs-hourly", MONITOR_IMAGE, "arn:aws:iam::123456789012:role/r", "s3://b/v.jsonl",
                       "s3://b/c.csv", "s3://b/reports")
    config = schedule_request(spec)["MonitoringScheduleConfig"]
    scheduled = datetime(2027, 10, 31, 9, tzinfo=timezone.utc)
    window = analysis_window(config["ScheduleConfig"], scheduled)
    assert (window.start, window.end) == (scheduled - timedelta(hours=3), scheduled)
    arguments = config["MonitoringJobDefinition"]["MonitoringAppSpecification"]["ContainerArguments"]
    assert arguments[arguments.index("--live-window") + 1] == "3600"
    context = contract.load_context(["--validation-set", "v", "--catalog", "c", "--live-window", "3600"],
                                    {"sagemaker_endpoint_name": "recs", "start_time": "2027-10-31T06:00:00Z",
                                     "end_time": "2027-10-31T09:00:00Z"})
    assert live_start(context) == datetime(2027, 10, 31, 8, tzinfo=timezone.utc)  # live figures: the last hour
    daily = MonitorSpec(**{**spec.__dict__, "schedule_expression": "cron(0 5 ? * * *)"})
    assert "DataAnalysisStartTime" not in schedule_request(daily)["MonitoringScheduleConfig"]["ScheduleConfig"]


def _capture_line(inference_id: str, hour: int) -> str:
    return json.dumps({"captureData": {}, "eventMetadata": {"eventId": "e", "inferenceId": inference_id,
                                                            "inferenceTime": f"2027-10-31T{hour:02d}:10:00Z"},
                       "eventVersion": "0"})


@pytest.mark.parametrize("traffic, kind", [("replay", "quiet"), ("live", "lost-capture")])
def test_the_failed_run_runbook_tells_a_quiet_endpoint_from_one_that_lost_its_capture(tmp_path, traffic, kind):
    from datetime import datetime, timezone

    from diversity_monitor.oncall import failed_run

    root = tmp_path / "capture/recs/AllTraffic"
    for hour in (2, 3, 4):  # capture until 05:00, then nothing (the failed run's window is 06:00-09:00)
        folder = root / f"2027/10/31/{hour:02d}"
        folder.mkdir(parents=True)
        ids = ["diversity-replay-20271031T0400-s1"] + (["user-request-1"] if traffic == "live" else [])
        (folder / "10-00-000-a.jsonl").write_text("\n".join(_capture_line(i, hour) for i in ids) + "\n")
    end = datetime(2027, 10, 31, 9, tzinfo=timezone.utc)
    history = failed_run.capture_history([str(root)], end)
    assert [files for _, files, _, _ in history.hours] == [1, 1, 1]
    verdict, advice = failed_run.no_data_verdict(history, True, end)
    assert verdict == kind
    if kind == "quiet":
        assert "Restart the loop with one replay" in advice and "diversity-monitor replay" in advice
    else:
        assert "live users' requests were captured until 2027-10-31T04:00:00Z" in advice
    assert failed_run.no_data_verdict(history, False, end)[0] == "capture-off"


def test_the_failed_run_runbook_no_longer_calls_a_no_data_hour_harmless():
    from diversity_monitor.oncall import failed_run

    cause = failed_run.CAUSES_BY_KEY["no_data"]
    assert "harmless" not in cause.fix.lower().replace("not harmless", "")
    assert "no replay runs" in cause.fix
    stopped = next(c for c in failed_run.CAUSES if c.key == "stopped")
    assert failed_run.re.search(stopped.pattern, "Failed: stopped by SIGINT during report notebook (replay)")


_ = (BUCKET,)  # the bucket the stack_env fixture stages the inputs in

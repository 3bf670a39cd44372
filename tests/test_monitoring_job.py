"""The monitoring container end to end: the Dockerfile's ENTRYPOINT under the contract.

A real HTTP endpoint (tests/helpers/runtime_server.py, speaking SageMaker Runtime's protocol), inputs in
an S3 served by moto, papermill executing the real report notebook, outputs read back the way
the SageMaker SDK reads them. Every botocore call of every run is audited against the service
model (tests/botocore_audit). The last part drives replay, serving and the exit contract
in-process where a container adds nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import psutil
import pytest

from diversity_monitor.aws import container_paths, service_schema
from diversity_monitor.job import entrypoint, report
from diversity_monitor.job.contract import PLATFORM_ENV, ReplaySettings
from diversity_monitor.job.inputs import InputError, Session
from diversity_monitor.job.measure import measure
from diversity_monitor.job.model_monitor_files import statistics_document
from diversity_monitor.job.replay import EndpointReplayer, inference_id, inference_ids
from diversity_monitor.local import images
from diversity_monitor.local.platform import free_port
from diversity_monitor.measures.response_path import DEFAULT_RESPONSE_PATH
from helpers.container import (
    MONITOR_IMAGE,
    audit_environment,
    model_monitor_env,
    read_audit,
    run_monitor_container,
    upload_outputs,
)
from helpers.job_env import ARGS, BUCKET, HEALTHY_CONFIG, HEALTHY_MODEL, ROLE, SESSIONS, create_endpoint
from helpers.permissions import assert_role_permits
from helpers.runtime_server import RuntimeServer, catalog_rows

# Each test sees only its own calls (the flaky and throttled endpoints count calls per user).
pytestmark = pytest.mark.usefixtures("fresh_runtime")

REPORT_FILES = {"statistics.json", "constraint_violations.json", "report.ipynb", "report.html", "parameters.json"}
COMPLETED = "Completed: Job completed successfully with no violations."
ONE_VIOLATION = "CompletedWithViolations: Job completed successfully with 1 violations."


def sdk_read(uri_prefix: str):
    """Read the reports exactly as the SageMaker SDK does (from S3)."""
    from sagemaker.core.helper.session_helper import Session as SdkSession
    from sagemaker.core.model_monitor import ConstraintViolations, Statistics

    session = SdkSession(boto_session=boto3.Session())
    statistics = Statistics.from_s3_uri(f"{uri_prefix}/statistics.json", sagemaker_session=session)
    violations = ConstraintViolations.from_s3_uri(f"{uri_prefix}/constraint_violations.json", sagemaker_session=session)
    return statistics.body_dict, violations.body_dict


def assert_no_invalid_call(audit: list[dict]) -> None:
    invalid = [record for record in audit if record["invalid"]]
    assert not invalid, invalid


def assert_every_call_valid(audit: list[dict], expected_operations: set[str], role: str = "job") -> None:
    """Valid against the service model, and allowed by `role`'s IAM policy (setup/permissions.py)."""
    assert audit, "no botocore calls were audited"
    assert_no_invalid_call(audit)
    assert expected_operations <= {record["operation"] for record in audit}
    assert_role_permits(role, audit)


def completed_run(run, message: str, s3_prefix: str, operations: set[str] = frozenset({"InvokeEndpoint"})):
    """The common ending of a run that completed: message, every report file, SDK-readable, valid calls."""
    assert run.returncode == 0, run.log
    assert run.message == message
    assert REPORT_FILES <= {p.name for p in run.output.iterdir()}
    assert_every_call_valid(run.audit, {"GetObject", "DescribeEndpoint", *operations})
    return sdk_read(upload_outputs(run, BUCKET, s3_prefix))


# --- the image --------------------------------------------------------------------------------

def test_entrypoint_is_what_the_dockerfile_declares():
    spec = images.resolve(MONITOR_IMAGE)
    assert spec.command() == ["dumb-init", "--", "diversity-monitor", "run"]
    assert spec.command(["--top-k", "5"])[-2:] == ["--top-k", "5"]


def test_hadolint_passes_on_every_dockerfile():
    for dockerfile in ("Dockerfile", "Dockerfile.recommender"):
        hadolint = str(Path(sys.executable).parent / "hadolint")
        result = subprocess.run([hadolint, dockerfile], capture_output=True, text=True, cwd=images.PROJECT_ROOT)
        assert result.returncode == 0, result.stdout + result.stderr


# --- runs that complete -------------------------------------------------------------------------

def test_healthy_endpoint_completes_with_sdk_readable_reports(stack_env, tmp_path, runtime):
    # A user Environment entry and a proxy setting with a password: neither may reach the reports.
    env = model_monitor_env("healthy-recs", team_setting="internal-only",
                            http_proxy="http://monitor:hunter2@proxy.internal:3128", no_proxy="127.0.0.1,localhost")
    run = run_monitor_container(tmp_path / "job", env, ARGS)
    statistics, violations = completed_run(run, COMPLETED, "reports/healthy", {"DescribeEndpointConfig"})
    block = statistics["diversity_monitor"]
    assert block["mean"] == 7 and block["p5"] == 7 and block["sessions_succeeded"] == SESSIONS
    assert violations == {"violations": []}
    names = {line["MetricName"] for line in run.metric_lines}
    assert {"top10_category_diversity_mean", "top10_category_diversity_min", "top10_category_diversity_p5",
            "replay_success_rate", "top10_max_slot_concentration", "top10_distinct_articles"} <= names
    for line in run.metric_lines:
        assert line["Dimensions"] == [{"Name": "Endpoint", "Value": "healthy-recs"},
                                      {"Name": "MonitoringSchedule", "Value": "diversity-hourly"}]
        assert line["Timestamp"].endswith("Z") and isinstance(line["Value"], float)
    html = (run.output / "report.html").read_text()
    assert "<title>healthy-recs 2027-10-31 09:00 UTC: HEALTHY</title>" in html  # pictures: test_report.py
    # Which config served the replay, for the runbook.
    serving = block["serving"]
    assert serving["observed_at"].endswith("Z")
    assert {**serving, "observed_at": None} == {
        "endpoint_config": HEALTHY_CONFIG, "models": {"AllTraffic": HEALTHY_MODEL}, "observed_at": None,
        "changed_during_replay": False, "error": None, "capture_sampling_percentage": None}  # no capture configured
    assert HEALTHY_CONFIG in html
    # Replay traffic is marked, as the endpoint received it during this run.
    assert sorted(runtime.inference_ids) == [f"diversity-replay-20271031T0900-s{i:03d}" for i in range(SESSIONS)]
    # The run records the documented platform variables and its arguments, nothing else.
    context = run.json("parameters.json")["context"]
    assert set(context["platform_environment"]) <= set(PLATFORM_ENV)
    assert context["platform_environment"]["sagemaker_endpoint_name"] == "healthy-recs"
    assert context["container_arguments"] == ARGS
    for name in ("parameters.json", "report.ipynb", "report.html"):
        text = (run.output / name).read_text()
        assert "hunter2" not in text and "internal-only" not in text and "team_setting" not in text


def test_collapsed_endpoint_completes_with_violations(stack_env, tmp_path):
    run = run_monitor_container(tmp_path / "job", model_monitor_env("collapsed-recs"), ARGS + ["--min-diversity", "4"])
    statistics, violations = completed_run(
        run, "CompletedWithViolations: Job completed successfully with 4 violations.", "reports/collapsed")
    assert statistics["diversity_monitor"]["mean"] == 2
    assert statistics["diversity_monitor"]["max_slot_concentration"] == 1.0
    # Without a baseline: the floor, and the absolute limits on sameness (everyone got the same list).
    assert violations["violations"][0] == {
        "feature_name": "top10_category_diversity", "constraint_check_type": "baseline_drift_check",
        "description": "mean categories per top-10 2.00 is below the floor 4 (--min-diversity)"}
    assert [(v["feature_name"], v["description"].split("(")[-1]) for v in violations["violations"][1:]] == [
        ("top10_max_slot_concentration", "limit 60%): recommendations are freezing"),
        ("top10_list_overlap", "limit 50%): everyone is getting the same stories"),
        ("top10_top_list_share", "limit 20%): the ranking is not personal"),
    ]
    values = {line["MetricName"]: line["Value"] for line in run.metric_lines}
    assert values["top10_category_diversity_mean"] == 2.0
    # No endpoint of that name on the control plane: recorded, and the run goes on.
    serving = statistics["diversity_monitor"]["serving"]
    assert serving["endpoint_config"] is None and serving["error"].startswith("before the replay: ValidationException")


def test_retries_hide_a_flaky_model_and_use_target_variant(stack_env, tmp_path, runtime):
    run = run_monitor_container(tmp_path / "job", model_monitor_env("flaky-recs"), ARGS + ["--target-variant", "Canary"])
    statistics, violations = completed_run(run, COMPLETED, "reports/flaky")
    assert statistics["diversity_monitor"]["sessions_succeeded"] == SESSIONS and violations == {"violations": []}
    assert set(runtime.target_variants) == {"Canary"}
    invokes = [r for r in run.audit if r["operation"] == "InvokeEndpoint"]
    assert len(invokes) == 2 * SESSIONS  # every session's first call failed once, then succeeded
    assert {r["params"].get("TargetVariant") for r in invokes} == {"Canary"}  # audited with the variant


@pytest.mark.parametrize("processes", ["1", "2"])
def test_throttling_is_retried(stack_env, tmp_path, runtime, processes):
    run = run_monitor_container(tmp_path / "job", model_monitor_env("throttled-recs"),
                                ARGS + ["--replay-processes", processes])
    statistics, _ = completed_run(run, COMPLETED, f"reports/throttled-{processes}")
    block = statistics["diversity_monitor"]
    assert block["sessions_succeeded"] == SESSIONS and block["replay_errors"] == {}
    assert sum(runtime.calls.values()) == 2 * SESSIONS  # each session: throttled once, then answered
    # Every call is audited against the service model, the worker processes' too.
    assert len([r for r in run.audit if r["operation"] == "InvokeEndpoint"]) == 2 * SESSIONS


def test_partial_outage_publishes_replay_health_not_diversity(stack_env, tmp_path):
    run = run_monitor_container(tmp_path / "job", model_monitor_env("broken-recs"), ARGS + ["--max-attempts", "2"])
    statistics, violations = completed_run(run, ONE_VIOLATION, "reports/broken")
    block = statistics["diversity_monitor"]
    assert block["sessions_succeeded"] == SESSIONS - 8 and not block["diversity_reliable"]
    assert block["replay_errors"] == {"ModelError": 8}
    (violation,) = violations["violations"]
    assert violation["feature_name"] == "replay_success_rate"
    assert violation["constraint_check_type"] == "completeness_check"
    values = {line["MetricName"]: line["Value"] for line in run.metric_lines}
    assert values["replay_success_rate"] == pytest.approx(0.8)
    assert not any(name.startswith("top10_") for name in values)


def test_endpoint_down_is_reported_as_an_outage(stack_env, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", f"http://127.0.0.1:{free_port()}")  # nothing listens
    run = run_monitor_container(tmp_path / "job", model_monitor_env("healthy-recs"),
                                ARGS + ["--max-attempts", "2", "--invoke-timeout", "2"])
    statistics, violations = completed_run(run, ONE_VIOLATION, "reports/down", operations=set())
    block = statistics["diversity_monitor"]
    assert block["sessions_succeeded"] == 0 and block["replay_errors"] == {"EndpointConnectionError": SESSIONS}
    assert [v["feature_name"] for v in violations["violations"]] == ["replay_success_rate"]
    values = {line["MetricName"]: line["Value"] for line in run.metric_lines}
    # No diversity figure; the hour's capture (none staged: nothing reached the endpoint) counted as 0 lists.
    assert values == {"replay_success_rate": 0.0, "replay_sessions_succeeded": 0.0, "live_lists": 0.0}


def test_publish_disabled_writes_no_metrics_file(stack_env, tmp_path):
    # "Disabled" is a non-empty string: truthy in Python, and still means "do not publish".
    run = run_monitor_container(tmp_path / "job", model_monitor_env("healthy-recs", publish_cloudwatch_metrics="Disabled"),
                                ARGS)
    completed_run(run, COMPLETED, "reports/disabled")
    assert not (run.job_root / "output/metrics").exists()
    assert "metrics not published" in run.log


def test_put_metric_data_mode_for_plain_processing_jobs(stack_env, tmp_path):
    env = model_monitor_env("healthy-recs", publish_cloudwatch_metrics=None)
    run = run_monitor_container(tmp_path / "job", env, ARGS + ["--put-metric-data", "--metrics-namespace", "Custom/Diversity"])
    completed_run(run, COMPLETED, "reports/put-metric-data", {"PutMetricData"})
    assert not run.metric_lines  # no file: we published ourselves
    stats = boto3.client("cloudwatch").get_metric_statistics(
        Namespace="Custom/Diversity", MetricName="top10_category_diversity_mean",
        Dimensions=[{"Name": "Endpoint", "Value": "healthy-recs"}, {"Name": "MonitoringSchedule", "Value": "diversity-hourly"}],
        StartTime="2020-01-01T00:00:00Z", EndTime="2100-01-01T00:00:00Z", Period=3600, Statistics=["Average"])
    assert [point["Average"] for point in stats["Datapoints"]] == [7.0]


def test_output_hour_folder_writes_model_monitors_layout(stack_env, tmp_path):
    # The 22:00-23:00 window's report lands in /23, as Model Monitor files it.
    env = model_monitor_env("healthy-recs", start_time="2027-10-31T22:00:00Z", end_time="2027-10-31T23:00:00Z",
                            metric_time="2027-10-31T23:00:00Z")
    run = run_monitor_container(tmp_path / "job", env, ARGS + ["--output-hour-folder"])
    assert run.returncode == 0, run.log
    assert run.message == COMPLETED
    written = {str(p.relative_to(run.output)) for p in run.output.rglob("*") if p.is_file()}
    assert written == {f"2027/10/31/23/{name}" for name in REPORT_FILES}
    assert_every_call_valid(run.audit, {"InvokeEndpoint"})
    sdk_read(upload_outputs(run, BUCKET, "reports/hour-folder") + "/2027/10/31/23")
    # The next run for the same hour finds the files and refuses to overwrite them.
    again = run_monitor_container(tmp_path / "job", env, ARGS + ["--output-hour-folder"])
    assert again.returncode == 1
    assert again.message.startswith("Failed: ") and "2027/10/31/23 already holds" in again.message


def test_baseline_command_then_run_against_it(stack_env, tmp_path):
    audit_file = tmp_path / "baseline-audit.jsonl"
    env = {**stack_env_vars(), **audit_environment(audit_file),
           "PATH": images.container_environment(images.resolve(MONITOR_IMAGE), tmp_path, {})["PATH"]}
    command = ["diversity-monitor", "baseline", "--endpoint-name", "healthy-recs", *ARGS,
               "--output", f"s3://{BUCKET}/baselines/v1"]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert "mean 7.00, min 7, p5 7" in result.stdout and f"served by endpoint config {HEALTHY_CONFIG}" in result.stdout
    again = subprocess.run(command, capture_output=True, text=True, env=env)
    assert again.returncode == 1 and "already exists" in again.stderr  # a baseline is never replaced silently
    assert "Traceback" not in again.stderr
    assert_every_call_valid(read_audit(audit_file), {"InvokeEndpoint", "GetObject", "PutObject", "HeadObject",
                                                     "DescribeEndpoint", "DescribeEndpointConfig"}, role="data-scientist")
    # The platform stages the baseline under /opt/ml/processing/baseline/...
    job = tmp_path / "job"
    s3 = boto3.client("s3")
    for name, folder in (("statistics.json", "stats"), ("constraints.json", "constraints")):
        target = job / "processing/baseline" / folder / name
        target.parent.mkdir(parents=True)
        s3.download_file(BUCKET, f"baselines/v1/{name}", str(target))
    baseline = json.loads((job / "processing/baseline/stats/statistics.json").read_text())
    assert baseline["diversity_monitor"]["serving"]["endpoint_config"] == HEALTHY_CONFIG
    env = model_monitor_env(
        "collapsed-recs",
        baseline_statistics="/opt/ml/processing/baseline/stats/statistics.json",
        baseline_constraints="/opt/ml/processing/baseline/constraints/constraints.json",
    )
    run = run_monitor_container(job, env, ARGS)
    assert run.returncode == 0, run.log
    assert run.message == "CompletedWithViolations: Job completed successfully with 6 violations."
    assert_every_call_valid(run.audit, {"InvokeEndpoint", "GetObject"})
    checks = [(v["feature_name"], v["description"]) for v in run.json("constraint_violations.json")["violations"]]
    slot_bound = min(0.6, baseline["diversity_monitor"]["max_slot_concentration"] + 0.3)
    assert checks[:5] == [
        ("top10_category_diversity", "mean categories per top-10 2.00 is below the floor 4 (--min-diversity)"),
        ("top10_max_slot_concentration", f"slot 1 shows article news-00 to 100% of sessions "
                                         f"({'baseline bound' if slot_bound < 0.6 else 'limit'} {slot_bound:.0%}): "
                                         "recommendations are freezing"),
        ("top10_list_overlap", checks[2][1]),
        ("top10_top_list_share", checks[3][1]),
        ("top10_category_diversity", "p5 categories per top-10 2 is below the baseline p5 7"),
    ]
    assert checks[5] == ("top10_category_diversity", "mean categories per top-10 2.00 is below the baseline bound 6")


def stack_env_vars() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k.startswith("AWS_") or k in ("HOME", "LANG")}


# --- runs that fail -----------------------------------------------------------------------------

def test_report_timeout_fails_the_run_and_keeps_the_partial_notebook(stack_env, tmp_path):
    # A test-only IPython startup file hangs the slot-collapse cell, past a 5 s report timeout.
    startup = tmp_path / "ipython/profile_default/startup"
    startup.mkdir(parents=True)
    (startup / "00-hang.py").write_text(
        "import time\n"
        "def _hang(info):\n"
        "    if 'slot_collapse_figure(' in (info.raw_cell or ''):\n"
        "        time.sleep(120)\n"
        "get_ipython().events.register('pre_run_cell', _hang)\n"
    )
    env = model_monitor_env("healthy-recs", IPYTHONDIR=str(tmp_path / "ipython"))
    run = run_monitor_container(tmp_path / "job", env, ARGS + ["--report-timeout", "5"])
    assert run.returncode == 1
    assert run.message.startswith("Failed: report notebook ("), run.message
    assert "CellTimeoutError" in run.message, run.message
    assert (run.output / "report.ipynb").exists() and (run.output / "report.html").exists()
    assert not run.metric_lines
    assert_no_invalid_call(run.audit)


def test_a_slow_endpoint_spends_the_replay_budget_and_the_run_reports_it(stack_env, tmp_path, monkeypatch):
    # Issue 14: a slow replay used to die on the report timeout; its budget (60% of the report timeout)
    # now ends it, and the run completes reporting the sessions it could not replay.
    slow = RuntimeServer(free_port(), latency_ms=3000).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", slow.url)
        args = ARGS[:-2] + ["--concurrency", "2", "--report-timeout", "40"]  # 40 x 3 s / 2 = 60 s > 24 s
        run = run_monitor_container(tmp_path / "job", model_monitor_env("healthy-recs"), args)
    finally:
        slow.stop()
    assert run.returncode == 0, run.log
    assert run.message == "CompletedWithViolations: Job completed successfully with 1 violations."
    custom = run.json("statistics.json")["diversity_monitor"]
    assert 0 < custom["sessions_succeeded"] < 40 and "ReplayBudgetSpent" in custom["replay_errors"], custom
    (violation,) = run.json("constraint_violations.json")["violations"]
    assert violation["constraint_check_type"] == "completeness_check"


def test_a_failing_report_cell_fails_the_run_and_keeps_the_partial_notebook(stack_env, tmp_path):
    # A broken image setting makes the histogram cell raise after the replay has been measured.
    run = run_monitor_container(tmp_path / "job", model_monitor_env("healthy-recs", MPLBACKEND="no_such_backend"), ARGS)
    assert run.returncode == 1, run.log
    assert run.message.startswith("Failed: report notebook "), run.message
    assert run.message.endswith("(papermill exit 1); the partial report.ipynb and the job log say more"), run.message
    assert "no_such_backend" in run.log and "no_such_backend" not in run.message  # the error's words: the log's
    assert (run.output / "report.ipynb").exists() and (run.output / "report.html").exists()
    assert not run.metric_lines
    assert_no_invalid_call(run.audit)


def test_a_dead_kernel_fails_the_run(stack_env, tmp_path):
    # No seam swaps the baked-in notebook, so IPython's own one is used: a startup file of a
    # test-only IPYTHONDIR makes the kernel exit hard as the replay cell starts.
    startup = tmp_path / "ipython/profile_default/startup"
    startup.mkdir(parents=True)
    (startup / "00-die.py").write_text(
        "import os\n"
        "def _die(info):\n"
        "    if 'run_monitoring(' in (info.raw_cell or ''):\n"
        "        os._exit(9)\n"
        "get_ipython().events.register('pre_run_cell', _die)\n"
    )
    run = run_monitor_container(tmp_path / "job", model_monitor_env("healthy-recs", IPYTHONDIR=str(tmp_path / "ipython")),
                                ARGS)
    assert run.returncode == 1, run.log
    assert run.message == "Failed: report notebook (replay): DeadKernelError (papermill exit 138); " \
                          "the partial report.ipynb and the job log say more"
    assert (run.output / "report.ipynb").exists()
    assert not (run.output / "statistics.json").exists() and not run.metric_lines
    assert_no_invalid_call(run.audit)


def test_put_metric_data_failure_is_a_named_failure(stack_env, tmp_path, runtime):
    # The test server answers every control-plane call with AccessDenied: a role without cloudwatch:PutMetricData.
    env = model_monitor_env("healthy-recs", publish_cloudwatch_metrics=None, AWS_ENDPOINT_URL_CLOUDWATCH=runtime.url)
    run = run_monitor_container(tmp_path / "job", env, ARGS + ["--put-metric-data"])
    assert run.returncode == 1, run.log
    assert run.message.startswith(
        "Failed: publishing metrics: MetricsError: PutMetricData to aws/sagemaker/Endpoints/data-metrics "
        "(request 1 of 1) failed: AccessDeniedException"), run.message
    assert "arn:aws" not in run.message and "arn:aws:sts::123456789012" in run.log  # the ARN: the log's
    assert REPORT_FILES <= {p.name for p in run.output.iterdir()}  # the report is kept for the on-call
    assert_every_call_valid(run.audit, {"PutMetricData"})


@pytest.mark.parametrize("existing", sorted(REPORT_FILES))
def test_a_run_never_overwrites_a_report_file(stack_env, tmp_path, existing):
    leftover = tmp_path / "job/processing/output" / existing
    leftover.parent.mkdir(parents=True)
    leftover.write_text("from an earlier run")
    run = run_monitor_container(tmp_path / "job", model_monitor_env("healthy-recs"), ARGS)
    assert run.returncode == 1
    assert run.message.startswith("Failed: ") and f"already holds {existing}" in run.message
    assert leftover.read_text() == "from an earlier run"
    assert {p.name for p in run.output.iterdir()} == {existing}
    assert_no_invalid_call(run.audit)


def _stage(job: Path, folder: str, name: str, document) -> None:
    target = job / "processing/baseline" / folder / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(document if isinstance(document, str) else json.dumps(document))


BASELINE_STATISTICS = {"version": 0, "dataset": {"item_count": 500}, "features": [], "diversity_monitor": {
    "k": 10, "mean": 6.8, "min": 4, "p5": 5, "max": 8, "histogram": [0, 0, 0, 0, 10, 40, 110, 220, 120, 0, 0],
    "max_slot_concentration": 0.12, "success_rate": 1.0, "sessions_attempted": 500, "sessions_succeeded": 500}}
BASELINE_CONSTRAINTS = {"version": 0, "features": [
    {"name": "top10_category_diversity", "diversity_constraints": {"mean_lower_bound": 5.8, "p5_lower_bound": 5}},
    {"name": "top10_max_slot_concentration", "upper_bound": 0.42}], "diversity_monitor": {"k": 10}}
STATS_ENV = {"baseline_statistics": "/opt/ml/processing/baseline/stats/statistics.json"}
BOTH_ENV = {**STATS_ENV, "baseline_constraints": "/opt/ml/processing/baseline/constraints/constraints.json"}
WRONG_TYPES = {**BASELINE_STATISTICS, "diversity_monitor": {**BASELINE_STATISTICS["diversity_monitor"], "mean": "6.8"}}
NO_MEAN_BOUND = {**BASELINE_CONSTRAINTS, "features": [
    {"name": "top10_category_diversity", "diversity_constraints": {"p5_lower_bound": 5}}, BASELINE_CONSTRAINTS["features"][1]]}
TOP5 = {**BASELINE_STATISTICS, "diversity_monitor": {**BASELINE_STATISTICS["diversity_monitor"], "k": 5,
                                                     "histogram": [0, 0, 10, 40, 300, 150], "mean": 3.7, "max": 5}}
LONG_SESSION = "x" * 80


@pytest.mark.parametrize("setup, arguments, env_overrides, expected", [
    ("bad-validation", [], {}, "validation set s3://recs-monitor/bad/sessions.jsonl line 2: not valid JSON"),
    ("empty-validation", [], {}, "has no sessions"),
    ("no-request", [], {}, "validation set s3://recs-monitor/bad/sessions.jsonl line 2: 'request' must be a JSON object"),
    ("id-collision", [], {}, f"sessions {LONG_SESSION!r} and "),
    ("bad-catalog", [], {}, "catalog s3://recs-monitor/bad/catalog.csv line 3: 'category' must be a non-empty string"),
    ("bad-catalog-jsonl", [], {}, "catalog s3://recs-monitor/bad/catalog.jsonl line 2: not valid JSON"),
    ("huge-csv-field", [], {}, "catalog s3://recs-monitor/bad/catalog.csv: not valid CSV after line 2 (field larger than"),
    (None, [], {"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"},
     "validation set cannot read s3://recs-monitor/validation/sessions.jsonl: EndpointConnectionError"),
    (None, ["--frobnicate"], {}, "unrecognized arguments: --frobnicate"),
    (None, ["--top", "3"], {}, "unrecognized arguments: --top 3"),
    (None, ["--help"], {}, "ContainerArguments: --help asks for the usage"),
    (None, ["--top-k", "ten"], {}, "--top-k must be a whole number, got 'ten'"),
    (None, ["--min-diversity", "-1"], {}, "--min-diversity must be between"),
    (None, ["--min-diversity", "11"], {}, "--min-diversity 11 is above --top-k 10"),
    (None, ["--response-path", "recs[[].id"], {}, "argument --response-path: response path 'recs[[].id' is not valid"),
    (None, ["--metrics-namespace", "Custom/X"], {}, "--metrics-namespace is only used with --put-metric-data"),
    (None, ["--output-hour-folder"], {"end_time": None, "start_time": None}, "--output-hour-folder writes under"),
    (None, [], {"start_time": "yesterday"}, "start_time='yesterday' is not an ISO-8601 time"),
    (None, [], {"publish_cloudwatch_metrics": "yes"}, "expected Enabled or Disabled"),
    (None, [], {"sagemaker_monitoring_schedule_name": None}, "no monitoring schedule name"),
    (None, ["--put-metric-data"], {}, "would be published twice"),
    (None, [], {"sagemaker_endpoint_name": None}, "no endpoint to monitor"),
    (None, [], {"sagemaker_endpoint_name": "recs_prod"}, "'recs_prod' is not valid for InvokeEndpoint's EndpointName"),
    ("bad-baseline", [], BOTH_ENV, "is not valid JSON"),
    ("baseline-wrong-types", [], BOTH_ENV, "diversity_monitor.mean must be a number between 0 and k=10, got '6.8'"),
    ("constraints-no-mean-bound", [], BOTH_ENV, "top10_category_diversity.diversity_constraints.mean_lower_bound is "
                                                "missing"),
    ("baseline-top5", [], BOTH_ENV, "the baseline was measured with k=5 (top-5 lists) but this run uses --top-k 10"),
    ("baseline-statistics-only", [], STATS_ENV, "baseline_statistics is set but baseline_constraints is not"),
    (None, [], {"baseline_constraints": "/opt/ml/processing/baseline/constraints/missing.json"}, "does not exist"),
])
def test_bad_input_fails_the_run_with_a_named_error(stack_env, tmp_path, setup, arguments, env_overrides, expected):
    s3 = boto3.client("s3")
    args = list(ARGS)
    job = tmp_path / "job"
    if setup in ("bad-validation", "empty-validation", "no-request", "id-collision"):
        body = {
            "bad-validation": b'{"session_id": "a", "request": {}}\n{"session_id": "b", ',
            "empty-validation": b"\n\n",
            "no-request": b'{"session_id": "a", "request": {}}\n{"session_id": "b", "reqest": {}}\n',
            # The second id is the first one's derived InferenceId suffix: both would be sent as the same id.
            "id-collision": "\n".join(json.dumps({"session_id": s, "request": {}}) for s in (
                LONG_SESSION, hashlib.sha256(LONG_SESSION.encode()).hexdigest()[:16])).encode(),
        }[setup]
        s3.put_object(Bucket=BUCKET, Key="bad/sessions.jsonl", Body=body)
        args[1] = f"s3://{BUCKET}/bad/sessions.jsonl"
    elif setup == "bad-catalog":
        s3.put_object(Bucket=BUCKET, Key="bad/catalog.csv", Body=b"article_id,category\na1,news\na2,\n")
        args[3] = f"s3://{BUCKET}/bad/catalog.csv"
    elif setup == "bad-catalog-jsonl":
        s3.put_object(Bucket=BUCKET, Key="bad/catalog.jsonl",
                      Body=b'{"article_id": "a1", "category": "news"}\n{"article_id": "a2", "category": \n')
        args[3] = f"s3://{BUCKET}/bad/catalog.jsonl"
    elif setup == "huge-csv-field":
        s3.put_object(Bucket=BUCKET, Key="bad/catalog.csv",
                      Body=b'article_id,category\na1,news\na2,"' + b"x" * 200_000 + b'"\n')
        args[3] = f"s3://{BUCKET}/bad/catalog.csv"
    elif setup is not None:
        statistics, constraints = {
            "bad-baseline": ("{not json", BASELINE_CONSTRAINTS),
            "baseline-wrong-types": (WRONG_TYPES, BASELINE_CONSTRAINTS),
            "constraints-no-mean-bound": (BASELINE_STATISTICS, NO_MEAN_BOUND),
            "baseline-top5": (TOP5, BASELINE_CONSTRAINTS),
            "baseline-statistics-only": (BASELINE_STATISTICS, None),
        }[setup]
        _stage(job, "stats", "statistics.json", statistics)
        if constraints is not None:
            _stage(job, "constraints", "constraints.json", constraints)
    run = run_monitor_container(job, model_monitor_env("healthy-recs", **env_overrides), args + arguments)
    assert run.returncode == 1, run.log
    assert run.message.startswith("Failed: bad input: "), run.message
    assert expected in run.log, run.log  # the whole error in the job log...
    assert "s3://" not in run.message  # ...the message names the stage and class, no URI
    assert len(run.message.encode()) <= 1024
    assert "Traceback" not in run.log
    assert not (run.output / "statistics.json").exists()
    assert_no_invalid_call(run.audit)


# --- in-process: replay, serving, the exit contract -----------------------------------------------

def _settings(tmp_path: Path, sessions: list[dict], max_attempts: int = 1) -> ReplaySettings:
    validation, catalog = tmp_path / "sessions.jsonl", tmp_path / "catalog.csv"
    validation.write_text("\n".join(json.dumps(s) for s in sessions))
    catalog.write_text("article_id,category\n" + "\n".join(f"{a},{c}" for a, c in catalog_rows()))
    return ReplaySettings(str(validation), str(catalog), 10, DEFAULT_RESPONSE_PATH, 4, None, 5.0, max_attempts)


def test_inference_ids_are_valid_deterministic_and_distinct(runtime, aws_env, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", runtime.url)
    long_prefix = "session-" + "x" * 70  # every id passes 64 characters and they share 78 of them
    ids = [f"{long_prefix}-{i}" for i in range(5)] + ["line\nbreak", "café-1", " leading space", "short"]
    sessions = [Session(session_id, {"user_id": f"u{n}"}) for n, session_id in enumerate(ids)]
    settings = ReplaySettings("unused", "unused", 10, DEFAULT_RESPONSE_PATH, 4, None, 5.0, 1)
    result = EndpointReplayer("healthy-recs", settings, "20271031T0900").replay(sessions, progress=False)
    assert result.succeeded == len(sessions), result.errors()
    sent = list(runtime.inference_ids)
    assert len(sent) == len(set(sent)) == len(sessions)
    shape = service_schema.operation_model("sagemaker-runtime", "InvokeEndpoint").input_shape.members["InferenceId"]
    for value in sent:
        assert 1 <= len(value) <= 64 and not service_schema.constraint_problems(value, shape), value
        assert value.startswith("diversity-replay-20271031T0900-")
    assert "diversity-replay-20271031T0900-short" in sent
    assert "diversity-replay-20271031T0900- leading space" in sent  # valid as is: only the first character must not be blank
    assert sorted(sent) == sorted(inference_id("20271031T0900", s) for s in ids)  # the same ids on every run
    assert inference_id("20271031T0900", f"{long_prefix}-0") == (
        "diversity-replay-20271031T0900-" + hashlib.sha256(f"{long_prefix}-0".encode()).hexdigest()[:16])


def test_replay_over_processes_gives_the_same_outcomes_in_order(runtime, aws_env, monkeypatch):
    sessions = [Session(f"s{i}", {"user_id": f"u{i}"}) for i in range(23)]
    one_process = ReplaySettings("unused", "unused", 10, DEFAULT_RESPONSE_PATH, 5, None, 5.0, 1)
    three = dataclasses.replace(one_process, processes=3)
    # The worker processes' forkserver starts while nothing answers at the endpoint URL...
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", f"http://127.0.0.1:{free_port()}")
    with EndpointReplayer("healthy-recs", three, "p") as replayer:
        refused = replayer.replay(sessions[:4], progress=False)
    assert refused.succeeded == 0 and set(refused.errors()) == {"EndpointConnectionError"}  # per session, not fatal
    # ...and each replay's workers still use the caller's settings of the moment.
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", runtime.url)
    single = EndpointReplayer("healthy-recs", one_process, "p").replay(sessions, progress=False)
    sent_by_one = sorted(runtime.inference_ids)
    runtime.inference_ids.clear()
    with EndpointReplayer("healthy-recs", three, "p") as replayer:
        spread = replayer.replay(sessions, progress=False)
        workers = list(replayer._pool._processes.values())  # the executor's own record of its processes
        assert len(workers) == 3 and all(worker.pid != os.getpid() and worker.is_alive() for worker in workers)
    assert not any(worker.is_alive() for worker in workers)  # closed with the replayer
    assert spread.succeeded == len(sessions), spread.errors()
    assert [outcome.session_id for outcome in spread.outcomes] == [session.session_id for session in sessions]
    assert [outcome.article_ids for outcome in spread.outcomes] == [outcome.article_ids for outcome in single.outcomes]
    assert sorted(runtime.inference_ids) == sent_by_one  # the same InferenceIds, each sent once


def test_a_replayer_spread_over_processes_takes_no_injected_client():
    settings = ReplaySettings("unused", "unused", 10, DEFAULT_RESPONSE_PATH, 4, None, 5.0, 1, processes=2)
    with pytest.raises(ValueError, match="only be given to a replayer that runs in one process"):
        EndpointReplayer("e", settings, "r", sleep=lambda _: None)


def test_two_sessions_with_one_inference_id_are_refused():
    sessions = [Session(LONG_SESSION, {}), Session(hashlib.sha256(LONG_SESSION.encode()).hexdigest()[:16], {})]
    with pytest.raises(InputError, match="map to the same InferenceId"):
        inference_ids("20271031T0900", sessions)


def test_any_botocore_error_fails_the_session_not_the_run(runtime, aws_env, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", runtime.url)
    sessions = [Session(f"s{i}", {"user_id": f"u{i}"}) for i in range(6)]
    settings = ReplaySettings("unused", "unused", 10, DEFAULT_RESPONSE_PATH, 3, None, 5.0, 2)
    # The body is cut short: botocore raises ResponseStreamingError while the body is read.
    result = EndpointReplayer("truncated-recs", settings, "t", sleep=lambda _: None).replay(sessions, progress=False)
    assert result.succeeded == 0 and result.errors() == {"ResponseStreamingError": 6}
    assert all(outcome.attempts == 2 for outcome in result.outcomes)  # a transport error: retried


def test_serving_records_a_config_change_during_the_replay(runtime, aws_env, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", runtime.url)
    sagemaker = boto3.client("sagemaker")
    create_endpoint(sagemaker, "healthy-swap", "swap-config-a", "swap-model-a")
    sagemaker.create_model(ModelName="swap-model-b", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "x.dkr.ecr/recs:2"})
    sagemaker.create_endpoint_config(EndpointConfigName="swap-config-b", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": "swap-model-b", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])

    def deploy_b_during_the_replay(endpoint: str, number: int) -> None:
        if number == 1:  # moto has no UpdateEndpoint: the same name, re-created on config b
            sagemaker.delete_endpoint(EndpointName="healthy-swap")
            sagemaker.create_endpoint(EndpointName="healthy-swap", EndpointConfigName="swap-config-b")

    runtime.on_invoke = deploy_b_during_the_replay
    settings = _settings(tmp_path, [{"session_id": f"s{i}", "request": {"user_id": f"u{i}"}} for i in range(4)])
    measurement, result = measure("healthy-swap", settings, "swap", progress=False)
    assert result.succeeded == 4
    serving = statistics_document(measurement, reliable=True)["diversity_monitor"]["serving"]
    assert {**serving, "observed_at": None} == {"endpoint_config": "swap-config-a", "models": {"AllTraffic": "swap-model-a"},
                                                "observed_at": None, "changed_during_replay": True, "error": None,
                                                "capture_sampling_percentage": None}


@pytest.mark.parametrize("control_plane, expected", [
    ("denied", "before the replay: AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/monitor is not "
               "authorized to perform: sagemaker:DescribeEndpoint"),
    ("down", "before the replay: EndpointConnectionError: Could not connect to the endpoint URL"),
])
def test_serving_that_cannot_be_read_does_not_fail_the_measurement(runtime, aws_env, monkeypatch, tmp_path,
                                                                   control_plane, expected):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", runtime.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER",
                       runtime.url if control_plane == "denied" else f"http://127.0.0.1:{free_port()}")
    settings = _settings(tmp_path, [{"session_id": f"s{i}", "request": {"user_id": f"u{i}"}} for i in range(3)])
    measurement, result = measure("healthy-recs", settings, "denied", progress=False)
    assert result.succeeded == 3 and measurement.diversity.mean == 7
    serving = measurement.serving.to_dict()
    assert serving["endpoint_config"] is None and serving["models"] == {} and not serving["changed_during_replay"]
    assert serving["error"].startswith(expected), serving["error"]


def test_an_unforeseen_error_still_ends_as_a_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(container_paths.ML_ROOT_ENV, str(tmp_path))
    inputs = tmp_path / "sessions.jsonl"
    inputs.write_text('{"session_id": "a", "request": {}}\n')

    def unforeseen(context):  # a fault nobody named: the catch-all is what is under test
        raise LookupError("é" * 3000)

    monkeypatch.setattr(entrypoint, "preflight", unforeseen)
    code = entrypoint.run_job(["--validation-set", str(inputs), "--catalog", str(inputs)],
                              {"sagemaker_endpoint_name": "healthy-recs", "output_path": str(tmp_path / "out")})
    assert code == 1
    message = (tmp_path / "output/message").read_bytes()
    assert len(message) <= 1024 and message.decode("utf-8") == "Failed: bad input: LookupError (details in the job log)"
    assert "Traceback" in capsys.readouterr().err


def test_papermill_overrun_kills_its_kernel_too(tmp_path):
    # Like papermill: a parent that starts a "kernel" in a session of its own, then hangs.
    pid_file = tmp_path / "kernel.pid"
    parent = (
        "import subprocess, sys, time\n"
        "kernel = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'], start_new_session=True)\n"
        f"open({str(pid_file)!r}, 'w').write(str(kernel.pid))\n"
        "time.sleep(300)\n"
    )
    with pytest.raises(subprocess.TimeoutExpired):
        report.run_in_own_session([sys.executable, "-c", parent], timeout=5)
    kernel = int(pid_file.read_text())
    assert not psutil.pid_exists(kernel) or psutil.Process(kernel).status() == psutil.STATUS_ZOMBIE

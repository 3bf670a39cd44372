"""The monitoring container end to end: the Dockerfile's ENTRYPOINT under the contract.

A real HTTP endpoint (tests/runtime_server.py, speaking SageMaker Runtime's protocol), inputs in
an S3 served by moto, papermill executing the real report notebook, outputs read back the way
the SageMaker SDK reads them. Every botocore call is audited against the service model.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from container import MONITOR_IMAGE, model_monitor_env, run_monitor_container, upload_outputs
from conftest import free_port
from diversity_monitor.local import images
from runtime_server import RuntimeServer, catalog_rows

SESSIONS = 40
BUCKET = "recs-monitor"
ARGS = ["--validation-set", f"s3://{BUCKET}/validation/sessions.jsonl",
        "--catalog", f"s3://{BUCKET}/catalog/catalog.csv", "--concurrency", "8"]


@pytest.fixture(scope="module")
def runtime():
    server = RuntimeServer(free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def stack_env(aws_env, runtime, monkeypatch):
    """S3 (and CloudWatch) on moto; SageMaker Runtime on the test endpoint server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", runtime.url)
    s3 = boto3.client("s3")
    if BUCKET not in {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    sessions = "\n".join(
        json.dumps({"session_id": f"s{i:03d}", "request": {"user_id": f"u{i:03d}", "history": [], "k": 10}})
        for i in range(SESSIONS)
    )
    s3.put_object(Bucket=BUCKET, Key="validation/sessions.jsonl", Body=sessions.encode())
    catalog = "article_id,category,title\n" + "\n".join(f"{a},{c},t" for a, c in catalog_rows())
    s3.put_object(Bucket=BUCKET, Key="catalog/catalog.csv", Body=catalog.encode())
    return aws_env


def sdk_read(uri_prefix: str):
    """Read the reports exactly as the SageMaker SDK does (from S3)."""
    from sagemaker.core.helper.session_helper import Session
    from sagemaker.core.model_monitor import ConstraintViolations, Statistics

    session = Session(boto_session=boto3.Session())
    statistics = Statistics.from_s3_uri(f"{uri_prefix}/statistics.json", sagemaker_session=session)
    violations = ConstraintViolations.from_s3_uri(f"{uri_prefix}/constraint_violations.json", sagemaker_session=session)
    return statistics.body_dict, violations.body_dict


def assert_every_call_valid(run, expected_operations: set[str]):
    assert run.audit, "no botocore calls were audited"
    invalid = [record for record in run.audit if record["invalid"]]
    assert not invalid, invalid
    assert expected_operations <= {record["operation"] for record in run.audit}


def test_entrypoint_is_what_the_dockerfile_declares():
    spec = images.resolve(MONITOR_IMAGE)
    assert spec.command() == ["dumb-init", "--", "diversity-monitor", "run"]
    assert spec.command(["--top-k", "5"])[-2:] == ["--top-k", "5"]


def test_hadolint_passes_on_every_dockerfile():
    for dockerfile in ("Dockerfile", "Dockerfile.recommender"):
        hadolint = str(Path(sys.executable).parent / "hadolint")
        result = subprocess.run([hadolint, dockerfile], capture_output=True, text=True, cwd=images.PROJECT_ROOT)
        assert result.returncode == 0, result.stdout + result.stderr


def test_healthy_endpoint_completes_with_sdk_readable_reports(stack_env, tmp_path):
    run = run_monitor_container(tmp_path / "job", model_monitor_env("healthy-recs"), ARGS)
    assert run.returncode == 0, run.log
    assert run.message == "Completed: Job completed successfully with no violations."
    assert {"statistics.json", "constraint_violations.json", "report.ipynb", "report.html"} <= {
        p.name for p in run.output.iterdir()}
    statistics, violations = sdk_read(upload_outputs(run, BUCKET, "reports/healthy"))
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
    assert "data:image/png;base64" in html and "runbooks/diversity_alarm.ipynb" in html
    # Replay traffic is marked, so analyses of captured data can leave it out.
    assert all(i.startswith("diversity-replay-20271031T0900-") for i in runtime_ids(stack_env, "healthy"))
    assert_every_call_valid(run, {"InvokeEndpoint", "GetObject"})


def runtime_ids(_env, _kind):
    return [i for i in RUNTIME_IDS if i]


RUNTIME_IDS: list[str] = []


@pytest.fixture(autouse=True)
def _collect_ids(runtime):
    RUNTIME_IDS.clear()
    runtime.inference_ids.clear()
    yield
    RUNTIME_IDS.extend(runtime.inference_ids)


def test_collapsed_endpoint_completes_with_violations(stack_env, tmp_path):
    run = run_monitor_container(tmp_path / "job", model_monitor_env("collapsed-recs"), ARGS + ["--min-diversity", "4"])
    assert run.returncode == 0, run.log
    assert run.message == "CompletedWithViolations: Job completed successfully with 1 violations."
    statistics, violations = sdk_read(upload_outputs(run, BUCKET, "reports/collapsed"))
    assert statistics["diversity_monitor"]["mean"] == 2
    assert statistics["diversity_monitor"]["max_slot_concentration"] == 1.0
    (violation,) = violations["violations"]
    assert "below the floor 4" in violation["description"]
    values = {line["MetricName"]: line["Value"] for line in run.metric_lines}
    assert values["top10_category_diversity_mean"] == 2.0


def test_retries_hide_a_flaky_model_and_use_target_variant(stack_env, tmp_path, runtime):
    runtime.target_variants.clear()
    run = run_monitor_container(tmp_path / "job", model_monitor_env("flaky-recs"), ARGS + ["--target-variant", "Canary"])
    assert run.returncode == 0, run.log
    assert run.json("statistics.json")["diversity_monitor"]["sessions_succeeded"] == SESSIONS
    assert set(runtime.target_variants) == {"Canary"}
    invokes = [r for r in run.audit if r["operation"] == "InvokeEndpoint"]
    assert len(invokes) == 2 * SESSIONS  # every session's first call failed once, then succeeded


def test_partial_outage_publishes_replay_health_not_diversity(stack_env, tmp_path):
    run = run_monitor_container(tmp_path / "job", model_monitor_env("broken-recs"), ARGS + ["--max-attempts", "2"])
    assert run.returncode == 0, run.log
    assert run.message.startswith("CompletedWithViolations: Job completed successfully with 1 violations.")
    block = run.json("statistics.json")["diversity_monitor"]
    assert block["sessions_succeeded"] == SESSIONS - 8 and not block["diversity_reliable"]
    (violation,) = run.json("constraint_violations.json")["violations"]
    assert violation["constraint_check_type"] == "completeness_check"
    values = {line["MetricName"]: line["Value"] for line in run.metric_lines}
    assert values["replay_success_rate"] == pytest.approx(0.8)
    assert not any(name.startswith("top10_") for name in values)


def test_endpoint_down_is_reported_as_an_outage(stack_env, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", f"http://127.0.0.1:{free_port()}")  # nothing listens
    run = run_monitor_container(tmp_path / "job", model_monitor_env("healthy-recs"),
                                ARGS + ["--max-attempts", "2", "--invoke-timeout", "2"])
    assert run.returncode == 0, run.log
    block = run.json("statistics.json")["diversity_monitor"]
    assert block["sessions_succeeded"] == 0 and "EndpointConnectionError" in block["replay_errors"]
    values = {line["MetricName"]: line["Value"] for line in run.metric_lines}
    assert values == {"replay_success_rate": 0.0, "replay_sessions_succeeded": 0.0}


def test_report_timeout_fails_the_run_and_keeps_the_partial_notebook(stack_env, tmp_path, monkeypatch):
    # Slow endpoint: 40 sessions x 1.5 s / 2 in flight = 30 s, far past a 3 s cell timeout.
    slow = RuntimeServer(free_port(), latency_ms=1500).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", slow.url)
        args = ARGS[:-2] + ["--concurrency", "2", "--report-timeout", "3"]
        run = run_monitor_container(tmp_path / "job", model_monitor_env("healthy-recs"), args)
    finally:
        slow.stop()
    assert run.returncode == 1
    assert run.message.startswith("Failed: report notebook failed (papermill exit 1)")
    assert "Timeout" in run.message or "timed out" in run.message
    assert (run.output / "report.ipynb").exists() and (run.output / "report.html").exists()
    assert not run.metric_lines


def test_put_metric_data_mode_for_plain_processing_jobs(stack_env, tmp_path):
    env = model_monitor_env("healthy-recs", publish_cloudwatch_metrics=None, sagemaker_monitoring_schedule_name=None)
    run = run_monitor_container(tmp_path / "job", env, ARGS + ["--put-metric-data", "--metrics-namespace", "Custom/Diversity"])
    assert run.returncode == 0, run.log
    assert not run.metric_lines  # no file: we published ourselves
    assert_every_call_valid(run, {"PutMetricData"})
    stats = boto3.client("cloudwatch").get_metric_statistics(
        Namespace="Custom/Diversity", MetricName="top10_category_diversity_mean",
        Dimensions=[{"Name": "Endpoint", "Value": "healthy-recs"}],
        StartTime="2020-01-01T00:00:00Z", EndTime="2100-01-01T00:00:00Z", Period=3600, Statistics=["Average"])
    assert [point["Average"] for point in stats["Datapoints"]] == [7.0]


def test_baseline_command_then_run_against_it(stack_env, tmp_path):
    env = {"PATH": images.container_environment(images.resolve(MONITOR_IMAGE), tmp_path, {})["PATH"]}
    command = ["diversity-monitor", "baseline", "--endpoint-name", "healthy-recs", *ARGS,
               "--output", f"s3://{BUCKET}/baselines/v1"]
    result = subprocess.run(command, capture_output=True, text=True, env={**stack_env_vars(), **env})
    assert result.returncode == 0, result.stderr
    assert "mean 7.00, min 7, p5 7" in result.stdout
    again = subprocess.run(command, capture_output=True, text=True, env={**stack_env_vars(), **env})
    assert again.returncode == 1 and "already exists" in again.stderr  # a baseline is never replaced silently
    # The platform stages the baseline under /opt/ml/processing/baseline/...
    job = tmp_path / "job"
    s3 = boto3.client("s3")
    for name, folder in (("statistics.json", "stats"), ("constraints.json", "constraints")):
        target = job / "processing/baseline" / folder / name
        target.parent.mkdir(parents=True)
        s3.download_file(BUCKET, f"baselines/v1/{name}", str(target))
    env = model_monitor_env(
        "collapsed-recs",
        baseline_statistics="/opt/ml/processing/baseline/stats/statistics.json",
        baseline_constraints="/opt/ml/processing/baseline/constraints/constraints.json",
    )
    run = run_monitor_container(job, env, ARGS)
    assert run.returncode == 0, run.log
    checks = [v["description"] for v in run.json("constraint_violations.json")["violations"]]
    assert any("floor" in c for c in checks) and any("baseline p5 7" in c for c in checks)
    assert any("freezing" in c for c in checks)


def stack_env_vars() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k.startswith("AWS_") or k in ("HOME", "LANG")}


@pytest.mark.parametrize("setup, arguments, env_overrides, expected", [
    ("bad-validation", [], {}, "validation set s3://recs-monitor/bad/sessions.jsonl line 2: not valid JSON"),
    ("empty-validation", [], {}, "has no sessions"),
    ("bad-catalog", [], {}, "catalog s3://recs-monitor/bad/catalog.csv line 3: 'category' must be a non-empty string"),
    (None, ["--frobnicate"], {}, "unrecognized arguments: --frobnicate"),
    (None, ["--top-k", "ten"], {}, "--top-k must be a whole number, got 'ten'"),
    (None, ["--min-diversity", "-1"], {}, "--min-diversity must be between"),
    (None, [], {"start_time": "yesterday"}, "start_time='yesterday' is not an ISO-8601 time"),
    (None, [], {"publish_cloudwatch_metrics": "yes"}, "expected Enabled or Disabled"),
    (None, ["--put-metric-data"], {}, "would be published twice"),
    (None, [], {"sagemaker_endpoint_name": None}, "no endpoint to monitor"),
    ("bad-baseline", [], {"baseline_statistics": "/opt/ml/processing/baseline/stats/statistics.json"},
     "is not valid JSON"),
    (None, [], {"baseline_constraints": "/opt/ml/processing/baseline/constraints/missing.json"}, "does not exist"),
])
def test_bad_input_fails_the_run_with_a_named_error(stack_env, tmp_path, setup, arguments, env_overrides, expected):
    s3 = boto3.client("s3")
    args = list(ARGS)
    if setup == "bad-validation":
        s3.put_object(Bucket=BUCKET, Key="bad/sessions.jsonl", Body=b'{"session_id": "a", "request": {}}\n{"session_id": "b", ')
        args[1] = f"s3://{BUCKET}/bad/sessions.jsonl"
    elif setup == "empty-validation":
        s3.put_object(Bucket=BUCKET, Key="bad/sessions.jsonl", Body=b"\n\n")
        args[1] = f"s3://{BUCKET}/bad/sessions.jsonl"
    elif setup == "bad-catalog":
        s3.put_object(Bucket=BUCKET, Key="bad/catalog.csv", Body=b"article_id,category\na1,news\na2,\n")
        args[3] = f"s3://{BUCKET}/bad/catalog.csv"
    elif setup == "bad-baseline":
        target = tmp_path / "job/processing/baseline/stats/statistics.json"
        target.parent.mkdir(parents=True)
        target.write_text("{not json")
    run = run_monitor_container(tmp_path / "job", model_monitor_env("healthy-recs", **env_overrides), args + arguments)
    assert run.returncode == 1, run.log
    assert run.message.startswith("Failed: bad input: ")
    assert expected in run.message, run.message
    assert len(run.message.encode()) <= 1024
    assert not (run.output / "statistics.json").exists()

"""The container contract in-process: arguments, platform variables, what a run records, input files.

The container tests (test_monitoring_job.py) prove that each kind of bad input ends as a failed
run with a message; these pin down the rules themselves, quickly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from diversity_monitor import cli
from diversity_monitor.aws import container_paths
from diversity_monitor.conventions import METRICS_NAMESPACE
from diversity_monitor.job import contract
from diversity_monitor.job.contract import ContractError, MonitoringContext, load_context
from diversity_monitor.job.inputs import InputError, load_catalog, load_validation_set

BASE = ["--validation-set", "s3://b/v.jsonl", "--catalog", "s3://b/c.csv"]
ENV = {
    "sagemaker_endpoint_name": "recs-prod",
    "sagemaker_monitoring_schedule_name": "diversity-hourly",
    "start_time": "2027-10-31T08:00:00Z",
    "end_time": "2027-10-31T09:00:00Z",
    "output_path": "/opt/ml/processing/output",
    "publish_cloudwatch_metrics": "Enabled",
}


@pytest.fixture(autouse=True)
def _job_root(tmp_path, monkeypatch):
    monkeypatch.setenv(container_paths.ML_ROOT_ENV, str(tmp_path))


def context(arguments=(), **env) -> MonitoringContext:
    merged = {key: value for key, value in {**ENV, **env}.items() if value is not None}
    return load_context([*BASE, *arguments], merged)


@pytest.mark.parametrize("arguments, env, problem", [
    (["--top", "3"], {}, "unrecognized arguments: --top 3"),  # no abbreviations: --top is not --top-k
    (["--concurrency=4", "--catalog-path", "x"], {}, "unrecognized arguments: --catalog-path x"),
    (["--help"], {}, "unrecognized arguments: --help"),
    (["--min-diversity", "10.5"], {}, "--min-diversity 10.5 is above --top-k 10"),
    (["--top-k", "3", "--min-diversity", "4"], {}, "--min-diversity 4 is above --top-k 3"),
    (["--metrics-namespace", "Custom/X"], {"publish_cloudwatch_metrics": None},
     "--metrics-namespace is only used with --put-metric-data"),
    (["--put-metric-data", "--metrics-namespace", "AWS/SageMaker"], {"publish_cloudwatch_metrics": None},
     "namespace 'AWS/SageMaker': must be 1-255 characters and not start with 'AWS/' or ':'"),
    (["--put-metric-data", "--metrics-namespace", ":x"], {"publish_cloudwatch_metrics": None}, "not start with 'AWS/' or ':'"),
    (["--response-path", "recommendations.article_id"], {}, "argument --response-path: response path "
                                                            "'recommendations.article_id' is not valid"),
    (["--target-variant", "canary_1"], {}, "--target-variant 'canary_1' is not valid for InvokeEndpoint's TargetVariant"),
    (["--endpoint-name", "recs prod"], {"sagemaker_endpoint_name": None}, "endpoint name 'recs prod' is not valid"),
    ([], {"sagemaker_endpoint_name": "x" * 64}, "is not valid for InvokeEndpoint's EndpointName"),
    ([], {"sagemaker_monitoring_schedule_name": None}, "metrics are published (publish_cloudwatch_metrics=Enabled) but "
                                                       "no monitoring schedule name"),
    (["--put-metric-data"], {"publish_cloudwatch_metrics": None, "sagemaker_monitoring_schedule_name": None},
     "metrics are published (--put-metric-data) but no monitoring schedule name"),
    (["--output-hour-folder"], {"end_time": None, "start_time": None}, "--output-hour-folder writes under yyyy/mm/dd/HH/"),
    (["--concurrency", "2", "--replay-processes", "3"], {}, "--replay-processes 3 is more than --concurrency 2: "
                                                          "each process needs at least one call in flight"),
    (["--replay-processes", "0"], {}, "--replay-processes must be between 1 and 64, got 0"),
    (["--capture-s3-uri", "s3://recs-capture/datacapture"], {"dataset_source": "/opt/ml/processing/input/endpoint"},
     "--capture-s3-uri and dataset_source were both given"),
    (["--capture-s3-uri", "s3://recs-capture/datacapture"], {"dataset_source": None, "end_time": None, "start_time": None},
     "needs an s3:// URI and environment variable end_time"),
])
def test_bad_arguments_are_named(arguments, env, problem):
    with pytest.raises(ContractError) as raised:
        context(arguments, **env)
    assert problem in str(raised.value)


def test_arguments_that_are_fine():
    ctx = context(["--top-k", "5", "--min-diversity", "5", "--response-path", "[].id", "--target-variant", "Canary-2"])
    assert (ctx.replay.top_k, ctx.min_diversity, ctx.replay.response_path) == (5, 5.0, "[].id")
    assert (ctx.replay.concurrency, ctx.replay.processes) == (16, 1)  # one process unless asked
    assert context(["--replay-processes", "2"]).replay.processes == 2
    plain = context(["--put-metric-data"], publish_cloudwatch_metrics=None)
    assert plain.metrics_namespace == METRICS_NAMESPACE
    # Not publishing at all needs no schedule name: there is no metric to dimension.
    assert context([], publish_cloudwatch_metrics="Disabled", sagemaker_monitoring_schedule_name=None).schedule_name is None


def test_the_run_records_documented_variables_and_arguments_only():
    env = {**ENV, "dataset_format": '{"sagemakerCaptureJson": {}}', "metric_time": "2027-10-31T09:00:00Z",
           "http_proxy": "http://monitor:hunter2@proxy:3128", "api_token": "s3cr3t", "HOME": "/root",
           "AWS_SECRET_ACCESS_KEY": "also-secret"}
    ctx = load_context([*BASE, "--top-k", "10"], env)
    parameters = ctx.to_parameters()
    text = json.dumps(parameters)
    for secret in ("hunter2", "s3cr3t", "also-secret", "api_token", "http_proxy", "HOME"):
        assert secret not in text
    assert parameters["platform_environment"] == {key: env[key] for key in contract.PLATFORM_ENV if key in env}
    assert parameters["container_arguments"] == [*BASE, "--top-k", "10"]
    assert MonitoringContext.from_parameters(parameters) == ctx  # the notebook rebuilds exactly this context


def test_a_plain_job_reads_the_window_model_monitor_would_stage_from_the_capture_location():
    """The period plus ANALYSIS_WINDOW_EXTRA_HOURS, as setup/schedule.analysis_window_config gives Model Monitor."""
    plain = context(["--put-metric-data", "--capture-s3-uri", "s3://recs-capture/datacapture/", "--live-window", "3600"],
                    publish_cloudwatch_metrics=None, dataset_source=None, start_time=None)
    assert plain.capture_source == "s3://recs-capture/datacapture/recs-prod/"
    assert (plain.start_time.isoformat(), plain.end_time.isoformat()) == ("2027-10-31T06:00:00+00:00", "2027-10-31T09:00:00+00:00")
    assert MonitoringContext.from_parameters(plain.to_parameters()) == plain


def test_output_hour_folder_is_the_utc_hour_of_end_time(tmp_path):
    ctx = context(["--output-hour-folder"], end_time="2027-11-01T00:00:00+01:00", start_time="2027-10-31T22:00:00Z")
    assert ctx.report_folder == tmp_path / "processing/output/2027/10/31/23"
    assert context().report_folder == tmp_path / "processing/output"


def test_baseline_statistics_without_constraints_is_an_error(tmp_path):
    statistics = tmp_path / "processing/baseline/stats/statistics.json"
    statistics.parent.mkdir(parents=True)
    statistics.write_text("{}")
    with pytest.raises(ContractError, match="baseline_statistics is set but baseline_constraints is not"):
        context(baseline_statistics="/opt/ml/processing/baseline/stats/statistics.json")


# --- the commands ---------------------------------------------------------------------------------

def test_run_help_on_a_terminal_prints_the_usage(capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main(["run", "--help"])
    assert raised.value.code == 0
    assert "--validation-set URI" in capsys.readouterr().out


def test_run_help_inside_a_job_fails_the_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("sagemaker_endpoint_name", "recs-prod")
    with pytest.raises(SystemExit) as raised:
        cli.main(["run", *BASE, "--help"])
    assert raised.value.code == 1
    message = (tmp_path / "output/message").read_text()
    assert message.startswith("Failed: bad input: ContainerArguments: --help asks for the usage")


@pytest.mark.parametrize("command", ["baseline", "replay"])
def test_bad_arguments_of_the_commands_are_named(command, capsys):
    extra = ["--output", "s3://b/baselines/v1"] if command == "baseline" else []
    with pytest.raises(SystemExit) as raised:
        cli.main([command, "--endpoint-name", "recs", *BASE, *extra, "--response-path", "a[]b"])
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "argument --response-path: response path 'a[]b' is not valid" in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        cli.main([command, "--endpoint-name", "recs", *BASE, *extra, "--top", "3"])  # no abbreviations here either
    assert "unrecognized arguments: --top 3" in capsys.readouterr().err


def test_baseline_command_names_a_bad_output_uri(tmp_path, capsys):
    code = cli.main(["baseline", "--endpoint-name", "recs", *BASE, "--output", "s3://"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("baseline failed: baseline output: 's3://' is not an s3://bucket/key URI"), err
    assert "Traceback" not in err and not (Path.cwd() / "s3:").exists()


def test_replay_command_names_a_missing_validation_set(tmp_path, capsys):
    missing = tmp_path / "missing.jsonl"
    code = cli.main(["replay", "--endpoint-name", "recs", "--validation-set", str(missing), "--catalog", str(missing)])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"replay failed: validation set cannot read {missing}") and "Traceback" not in err


# --- input files -----------------------------------------------------------------------------------

def test_json_lines_split_at_newlines_only(tmp_path):
    # JSON allows these raw inside strings; str.splitlines() would cut the line there.
    separators = "\u2028\u2029\u0085\x1c\x0b\x0c"
    path = tmp_path / "sessions.jsonl"
    lines = [json.dumps({"session_id": f"s{i}{sep}x", "request": {"q": f"a{sep}b"}}, ensure_ascii=False)
             for i, sep in enumerate(separators)]
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8", newline="")
    sessions = load_validation_set(str(path))
    assert [s.session_id for s in sessions] == [f"s{i}{sep}x" for i, sep in enumerate(separators)]
    assert sessions[0].request == {"q": "a\u2028b"}
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text('{"article_id": "a1", "category": "news\u0085local"}\n', encoding="utf-8")
    assert load_catalog(str(catalog)) == {"a1": "news\u0085local"}


def test_a_validation_line_missing_request_is_named(tmp_path):
    path = tmp_path / "sessions.jsonl"
    path.write_text('{"session_id": "a", "request": {}}\n{"session_id": "b"}\n')
    with pytest.raises(InputError, match=f"validation set {path} line 2: 'request' must be a JSON object"):
        load_validation_set(str(path))


def test_a_malformed_catalog_is_named(tmp_path):
    jsonl = tmp_path / "catalog.jsonl"
    jsonl.write_text('{"article_id": "a1", "category": "news"}\n{"article_id": "a2"\n')
    with pytest.raises(InputError, match=f"catalog {jsonl} line 2: not valid JSON"):
        load_catalog(str(jsonl))
    huge = tmp_path / "catalog.csv"
    huge.write_text('article_id,category\na1,news\na2,"' + "x" * 200_000 + '"\n')
    with pytest.raises(InputError, match=r"not valid CSV after line 2 \(field larger than field limit"):
        load_catalog(str(huge))


def test_an_unreachable_s3_is_an_input_error(aws_env, monkeypatch):
    # storage.py wraps ClientError only; no endpoint at all is a BotoCoreError, named here.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(InputError, match="validation set cannot read s3://b/v.jsonl: EndpointConnectionError"):
        load_validation_set("s3://b/v.jsonl")



def test_replay_settings_for_code_uses_the_command_lines_defaults_and_checks():
    from_code = contract.replay_settings_for("s3://b/v.jsonl", "s3://b/c.csv", target_variant="Canary")
    from_cli = contract.replay_settings(contract.run_argument_parser().parse_args([*BASE, "--target-variant", "Canary"]))
    assert from_code == from_cli
    assert contract.replay_settings_for("v", "c", top_k=None) == contract.replay_settings_for("v", "c")  # None: default
    with pytest.raises(ContractError, match="'topk' is not a replay setting"):
        contract.replay_settings_for("v", "c", topk=3)
    with pytest.raises(ContractError, match="--concurrency must be between 1 and 1024, got 0"):
        contract.replay_settings_for("v", "c", concurrency=0)

"""The Model Monitor container contract: what the platform hands the container, parsed once.

Inputs come from two places, as on SageMaker:
- environment variables the platform sets (`sagemaker_endpoint_name`, `start_time`, ...; see
  ../shared/reference/platform-facts.md), plus `MonitoringJobDefinition.Environment` entries;
- `ContainerArguments`: our own flags (`--validation-set`, `--catalog`, `--min-diversity`, ...).

`load_context()` turns both into one typed, validated `MonitoringContext`; anything missing or
malformed raises `ContractError` naming the variable or argument. Container paths (`/opt/ml/...`)
are mapped through `container_paths`, so the same context works in a local job folder.

The same container also runs as a plain Processing job (no Model Monitor): then there are no
Model Monitor variables, the endpoint comes from `--endpoint-name`, and `--put-metric-data`
makes the job publish its own metrics. Publishing both ways at once is refused.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Mapping

from diversity_monitor import container_paths
from diversity_monitor.clock import parse_instant
from diversity_monitor.response_path import DEFAULT_RESPONSE_PATH

DEFAULT_NAMESPACE = "aws/sagemaker/Endpoints/data-metrics"
REPLAY_INFERENCE_PREFIX = "diversity-replay-"
RUNBOOK = "runbooks/README.md"  # where the report and the alarm point the on-call

# Environment variable names, exactly as the platform sets them.
ENV_ENDPOINT = "sagemaker_endpoint_name"
ENV_SCHEDULE = "sagemaker_monitoring_schedule_name"
ENV_START = "start_time"
ENV_END = "end_time"
ENV_METRIC_TIME = "metric_time"
ENV_OUTPUT = "output_path"
ENV_DATASET_SOURCE = "dataset_source"
ENV_DATASET_FORMAT = "dataset_format"
ENV_PUBLISH = "publish_cloudwatch_metrics"
ENV_BASELINE_STATISTICS = "baseline_statistics"
ENV_BASELINE_CONSTRAINTS = "baseline_constraints"


class ContractError(ValueError):
    """A missing or malformed contract input; the message names it."""


class _RaisingParser(argparse.ArgumentParser):
    """argparse that raises instead of printing and exiting, so the job can say why it failed."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        raise ContractError(f"ContainerArguments: {message}")


def _positive_int(name: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a whole number, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{name} must be at least 1, got {value}")
        return value

    return parse


def _number(name: str, low: float, high: float):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{name} must be between {low:g} and {high:g}, got {value:g}")
        return value

    return parse


def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by `run`, `baseline` and `replay`: what to replay and how."""
    parser.add_argument("--validation-set", required=True, metavar="URI",
                        help="held-out sessions, JSON Lines (s3://... or a local path)")
    parser.add_argument("--catalog", required=True, metavar="URI",
                        help="article catalog: CSV (article_id,category,...) or JSON Lines")
    parser.add_argument("--top-k", type=_positive_int("--top-k"), default=10, metavar="K",
                        help="how many ranked articles count as the top list (default 10)")
    parser.add_argument("--response-path", default=DEFAULT_RESPONSE_PATH, metavar="EXPR",
                        help=f"where the ranked article ids sit in the response (default {DEFAULT_RESPONSE_PATH})")
    parser.add_argument("--concurrency", type=_positive_int("--concurrency"), default=16, metavar="N",
                        help="replay calls in flight at once (default 16)")
    parser.add_argument("--target-variant", default=None, metavar="NAME",
                        help="send replay traffic to this production variant (InvokeEndpoint TargetVariant)")
    parser.add_argument("--invoke-timeout", type=_number("--invoke-timeout", 0.1, 3600), default=10.0,
                        metavar="SECONDS", help="per-call timeout (default 10)")
    parser.add_argument("--max-attempts", type=_positive_int("--max-attempts"), default=4, metavar="N",
                        help="attempts per session on throttling, 5xx and timeouts (default 4)")


def run_argument_parser(prog: str = "diversity-monitor run") -> argparse.ArgumentParser:
    parser = _RaisingParser(prog=prog, description="Run one monitoring job under the Model Monitor contract.")
    add_run_arguments(parser)
    return parser


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    add_replay_arguments(parser)
    parser.add_argument("--min-diversity", type=_number("--min-diversity", 0, 1000), default=4.0, metavar="N",
                        help="absolute floor for the mean categories per top-k (default 4)")
    parser.add_argument("--min-success-rate", type=_number("--min-success-rate", 0, 1), default=0.95,
                        metavar="RATE", help="replayed share below which diversity is not published (default 0.95)")
    parser.add_argument("--endpoint-name", default=None, metavar="NAME",
                        help="endpoint to replay against when not run by Model Monitor")
    parser.add_argument("--put-metric-data", action="store_true",
                        help="publish metrics with PutMetricData (plain Processing job; not with Model Monitor)")
    parser.add_argument("--metrics-namespace", default=DEFAULT_NAMESPACE, metavar="NS",
                        help=f"namespace for --put-metric-data (default {DEFAULT_NAMESPACE})")
    parser.add_argument("--report-timeout", type=_number("--report-timeout", 1, 86400), default=1800,
                        metavar="SECONDS", help="longest a report cell may run before the job fails (default 1800)")


@dataclass(frozen=True)
class ReplaySettings:
    validation_set: str
    catalog: str
    top_k: int
    response_path: str
    concurrency: int
    target_variant: str | None
    invoke_timeout: float
    max_attempts: int


@dataclass(frozen=True)
class MonitoringContext:
    endpoint_name: str
    schedule_name: str | None
    start_time: datetime | None
    end_time: datetime | None
    metric_time: datetime | None
    output_path: Path
    dataset_source: Path | None
    publish_cloudwatch_metrics: bool  # the platform publishes the metrics file (Model Monitor)
    put_metric_data: bool  # we call PutMetricData ourselves (plain Processing job)
    metrics_namespace: str
    baseline_statistics: Path | None
    baseline_constraints: Path | None
    min_diversity: float
    min_success_rate: float
    report_timeout: float
    replay: ReplaySettings
    extra_environment: dict[str, str] = field(default_factory=dict)

    def to_parameters(self) -> dict:
        """JSON-ready form (papermill parameters, processingjobconfig-like logs)."""
        return json.loads(json.dumps(asdict(self), default=str))

    @classmethod
    def from_parameters(cls, parameters: Mapping) -> "MonitoringContext":
        values = dict(parameters)
        for key in ("start_time", "end_time", "metric_time"):
            values[key] = parse_instant(values[key]) if values.get(key) else None
        for key in ("output_path", "dataset_source", "baseline_statistics", "baseline_constraints"):
            values[key] = Path(values[key]) if values.get(key) else None
        values["replay"] = ReplaySettings(**values["replay"])
        return cls(**values)


_KNOWN_ENV = {
    ENV_ENDPOINT, ENV_SCHEDULE, ENV_START, ENV_END, ENV_METRIC_TIME, ENV_OUTPUT, ENV_DATASET_SOURCE,
    ENV_DATASET_FORMAT, ENV_PUBLISH, ENV_BASELINE_STATISTICS, ENV_BASELINE_CONSTRAINTS,
}


def _instant(env: Mapping[str, str], name: str) -> datetime | None:
    text = env.get(name)
    if not text:
        return None
    try:
        return parse_instant(text)
    except ValueError:
        raise ContractError(f"environment variable {name}={text!r} is not an ISO-8601 time") from None


def _existing_file(env: Mapping[str, str], name: str) -> Path | None:
    text = env.get(name)
    if not text:
        return None
    path = container_paths.resolve(text)
    if not path.is_file():
        raise ContractError(f"environment variable {name} names {text}, which does not exist")
    return path


def load_context(arguments: list[str], env: Mapping[str, str] | None = None) -> MonitoringContext:
    env = os.environ if env is None else env
    args = run_argument_parser().parse_args(arguments)

    endpoint = env.get(ENV_ENDPOINT) or args.endpoint_name
    if not endpoint:
        raise ContractError(
            f"no endpoint to monitor: environment variable {ENV_ENDPOINT} is not set and --endpoint-name was not given"
        )
    if args.endpoint_name and env.get(ENV_ENDPOINT) and args.endpoint_name != env[ENV_ENDPOINT]:
        raise ContractError(
            f"--endpoint-name {args.endpoint_name!r} disagrees with {ENV_ENDPOINT}={env[ENV_ENDPOINT]!r}"
        )
    publish_flag = env.get(ENV_PUBLISH)
    if publish_flag not in (None, "", "Enabled", "Disabled"):
        raise ContractError(f"environment variable {ENV_PUBLISH}={publish_flag!r}: expected Enabled or Disabled")
    publish = publish_flag == "Enabled"  # compare the string: "Disabled" is truthy in Python
    if publish and args.put_metric_data:
        raise ContractError(
            f"{ENV_PUBLISH}=Enabled (Model Monitor publishes the metrics file) and --put-metric-data "
            "were both given: metrics would be published twice"
        )
    if args.put_metric_data and (args.metrics_namespace.startswith("AWS/") or not 1 <= len(args.metrics_namespace) <= 255):
        raise ContractError(
            f"--metrics-namespace {args.metrics_namespace!r}: must be 1-255 characters and not start with 'AWS/'"
        )
    output = env.get(ENV_OUTPUT) or str(container_paths.PROCESSING_OUTPUT)
    start, end = _instant(env, ENV_START), _instant(env, ENV_END)
    if start and end and start >= end:
        raise ContractError(f"{ENV_START}={env[ENV_START]} is not before {ENV_END}={env[ENV_END]}")
    statistics = _existing_file(env, ENV_BASELINE_STATISTICS)
    constraints = _existing_file(env, ENV_BASELINE_CONSTRAINTS)
    source = env.get(ENV_DATASET_SOURCE)
    return MonitoringContext(
        endpoint_name=endpoint,
        schedule_name=env.get(ENV_SCHEDULE) or None,
        start_time=start,
        end_time=end,
        metric_time=_instant(env, ENV_METRIC_TIME),
        output_path=container_paths.resolve(output),
        dataset_source=container_paths.resolve(source) if source else None,
        publish_cloudwatch_metrics=publish,
        put_metric_data=args.put_metric_data,
        metrics_namespace=args.metrics_namespace,
        baseline_statistics=statistics,
        baseline_constraints=constraints,
        min_diversity=args.min_diversity,
        min_success_rate=args.min_success_rate,
        report_timeout=args.report_timeout,
        replay=replay_settings(args),
        extra_environment={k: v for k, v in env.items() if k not in _KNOWN_ENV and k.islower()},
    )


def replay_settings(args: argparse.Namespace) -> ReplaySettings:
    return ReplaySettings(
        validation_set=args.validation_set,
        catalog=args.catalog,
        top_k=args.top_k,
        response_path=args.response_path,
        concurrency=args.concurrency,
        target_variant=args.target_variant,
        invoke_timeout=args.invoke_timeout,
        max_attempts=args.max_attempts,
    )


def write_message(text: str) -> Path:
    """`/opt/ml/output/message`: the first 1 KB becomes the job's ExitMessage."""
    path = container_paths.resolve(container_paths.OUTPUT_MESSAGE)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")[:1024].decode("utf-8", errors="ignore")  # never split a character
    path.write_text(data, encoding="utf-8")
    return path

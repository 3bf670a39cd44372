"""The Model Monitor container contract: what the platform hands the container, parsed once.

Inputs come from two places, as on SageMaker:
- environment variables the platform sets (`sagemaker_endpoint_name`, `start_time`, ...; see
  ../shared/reference/platform-facts.md), plus `MonitoringJobDefinition.Environment` entries;
- `ContainerArguments`: our own flags (`--validation-set`, `--catalog`, `--min-diversity`, ...).

`load_context()` turns both into one typed, validated `MonitoringContext`; anything missing or
malformed raises `ContractError` naming the variable or argument. Container paths (`/opt/ml/...`)
are mapped through `container_paths`, so the same context works in a local job folder.

The same container also runs as a plain Processing job (no Model Monitor): then there are no
Model Monitor variables, the endpoint comes from `--endpoint-name`, `--put-metric-data` makes
the job publish its own metrics and `--output-hour-folder` writes the reports under
`yyyy/mm/dd/HH/` of `end_time`, Model Monitor's layout. Publishing both ways at once is refused.
Nobody stages the window's capture for a plain job, so `--capture-s3-uri` (the endpoint's
DataCaptureConfig.DestinationS3Uri) makes the live pass read `<uri>/<endpoint>/` for the window
straight from S3; without `start_time` the window is the hour before `end_time` (the plain path is
hourly, like Model Monitor's default window).

What a run records about its inputs (`parameters.json`, the report) is the documented platform
variables and our arguments only: user `Environment` entries and the host's variables (proxy
settings with credentials, tokens) are never copied.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

from diversity_monitor.aws import container_paths, service_schema
from diversity_monitor.cli import number_option, whole_option
from diversity_monitor.clock import parse_instant
from diversity_monitor.conventions import (
    ANALYSIS_WINDOW_EXTRA_HOURS,
    DEFAULT_MAX_LIST_OVERLAP,
    DEFAULT_MAX_SLOT_SHARE,
    DEFAULT_MAX_TOP_LIST_SHARE,
    DEFAULT_MIN_DIVERSITY,
    DEFAULT_MIN_SUCCESS_RATE,
    DEFAULT_TOP_K,
    MAX_TOP_K,
    METRICS_NAMESPACE,
    hour_path,
)
from diversity_monitor.measures.response_path import DEFAULT_RESPONSE_PATH, compile_response_path

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


# Time a run needs outside the report notebook (start-up and preflight before it, the HTML and the
# metrics after it): the report timeout is the job's MaxRuntimeInSeconds less this, so the run
# fails with its own message before the platform stops it.
RUN_RESERVE_SECONDS = 120
DEFAULT_PERIOD_SECONDS = 3600  # without a job config: an hourly schedule's period, MaxRuntime's ceiling
# Share of the report timeout the replay may use; the rest is the capture pass, the figures, the files.
REPLAY_BUDGET_SHARE = 0.6
# Ceilings of the replay's knobs: far above any use, low enough that a typo fails by name.
MAX_CONCURRENCY = 1024  # calls in flight (threads, connections)
MAX_REPLAY_PROCESSES = 64
MAX_ATTEMPTS = 20


class ContractError(ValueError):
    """A missing or malformed contract input; the message names it."""


class _RaisingParser(argparse.ArgumentParser):
    """argparse that raises instead of printing and exiting, so the job can say why it failed.

    No abbreviations (`--top 3` must not quietly mean `--top-k 3`) and no `--help`: a job's
    ContainerArguments asking for usage is a misconfiguration, not a successful run.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(allow_abbrev=False, add_help=False, **kwargs)

    def error(self, message: str):
        raise ContractError(f"ContainerArguments: {message}")

    def parse_known_args(self, args=None, namespace=None):
        parsed, extra = super().parse_known_args(args, namespace)
        _check_argument_combinations(parsed)
        return parsed, extra


def _check_argument_combinations(args: argparse.Namespace) -> None:
    """Rules between arguments, for every parser of the run's arguments (schedule checks too)."""
    top_k, floor = getattr(args, "top_k", None), getattr(args, "min_diversity", None)
    if top_k is not None and floor is not None and floor > top_k:
        raise ContractError(
            f"ContainerArguments: --min-diversity {floor:g} is above --top-k {top_k}: a top-{top_k} list "
            f"holds at most {top_k} categories, so every run would violate the floor"
        )
    if getattr(args, "metrics_namespace", None) is not None and not getattr(args, "put_metric_data", False):
        raise ContractError(
            "ContainerArguments: --metrics-namespace is only used with --put-metric-data (under Model Monitor "
            "the platform chooses the namespace); add --put-metric-data or drop --metrics-namespace"
        )


def _positive_int(name: str, high: int | None = None):
    return whole_option(name, 1, high)


number_argument = number_option  # argparse type: a number in [low, high], or an error naming the argument


def _response_path(text: str) -> str:
    """Compiled when the arguments are parsed, so a bad expression fails before any replay."""
    try:
        compile_response_path(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _invoke_member(member: str, what: str):
    """A name InvokeEndpoint carries (EndpointName, TargetVariant), checked against its service model."""

    def parse(text: str) -> str:
        problem = invoke_name_problem(text, member)
        if problem:
            raise argparse.ArgumentTypeError(f"{what} {text!r} {problem}")
        return text

    return parse


def invoke_name_problem(text: str, member: str) -> str | None:
    """Why InvokeEndpoint's service model rejects `text` as `member`, or None."""
    if not text:
        return "is empty"
    shape = service_schema.operation_model("sagemaker-runtime", "InvokeEndpoint").input_shape.members[member]
    problems = service_schema.constraint_problems(text, shape)
    return f"is not valid for InvokeEndpoint's {member} ({problems[0][2]})" if problems else None


def schedule_name_problem(text: str) -> str | None:
    """Why `text` is no schedule name the platform could have given, or None.

    The MonitoringSchedule dimension is a Model Monitor schedule's name, or for the plain
    Processing path an EventBridge Scheduler schedule's: either service model's rules will do.
    Checked on every run, not only when publishing: the name is shown in the report too.
    """
    shapes = (service_schema.service_model("sagemaker").shape_for("MonitoringScheduleName"),
              service_schema.operation_model("scheduler", "CreateSchedule").input_shape.members["Name"])
    problems = [service_schema.constraint_problems(text, shape) for shape in shapes]
    if all(problems) or not 1 <= len(text) <= 64:
        return (f"is neither a Model Monitor schedule name ({problems[0][0][2] if problems[0] else 'too long'}) "
                f"nor an EventBridge Scheduler schedule name ({problems[1][0][2] if problems[1] else 'too long'})")
    return None


def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by `run`, `baseline` and `replay`: what to replay and how."""
    parser.add_argument("--validation-set", required=True, metavar="URI",
                        help="held-out sessions, JSON Lines (s3://... or a local path)")
    parser.add_argument("--catalog", required=True, metavar="URI",
                        help="article catalog: CSV (article_id,category,...) or JSON Lines")
    parser.add_argument("--top-k", type=_positive_int("--top-k", MAX_TOP_K), default=DEFAULT_TOP_K, metavar="K",
                        help="how many ranked articles count as the top list (default 10)")
    parser.add_argument("--response-path", type=_response_path, default=DEFAULT_RESPONSE_PATH, metavar="EXPR",
                        help=f"where the ranked article ids sit in the response (default {DEFAULT_RESPONSE_PATH})")
    parser.add_argument("--concurrency", type=_positive_int("--concurrency", MAX_CONCURRENCY), default=16, metavar="N",
                        help="replay calls in flight at once (default 16)")
    parser.add_argument("--replay-processes", type=_positive_int("--replay-processes", MAX_REPLAY_PROCESSES), default=1, metavar="N",
                        help="processes the calls in flight are spread over (default 1); botocore spends about "
                             "2 ms of CPU per call, so one process cannot replay faster than ~500 calls/s")
    parser.add_argument("--target-variant", type=_invoke_member("TargetVariant", "--target-variant"), default=None,
                        metavar="NAME",
                        help="send replay traffic to this production variant (InvokeEndpoint TargetVariant)")
    parser.add_argument("--invoke-timeout", type=number_argument("--invoke-timeout", 0.1, 3600), default=10.0,
                        metavar="SECONDS", help="wall-clock deadline of each call, the answer read whole (default 10); "
                                                "a call past it fails and is retried")
    parser.add_argument("--max-attempts", type=_positive_int("--max-attempts", MAX_ATTEMPTS), default=4, metavar="N",
                        help="attempts per session on throttling, 5xx and timeouts (default 4)")
    parser.add_argument("--replay-budget", type=number_argument("--replay-budget", 1, 86400), default=None,
                        metavar="SECONDS", help="longest the whole replay may take; sessions not replayed by then "
                                                f"count as failed (default for a run: {REPLAY_BUDGET_SHARE * 100:.0f}%% of "
                                                "the report timeout; otherwise none)")


endpoint_name_argument = _invoke_member("EndpointName", "endpoint name")


def run_argument_parser(prog: str = "diversity-monitor run") -> argparse.ArgumentParser:
    parser = _RaisingParser(prog=prog, description="Run one monitoring job under the Model Monitor contract.")
    add_run_arguments(parser)
    return parser


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    add_replay_arguments(parser)
    parser.add_argument("--min-diversity", type=number_argument("--min-diversity", 0, 1000), default=DEFAULT_MIN_DIVERSITY, metavar="N",
                        help="absolute floor for the mean categories per top-k (default 4)")
    parser.add_argument("--min-success-rate", type=number_argument("--min-success-rate", 0, 1), default=DEFAULT_MIN_SUCCESS_RATE,
                        metavar="RATE", help=f"replayed share below which diversity is not published (default {DEFAULT_MIN_SUCCESS_RATE:g})")
    add_limit_arguments(parser)
    parser.add_argument("--endpoint-name", type=endpoint_name_argument, default=None, metavar="NAME",
                        help="endpoint to replay against when not run by Model Monitor")
    parser.add_argument("--put-metric-data", action="store_true",
                        help="publish metrics with PutMetricData (plain Processing job; not with Model Monitor)")
    parser.add_argument("--metrics-namespace", default=None, metavar="NS",
                        help=f"namespace for --put-metric-data (default {METRICS_NAMESPACE})")
    parser.add_argument("--capture-s3-uri", default=None, metavar="URI",
                        help="the endpoint's DataCaptureConfig.DestinationS3Uri: a plain Processing job reads the window's "
                             "live traffic from there (Model Monitor stages it under dataset_source instead)")
    parser.add_argument("--output-hour-folder", action="store_true",
                        help="write the reports under <output_path>/yyyy/mm/dd/HH/ of end_time (UTC), Model Monitor's "
                             "layout, for a plain Processing job whose S3Output is <reports>/<endpoint>/<schedule>/")
    parser.add_argument("--live-window", type=number_argument("--live-window", 60, 86400), default=None,
                        metavar="SECONDS",
                        help="the live-traffic pass judges the last SECONDS of the analysis window (default: all of "
                             "it); the kit's schedules analyse a wider window than their period, so no quiet hour "
                             "stops the monitor, and pass their period here")
    parser.add_argument("--report-timeout", type=number_argument("--report-timeout", 1, 86400), default=None,
                        metavar="SECONDS",
                        help="longest the report notebook may run before the job fails (default: the job's "
                             f"StoppingCondition.MaxRuntimeInSeconds less {RUN_RESERVE_SECONDS} s, so it fires before "
                             f"the platform stops the job; {DEFAULT_PERIOD_SECONDS} s, an hourly period, without one)")


@dataclass(frozen=True)
class Limits:
    """Absolute bounds on cross-session sameness: they hold with or without a baseline, and every
    baseline bound is capped by them (a baseline built on a collapsed model cannot switch a check off).
    The hourly run, the baseline's constraints and the deploy gate all take them from these flags."""

    max_list_overlap: float = DEFAULT_MAX_LIST_OVERLAP
    max_top_list_share: float = DEFAULT_MAX_TOP_LIST_SHARE
    max_slot_share: float = DEFAULT_MAX_SLOT_SHARE

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Limits:
        return cls(args.max_list_overlap, args.max_top_list_share, args.max_slot_share)


LIMIT_ARGUMENTS = ("--max-list-overlap", "--max-top-list-share", "--max-slot-share")


def limit_arguments(limits: Limits) -> list[str]:
    """ContainerArguments for the limits that differ from the defaults (the job's defaults are the same)."""
    values = (limits.max_list_overlap, limits.max_top_list_share, limits.max_slot_share)
    defaults = (DEFAULT_MAX_LIST_OVERLAP, DEFAULT_MAX_TOP_LIST_SHARE, DEFAULT_MAX_SLOT_SHARE)
    return [item for flag, value, default in zip(LIMIT_ARGUMENTS, values, defaults) if value != default
            for item in (flag, f"{value:g}")]


def add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    """`--max-list-overlap`, `--max-top-list-share`, `--max-slot-share` (the run, the gate, the CLI)."""
    parser.add_argument("--max-list-overlap", type=number_argument("--max-list-overlap", 0, 1),
                        default=DEFAULT_MAX_LIST_OVERLAP, metavar="SHARE",
                        help=f"largest mean overlap |A n B|/k of two sessions' lists (default {DEFAULT_MAX_LIST_OVERLAP:g})")
    parser.add_argument("--max-top-list-share", type=number_argument("--max-top-list-share", 0, 1),
                        default=DEFAULT_MAX_TOP_LIST_SHARE, metavar="SHARE",
                        help=f"largest share of sessions served the one most common list (default {DEFAULT_MAX_TOP_LIST_SHARE:g})")
    parser.add_argument("--max-slot-share", type=number_argument("--max-slot-share", 0, 1),
                        default=DEFAULT_MAX_SLOT_SHARE, metavar="SHARE",
                        help=f"largest share of lists showing a slot's most common article (default {DEFAULT_MAX_SLOT_SHARE:g})")


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
    processes: int = 1  # --concurrency calls in flight, spread over this many processes
    budget: float | None = None  # seconds the whole replay may take (None: no limit)


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
    output_hour_folder: bool = False
    capture_source: str | None = None  # s3://.../<endpoint>/: the live pass's capture when nothing staged it
    live_window: float | None = None  # seconds at the end of the analysis window the live pass judges
    limits: Limits = field(default_factory=Limits)
    # The record of what this run was given: the documented platform variables as set, and the
    # ContainerArguments. Nothing else from the environment (see the module doc).
    platform_environment: dict[str, str] = field(default_factory=dict)
    container_arguments: tuple[str, ...] = ()

    @property
    def report_folder(self) -> Path:
        """Where every output file goes: output_path, or its yyyy/mm/dd/HH/ of end_time (--output-hour-folder)."""
        if not self.output_hour_folder:
            return self.output_path
        if self.end_time is None:  # load_context refuses this; a hand-made context may not
            raise ContractError(f"--output-hour-folder needs environment variable {ENV_END}")
        return self.output_path / hour_path(self.end_time)

    def to_parameters(self) -> dict:
        """JSON-ready form (papermill parameters, parameters.json)."""
        return json.loads(json.dumps(asdict(self), default=str))

    @classmethod
    def from_parameters(cls, parameters: Mapping) -> MonitoringContext:
        values = dict(parameters)
        for key in ("start_time", "end_time", "metric_time"):
            values[key] = parse_instant(values[key]) if values.get(key) else None
        for key in ("output_path", "dataset_source", "baseline_statistics", "baseline_constraints"):
            values[key] = Path(values[key]) if values.get(key) else None
        values["replay"] = ReplaySettings(**values["replay"])
        values["limits"] = Limits(**values.get("limits", {}))
        values["container_arguments"] = tuple(values.get("container_arguments", ()))
        return cls(**values)


# The variables the platform documents (platform-facts.md), the only ones a run records.
PLATFORM_ENV = (
    ENV_DATASET_FORMAT, ENV_DATASET_SOURCE, ENV_OUTPUT, ENV_PUBLISH, ENV_ENDPOINT, ENV_SCHEDULE,
    ENV_START, ENV_END, ENV_METRIC_TIME, ENV_BASELINE_STATISTICS, ENV_BASELINE_CONSTRAINTS,
)


def under_contract(env: Mapping[str, str] | None = None) -> bool:
    """True inside a Model Monitor or Processing job: a platform variable or the job config is there."""
    env = os.environ if env is None else env
    if any(env.get(name) for name in PLATFORM_ENV):
        return True
    return container_paths.resolve(container_paths.PROCESSING_JOB_CONFIG).is_file()


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
    from diversity_monitor.job import metrics_file as cloudwatch  # its limits define a valid metric

    env = os.environ if env is None else env
    args = run_argument_parser().parse_args(arguments)

    endpoint = env.get(ENV_ENDPOINT) or args.endpoint_name
    if not endpoint:
        raise ContractError(
            f"no endpoint to monitor: environment variable {ENV_ENDPOINT} is not set and --endpoint-name was not given"
        )
    problem = invoke_name_problem(endpoint, "EndpointName")
    if problem:
        raise ContractError(f"environment variable {ENV_ENDPOINT}={endpoint!r} {problem}")
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
    namespace = args.metrics_namespace or METRICS_NAMESPACE
    schedule = env.get(ENV_SCHEDULE) or None
    problem = schedule_name_problem(schedule) if schedule is not None else None
    if problem:
        raise ContractError(f"environment variable {ENV_SCHEDULE}={schedule!r} {problem}")
    if publish or args.put_metric_data:
        try:
            cloudwatch.check_namespace(namespace)
            cloudwatch.dimensions(endpoint, schedule)
        except cloudwatch.MetricsError as error:
            how = f"{ENV_PUBLISH}=Enabled" if publish else "--put-metric-data"
            raise ContractError(f"metrics are published ({how}) but {error}") from None
    output = env.get(ENV_OUTPUT) or str(container_paths.PROCESSING_OUTPUT)
    start, end = _instant(env, ENV_START), _instant(env, ENV_END)
    if start and end and start >= end:
        raise ContractError(f"{ENV_START}={env[ENV_START]} is not before {ENV_END}={env[ENV_END]}")
    if args.output_hour_folder and end is None:
        raise ContractError(
            f"--output-hour-folder writes under yyyy/mm/dd/HH/ of {ENV_END}, but environment variable {ENV_END} "
            "is not set (a scheduled Processing job passes the scheduled time there)"
        )
    statistics = _existing_file(env, ENV_BASELINE_STATISTICS)
    constraints = _existing_file(env, ENV_BASELINE_CONSTRAINTS)
    if statistics and not constraints:
        # The report would draw the baseline while nothing is checked against it: a baseline that
        # looks configured but guards nothing. Stage constraints.json too, or no baseline at all.
        raise ContractError(
            f"environment variable {ENV_BASELINE_STATISTICS} is set but {ENV_BASELINE_CONSTRAINTS} is not: "
            "without constraints.json nothing would be checked against the baseline "
            "(set BaselineConfig.ConstraintsResource, or drop the baseline)"
        )
    source = env.get(ENV_DATASET_SOURCE)
    capture_source = None
    if args.capture_s3_uri:
        if source:
            raise ContractError(f"--capture-s3-uri and {ENV_DATASET_SOURCE} were both given: the window's capture "
                                "is staged by Model Monitor; drop --capture-s3-uri under Model Monitor")
        if not args.capture_s3_uri.startswith("s3://") or end is None:
            raise ContractError(f"--capture-s3-uri {args.capture_s3_uri!r} needs an s3:// URI and environment variable "
                                f"{ENV_END} (the window ends there)")
        capture_source = f"{args.capture_s3_uri.rstrip('/')}/{endpoint}/"
        # The window Model Monitor would stage for an hourly schedule (setup/schedule.analysis_window_config):
        # the live period plus the extra hours, so both paths read and report the same window.
        period = timedelta(seconds=args.live_window or DEFAULT_PERIOD_SECONDS)
        start = start or end - min(period + timedelta(hours=ANALYSIS_WINDOW_EXTRA_HOURS), timedelta(hours=24))
    report_timeout = _report_timeout(args.report_timeout)
    replay = replay_settings(args)
    if replay.budget is None:
        replay = replace(replay, budget=round(report_timeout * REPLAY_BUDGET_SHARE, 3))
    elif replay.budget >= report_timeout:
        raise ContractError(f"ContainerArguments: --replay-budget {replay.budget:g} is not below the report timeout "
                            f"({report_timeout:g} s): the replay must end while the report can still be written")
    return MonitoringContext(
        endpoint_name=endpoint,
        schedule_name=schedule,
        start_time=start,
        end_time=end,
        metric_time=_instant(env, ENV_METRIC_TIME),
        output_path=container_paths.resolve(output),
        dataset_source=container_paths.resolve(source) if source else None,
        publish_cloudwatch_metrics=publish,
        put_metric_data=args.put_metric_data,
        metrics_namespace=namespace,
        baseline_statistics=statistics,
        baseline_constraints=constraints,
        min_diversity=args.min_diversity,
        min_success_rate=args.min_success_rate,
        report_timeout=report_timeout,
        replay=replay,
        output_hour_folder=args.output_hour_folder,
        capture_source=capture_source,
        live_window=args.live_window,
        limits=Limits.from_args(args),
        platform_environment={name: env[name] for name in PLATFORM_ENV if env.get(name) is not None},
        container_arguments=tuple(arguments),
    )


def job_max_runtime() -> float | None:
    """StoppingCondition.MaxRuntimeInSeconds from /opt/ml/config/processingjobconfig.json, if the job has one."""
    path = container_paths.resolve(container_paths.PROCESSING_JOB_CONFIG)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise ContractError(f"{container_paths.PROCESSING_JOB_CONFIG} cannot be read: {error}") from None
    value = (config.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds") if isinstance(config, dict) else None
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise ContractError(f"{container_paths.PROCESSING_JOB_CONFIG}: StoppingCondition.MaxRuntimeInSeconds "
                            f"must be a positive number, got {value!r}")
    return float(value)


def _report_timeout(given: float | None) -> float:
    """The report's timeout: given, or derived from the job's MaxRuntimeInSeconds so it fires first."""
    max_runtime = job_max_runtime()
    ceiling = (max_runtime if max_runtime is not None else DEFAULT_PERIOD_SECONDS) - RUN_RESERVE_SECONDS
    if given is None:
        if ceiling < 60:
            raise ContractError(f"StoppingCondition.MaxRuntimeInSeconds {max_runtime:g} leaves under a minute for "
                                f"the report after {RUN_RESERVE_SECONDS} s for start-up and publishing")
        return float(ceiling)
    if max_runtime is not None and given > ceiling:
        raise ContractError(
            f"ContainerArguments: --report-timeout {given:g} cannot fire before the platform stops the job "
            f"(StoppingCondition.MaxRuntimeInSeconds {max_runtime:g} less {RUN_RESERVE_SECONDS} s for start-up and "
            f"publishing is {ceiling:g}); lower it or drop it to use that")
    return given


def replay_settings(args: argparse.Namespace) -> ReplaySettings:
    if args.replay_processes > args.concurrency:
        raise ContractError(
            f"--replay-processes {args.replay_processes} is more than --concurrency {args.concurrency}: "
            "each process needs at least one call in flight"
        )
    return ReplaySettings(
        validation_set=args.validation_set,
        catalog=args.catalog,
        top_k=args.top_k,
        response_path=args.response_path,
        concurrency=args.concurrency,
        target_variant=args.target_variant,
        invoke_timeout=args.invoke_timeout,
        max_attempts=args.max_attempts,
        processes=args.replay_processes,
        budget=args.replay_budget,
    )


def replay_settings_for(validation_set: str, catalog: str, **options: object) -> ReplaySettings:
    """ReplaySettings as the command line would build them: its defaults, its checks.

    `options` are the other replay arguments by their settings names (top_k=10,
    target_variant="canary"...); None leaves the default. For notebooks and code that replay
    without a command line, so every default lives in `add_replay_arguments` only.
    """
    parser = _RaisingParser(prog="replay settings")
    add_replay_arguments(parser)
    arguments = ["--validation-set", validation_set, "--catalog", catalog]
    known = {action.dest: action.option_strings[0] for action in parser._actions if action.option_strings}
    for name, value in options.items():
        if name not in known or name in ("validation_set", "catalog"):
            settable = sorted(set(known) - {"help", "validation_set", "catalog"})
            raise ContractError(f"{name!r} is not a replay setting ({', '.join(settable)})")
        if value is not None:
            arguments += [known[name], str(value)]
    return replay_settings(parser.parse_args(arguments))


def write_message(text: str) -> Path:
    """`/opt/ml/output/message`: the first 1 KB becomes the job's ExitMessage."""
    path = container_paths.resolve(container_paths.OUTPUT_MESSAGE)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")[:1024].decode("utf-8", errors="ignore")  # never split a character
    path.write_text(data, encoding="utf-8")
    return path

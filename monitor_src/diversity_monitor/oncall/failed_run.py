"""The failed-job runbook's library: which run failed, why, and how to run that hour again.

`runbooks/monitor_job_failed.ipynb` calls these in order, all plain boto3:

- `executions_frame` / `missing_runs` / `replay_failures`: ListMonitoringExecutions for the schedule
  against the runs its cron expression should have started (runs may start up to 20 minutes late),
  and the runs that completed but could not replay enough sessions (a `completeness_check`
  violation on the replay success rate: an endpoint that is down or failing). Those are what the
  monitor-health alarm pages on, so they count as failed monitoring runs here;
- `execution_view`: one run's status, FailureReason, and (when a Processing job ran)
  DescribeProcessingJob's FailureReason / ExitMessage, its window and its output prefix with
  whatever the run left there (a partial report notebook, when the container uploaded one);
- `run_checks`: one check per usual cause (`CHECKS`): captured data in the window's hour
  folders, the endpoint InService and answering one test invocation, the baseline objects, the
  validation set and catalog; an AccessDenied from any of them is reported as a permissions
  problem rather than a missing object;
- `diagnose`: the cause (`CAUSES`, matched on the failure text first, then on the failed
  checks) and what to do about it;
- `rerun_request` / `start_rerun`: a one-off schedule (`NOW` with DataAnalysisStartTime/EndTime
  offsets that put the window on the hour to re-run) with the schedule's own job definition.
  Its report lands under the one-off schedule's name and its metrics carry that name as the
  `MonitoringSchedule` dimension, so it never feeds the hourly alarms.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import boto3
import pandas as pd
from botocore.exceptions import BotoCoreError, ClientError

from diversity_monitor import storage
from diversity_monitor.aws import service_schema
from diversity_monitor.aws.schedule_expression import Window, analysis_window, format_offset, parse_schedule_expression
from diversity_monitor.aws.session import SetupError
from diversity_monitor.capture.source import CaptureSourceError, list_capture_files
from diversity_monitor.clock import as_utc, iso_z, parse_instant, utcnow
from diversity_monitor.conventions import (
    ANALYSIS_WINDOW_EXTRA_HOURS,
    MAX_JSON_DOCUMENT_BYTES,
    NO_CAPTURE_FAILURE,
    REPLAY_INFERENCE_PREFIX,
    SUCCESS_RATE_METRIC,
    VIOLATIONS_FILE,
    endpoint_of,
    hour_path,
    report_hour_prefix,
    reports_uri_of,
)
from diversity_monitor.job import contract
from diversity_monitor.job.inputs import InputError, load_validation_set
from diversity_monitor.job.replay import EndpointReplayer

LATE_START = timedelta(minutes=20)  # "runs may start 0-20 minutes late" (platform facts)
NO_DATA = NO_CAPTURE_FAILURE
ACCESS_DENIED = {"AccessDenied", "AccessDeniedException", "AccessDeniedError", "UnauthorizedOperation", "403", "Forbidden"}
RERUN_SUFFIX = "-rerun-"
BEFORE_SCHEDULE = "Not scheduled (before the schedule existed)"
MAX_SCHEDULE_NAME = 63


class DiagnosisError(SetupError):
    """The runbook cannot go on; the message says what is missing (shown without a traceback)."""


NOTHING_TO_DIAGNOSE = ("**NOTHING TO DIAGNOSE**: every run of `{schedule}` in the hours looked at completed and replayed "
                       "(no failed, replay-failed or missing run). If you were paged, the monitor-health alarm may "
                       "already be back to OK; to look at one run, give `scheduled_time`; to look further back, raise "
                       "`lookback_hours`.")


# --- the schedule and its executions ---------------------------------------------------------

def _in_utc(record: dict, *fields: str) -> dict:
    """The record with its timestamps in UTC (botocore gives the machine's zone; hours and cron are UTC)."""
    return {**record, **{name: as_utc(record[name]) for name in fields if record.get(name) is not None}}


def describe_schedule(schedule_name: str) -> dict:
    sagemaker = boto3.client("sagemaker")
    try:
        described = sagemaker.describe_monitoring_schedule(MonitoringScheduleName=schedule_name)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("ResourceNotFound", "ValidationException"):
            raise
        names = [item["MonitoringScheduleName"] for item in
                 sagemaker.list_monitoring_schedules(MaxResults=100).get("MonitoringScheduleSummaries", [])]
        raise DiagnosisError(f"monitoring schedule {schedule_name!r} does not exist in {sagemaker.meta.region_name}: "
                             f"fix schedule_name (schedules there: {', '.join(names) or 'none'})") from None
    return _in_utc(described, "CreationTime", "LastModifiedTime")


def job_definition(schedule: dict) -> dict:
    definition = schedule["MonitoringScheduleConfig"].get("MonitoringJobDefinition")
    if not definition:
        raise DiagnosisError(f"schedule {schedule['MonitoringScheduleName']} has no inline MonitoringJobDefinition")
    return definition


def executions(schedule_name: str, start: datetime, end: datetime) -> list[dict]:
    """Every execution scheduled in [start, end], oldest first."""
    paginator = boto3.client("sagemaker").get_paginator("list_monitoring_executions")
    found = []
    for page in paginator.paginate(MonitoringScheduleName=schedule_name, ScheduledTimeAfter=start - timedelta(seconds=1),
                                   ScheduledTimeBefore=end + timedelta(seconds=1), SortBy="ScheduledTime",
                                   SortOrder="Ascending", PaginationConfig={"PageSize": 100}):
        found.extend(_in_utc(item, "ScheduledTime", "CreationTime", "LastModifiedTime")
                     for item in page["MonitoringExecutionSummaries"])
    return found


def expected_runs(schedule: dict, start: datetime, end: datetime) -> list[datetime]:
    """Times the schedule should have fired in [start, end] (from its creation on)."""
    cadence = parse_schedule_expression(schedule["MonitoringScheduleConfig"]["ScheduleConfig"]["ScheduleExpression"])
    # A schedule first fires after it is created, never at the instant it is created.
    created = as_utc(schedule["CreationTime"])
    return cadence.runs_between(created if created >= start else start - timedelta(seconds=1), end)


def missing_runs(schedule: dict, found: list[dict], start: datetime, end: datetime) -> list[datetime]:
    """Runs that should exist by now (allowing the platform's late start) but do not."""
    seen = {item["ScheduledTime"] for item in found}
    return [run for run in expected_runs(schedule, start, end - LATE_START) if run not in seen]


def reports_prefix(schedule: dict, scheduled: datetime) -> str:
    """Where the run at `scheduled` left its report (Model Monitor's layout)."""
    definition = job_definition(schedule)
    return report_hour_prefix(reports_uri_of(definition), endpoint_of(definition), schedule["MonitoringScheduleName"],
                              scheduled)


def replay_problems(prefix: str) -> tuple[str, ...]:
    """The run's violations saying it could not replay enough sessions (none when it has no violations file)."""
    uri = f"{prefix}/{VIOLATIONS_FILE}"
    if not storage.exists(uri):
        return ()
    document = json.loads(storage.read_text(uri))
    return tuple(v.get("description", "") for v in document.get("violations", [])
                 if v.get("feature_name") == SUCCESS_RATE_METRIC and v.get("constraint_check_type") == "completeness_check")


def replay_failures(schedule: dict, found: list[dict]) -> dict[datetime, tuple[str, ...]]:
    """Completed runs whose replay fell below the success threshold, with what their report says."""
    failures = {}
    for item in found:
        if item["MonitoringExecutionStatus"] == "CompletedWithViolations":
            problems = replay_problems(reports_prefix(schedule, item["ScheduledTime"]))
            if problems:
                failures[item["ScheduledTime"]] = problems
    return failures


def executions_frame(found: list[dict], missing: list[datetime],
                     replay_failed: dict[datetime, tuple[str, ...]] | None = None) -> pd.DataFrame:
    replay_failed = replay_failed or {}
    rows = [{"scheduled": item["ScheduledTime"],
             "status": item["MonitoringExecutionStatus"] + (" (REPLAY FAILED: monitor blind)"
                                                            if item["ScheduledTime"] in replay_failed else ""),
             "failure reason": item.get("FailureReason", "") or "; ".join(replay_failed.get(item["ScheduledTime"], ())),
             "processing job": item.get("ProcessingJobArn", "").rsplit("/", 1)[-1]} for item in found]
    rows += [{"scheduled": run, "status": "MISSING (never started)", "failure reason": "", "processing job": ""}
             for run in missing]
    frame = pd.DataFrame(rows, columns=["scheduled", "status", "failure reason", "processing job"])
    return frame.sort_values("scheduled").reset_index(drop=True)


# --- one execution ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExecutionView:
    schedule_name: str
    endpoint_name: str
    scheduled: datetime
    status: str  # MonitoringExecutionStatus, or "Missing"
    failure_reason: str
    job_name: str | None
    job_status: str | None
    exit_message: str
    window_start: datetime
    window_end: datetime
    output_prefix: str
    output_files: tuple[str, ...]
    replay_problems: tuple[str, ...] = ()  # completeness_check on the replay success rate

    @property
    def partial_notebook(self) -> str | None:
        return next((uri for uri in self.output_files if uri.endswith("/report.ipynb")), None)

    @property
    def failure_text(self) -> str:
        return " ".join(part for part in (self.failure_reason, self.exit_message, *self.replay_problems) if part)


def pick_execution(found: list[dict], missing: list[datetime], scheduled_time: str | datetime | None,
                   schedule_name: str | None = None,
                   replay_failed: dict[datetime, tuple[str, ...]] | None = None) -> tuple[datetime | None, dict | None]:
    """The run to diagnose: the one asked for, else the latest failed, replay-failed or missing one;
    `(None, None)` when there is none (a healthy schedule: the rest of the runbook says so).

    A run asked for by time that is not among `found` (older than the lookback) is looked up
    on its own when `schedule_name` is given, so it is never reported missing by mistake.
    """
    if scheduled_time is not None:
        wanted = as_utc(parse_instant(scheduled_time) if isinstance(scheduled_time, str) else scheduled_time)
        match = next((item for item in found if item["ScheduledTime"] == wanted), None)
        if match is None and schedule_name:
            match = next(iter(executions(schedule_name, wanted, wanted)), None)
        return wanted, match
    failed = [(item["ScheduledTime"], item) for item in found
              if item["MonitoringExecutionStatus"] in ("Failed", "Stopped") or item["ScheduledTime"] in (replay_failed or {})]
    candidates = failed + [(run, None) for run in missing]
    if not candidates:
        return None, None
    return max(candidates, key=lambda pair: pair[0])


def window_of(schedule: dict, scheduled: datetime) -> Window:
    """The window a run at `scheduled` analyses (the schedule's DataAnalysis offsets, default the hour before)."""
    return analysis_window(schedule["MonitoringScheduleConfig"]["ScheduleConfig"], scheduled)


def execution_view(schedule: dict, scheduled: datetime | None, execution: dict | None) -> ExecutionView | None:
    """What is known of the run at `scheduled`; None when there is no run to diagnose."""
    if scheduled is None:
        return None
    definition = job_definition(schedule)
    endpoint = endpoint_of(definition)
    scheduled = as_utc(scheduled)
    job, job_name = {}, None
    if execution and execution.get("ProcessingJobArn"):
        job_name = execution["ProcessingJobArn"].rsplit("/", 1)[-1]
        job = boto3.client("sagemaker").describe_processing_job(ProcessingJobName=job_name)
    window = window_of(schedule, scheduled)
    window_start, window_end = window.start, window.end
    environment = job.get("Environment", {})
    if environment.get("start_time") and environment.get("end_time"):
        window_start, window_end = parse_instant(environment["start_time"]), parse_instant(environment["end_time"])
    outputs = (job.get("ProcessingOutputConfig") or {}).get("Outputs", [])
    output_prefix = outputs[0]["S3Output"]["S3Uri"].rstrip("/") if outputs else reports_prefix(schedule, scheduled)
    return ExecutionView(
        schedule_name=schedule["MonitoringScheduleName"],
        endpoint_name=endpoint,
        scheduled=scheduled,
        status=execution["MonitoringExecutionStatus"] if execution else (
            "Missing" if scheduled > schedule["CreationTime"] else BEFORE_SCHEDULE),
        failure_reason=(execution or {}).get("FailureReason") or job.get("FailureReason", ""),
        job_name=job_name,
        job_status=job.get("ProcessingJobStatus"),
        exit_message=job.get("ExitMessage", ""),
        window_start=window_start,
        window_end=window_end,
        output_prefix=output_prefix,
        output_files=tuple(storage.list_objects(output_prefix + "/")),
        replay_problems=replay_problems(output_prefix),
    )


def execution_markdown(view: ExecutionView | None, schedule: dict) -> str:
    if view is None:
        return NOTHING_TO_DIAGNOSE.format(schedule=schedule["MonitoringScheduleName"])
    lines = [
        f"**Run {iso_z(view.scheduled)} of `{view.schedule_name}` (endpoint `{view.endpoint_name}`): {view.status}**",
        f"- FailureReason: `{view.failure_reason or 'none'}`",
        f"- Processing job: `{view.job_name or 'none: no container ran'}` ({view.job_status or 'n/a'}); "
        f"ExitMessage: `{view.exit_message or 'none'}`",
        f"- Window analysed: {iso_z(view.window_start)} to {iso_z(view.window_end)}",
        f"- Output prefix: `{view.output_prefix}`: "
        + (f"{len(view.output_files)} file(s)" if view.output_files else "empty (nothing was uploaded)"),
    ]
    if view.replay_problems:
        lines.insert(1, "- **The run completed but the monitor was blind**: " + "; ".join(view.replay_problems))
    if view.partial_notebook:
        lines.append(f"- Executed (possibly partial) report notebook: `{view.partial_notebook}`: open it and scroll "
                     "to the first cell with an error")
    elif view.job_name:
        lines.append(f"- No report notebook was uploaded; the container log is in CloudWatch Logs, log group "
                     f"`/aws/sagemaker/ProcessingJobs`, stream prefix `{view.job_name}/`")
    if view.status == "Stopped" or view.job_status == "Stopped":
        limit = job_definition(schedule).get("StoppingCondition", {}).get("MaxRuntimeInSeconds")
        lines.append(f"- **Stopped, not failed**: the job ran past StoppingCondition.MaxRuntimeInSeconds "
                     f"({limit if limit is not None else 'the default'} s) or someone stopped it (StopProcessingJob). Nothing "
                     "was uploaded and no metric published. If it ran out of time: raise MaxRuntimeInSeconds (at most the "
                     "schedule's period) or make the run shorter, then re-run the hour (below)")
    if view.status == BEFORE_SCHEDULE:
        lines.append(f"- The schedule was created at {iso_z(schedule['CreationTime'])}: no run was due then; "
                     "a re-run (below) can still analyse that hour's window")
    if view.status == "Missing":
        lines.append(f"- Schedule status now: `{schedule['MonitoringScheduleStatus']}`"
                     + (f" ({schedule.get('FailureReason')})" if schedule.get("FailureReason") else "")
                     + ": a Stopped or Failed schedule starts no runs (StartMonitoringSchedule resumes it)")
    return "\n".join(lines)


# --- the checks, one per usual cause -------------------------------------------------------------

@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    access_denied: bool = False


@dataclass(frozen=True)
class CheckContext:
    view: ExecutionView
    schedule: dict

    @property
    def definition(self) -> dict:
        return job_definition(self.schedule)

    def container_arguments(self):
        arguments = list(self.definition["MonitoringAppSpecification"].get("ContainerArguments", []))
        return contract.run_argument_parser().parse_args(arguments)


def _denied(error: BaseException) -> bool:
    """An AccessDenied from AWS, directly or as the cause of one of the kit's errors."""
    while error is not None:
        if isinstance(error, ClientError):
            return error.response.get("Error", {}).get("Code", "") in ACCESS_DENIED
        error = error.__cause__
    return False


def check_capture(ctx: CheckContext) -> CheckResult:
    """Captured objects in each hour folder of the window, per variant."""
    endpoint = boto3.client("sagemaker").describe_endpoint(EndpointName=ctx.view.endpoint_name)
    capture = endpoint.get("DataCaptureConfig") or {}
    if not capture.get("EnableCapture"):
        return CheckResult("captured data in the window", False,
                           f"capture is OFF on {ctx.view.endpoint_name} (config {endpoint['EndpointConfigName']}): the "
                           "live config has no DataCaptureConfig, so every run fails with no data")
    window = Window(ctx.view.window_start, ctx.view.window_end)
    counts = []
    for variant in (v["VariantName"] for v in endpoint.get("ProductionVariants", [])):
        root = storage.join(capture["DestinationS3Uri"], ctx.view.endpoint_name, variant)
        try:
            files = list_capture_files(root, window.start, window.end).files
        except CaptureSourceError as error:
            raise storage.StorageError(str(error)) from error.__cause__
        for hour in window.hours():
            counts.append((storage.join(root, hour_path(hour)), sum(f.hour == hour for f in files)))
    total = sum(count for _, count in counts)
    listing = "; ".join(f"{prefix}/: {count} object(s)" for prefix, count in counts)
    return CheckResult("captured data in the window", total > 0,
                       f"{total} capture file(s) ({listing}); capture {capture.get('CaptureStatus', 'on')} at "
                       f"{capture.get('CurrentSamplingPercentage')}%")


def check_endpoint(ctx: CheckContext) -> CheckResult:
    """InService, and one real invocation with the first validation session answers."""
    sagemaker = boto3.client("sagemaker")
    try:
        endpoint = sagemaker.describe_endpoint(EndpointName=ctx.view.endpoint_name)
    except ClientError as error:
        if _denied(error):
            raise
        return CheckResult("endpoint reachable", False, f"DescribeEndpoint: {error.response['Error'].get('Message')}")
    if endpoint["EndpointStatus"] != "InService":
        return CheckResult("endpoint reachable", False, f"status {endpoint['EndpointStatus']}: "
                                                        f"{endpoint.get('FailureReason', 'no FailureReason')}")
    args = ctx.container_arguments()
    session = load_validation_set(args.validation_set)[0]
    outcome = EndpointReplayer(ctx.view.endpoint_name, contract.replay_settings(args), "diagnosis").replay_one(session)
    if outcome.error:
        return CheckResult("endpoint reachable", False, f"InService, but a test invocation failed: {outcome.error}",
                           access_denied="AccessDenied" in outcome.error)
    return CheckResult("endpoint reachable", True, f"InService on {endpoint['EndpointConfigName']}; a test invocation "
                                                   f"returned {len(outcome.article_ids)} articles")


def check_baseline(ctx: CheckContext) -> CheckResult:
    baseline = ctx.definition.get("BaselineConfig") or {}
    uris = [(baseline.get(key) or {}).get("S3Uri") for key in ("StatisticsResource", "ConstraintsResource")]
    uris = [uri for uri in uris if uri]
    if not uris:
        return CheckResult("baseline exists", True, "the schedule has no BaselineConfig (only the floor is checked)")
    missing = [uri for uri in uris if not storage.exists(uri)]
    return CheckResult("baseline exists", not missing,
                       f"missing: {', '.join(missing)}" if missing else f"found: {', '.join(uris)}")


def check_inputs(ctx: CheckContext) -> CheckResult:
    try:
        args = ctx.container_arguments()
    except contract.ContractError as error:
        return CheckResult("validation set and catalog", False, str(error))
    missing = [uri for uri in (args.validation_set, args.catalog) if not storage.exists(uri)]
    if missing:
        return CheckResult("validation set and catalog", False, f"missing: {', '.join(missing)}")
    try:
        sessions = load_validation_set(args.validation_set)
    except InputError as error:
        return CheckResult("validation set and catalog", False, str(error))
    return CheckResult("validation set and catalog", True, f"{len(sessions)} sessions in {args.validation_set}; "
                                                           f"catalog {args.catalog} exists")


CHECKS: dict[str, Callable[[CheckContext], CheckResult]] = {
    "capture": check_capture,
    "endpoint": check_endpoint,
    "baseline": check_baseline,
    "inputs": check_inputs,
}


def run_checks(view: ExecutionView | None, schedule: dict) -> dict[str, CheckResult]:
    """Every check; an AccessDenied (or any AWS error) is a result, never an exception. None: no run, no checks."""
    if view is None:
        return {}
    ctx, results = CheckContext(view, schedule), {}
    for key, check in CHECKS.items():
        try:
            results[key] = check(ctx)
        except (ClientError, BotoCoreError, storage.StorageError, InputError, contract.ContractError) as error:
            denied = _denied(error)
            name = check.__doc__.splitlines()[0] if check.__doc__ else key
            results[key] = CheckResult(key, False, f"{'ACCESS DENIED: ' if denied else ''}{error} ({name})", denied)
    denied = [r.name for r in results.values() if r.access_denied]
    results["permissions"] = CheckResult(
        "permissions", not denied,
        f"AccessDenied in: {', '.join(denied)}: this role cannot read what the job needs" if denied
        else "no AccessDenied from S3 or SageMaker in the checks above")
    return results


def checks_frame(results: dict[str, CheckResult]) -> pd.DataFrame:
    return pd.DataFrame([{"check": r.name, "result": "ok" if r.ok else "FAILED", "detail": r.detail}
                         for r in results.values()], columns=["check", "result", "detail"])


def checks_markdown(results: dict[str, CheckResult]) -> str:
    """One line per check, failures in bold: details are long (S3 prefixes), so not a table."""
    if not results:
        return "No checks: no run to diagnose."
    return "\n".join(f"- {'ok' if r.ok else '**FAILED**'}: {r.name}: {r.detail}" for r in results.values())


# --- the cause ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cause:
    key: str
    title: str
    pattern: str  # regex on FailureReason + ExitMessage
    check: str  # the CHECKS key that confirms it
    fix: str


# Order matters: the first cause whose pattern matches wins (AccessDenied mentions the object it
# could not read, a baseline failure mentions S3).
CAUSES: tuple[Cause, ...] = (
    Cause("permissions", "Permissions: the job's role was denied", r"AccessDenied|Access Denied|not authorized",
          "permissions", "Give the schedule's RoleArn s3:GetObject/ListBucket on the capture, baseline, validation and "
                         "catalog prefixes, s3:PutObject on the reports prefix and sagemaker:InvokeEndpoint on the endpoint."),
    Cause("baseline", "Baseline missing or unreadable", r"baseline", "baseline",
          "Build the baseline (`diversity-monitor baseline ... --output <the BaselineConfig folder>`) or point the "
          "schedule's BaselineConfig at an existing one (notebooks/03_create_schedule_and_alarm.ipynb)."),
    Cause("inputs", "Validation set or catalog missing or malformed", r"bad input|--validation-set|--catalog",
          "inputs", "Restore the file named in the message (the schedule's ContainerArguments say where), then re-run the hour."),
    Cause("no_data", "No captured data in the window: the no-data loop",
          r"Job inputs had no data|data capture enabled|No S3 objects found under S3 URL .*endpoint-input",
          "capture", "Not harmless: with no capture in the window no container starts, so no replay runs, so the "
                     "next window holds none of the monitor's traffic either, and the monitor stays blind by itself. "
                     "Section 6 tells a quiet endpoint (restart the loop with one replay) from a production endpoint "
                     "that lost its capture (the live endpoint config needs DataCaptureConfig: "
                     "notebooks/01_enable_data_capture.ipynb)."),
    Cause("endpoint", "Endpoint unreachable or failing",
          r"Could not find endpoint|endpoint.*(not found|Failed)|completeness_check|sessions replayed|ModelError|EndpointConnection",
          "endpoint", "The recommender itself is down or erroring: that is the incident (check the endpoint's "
                      "CloudWatch metrics and logs); the monitor recovers by itself once it answers."),
    Cause("stopped", "The run was stopped (MaxRuntimeInSeconds reached, or stopped by hand)", r"stopped by SIG",
          "endpoint", "A slow replay or report: check the endpoint's latency; the report timeout and the replay budget "
                      "derive from MaxRuntimeInSeconds, so a run that hits them reports incompleteness instead."),
    Cause("report", "The report notebook failed", r"report notebook|papermill|kernel", "inputs",
          "Open the partial report notebook in the output prefix; the first cell with an error names the problem."),
    Cause("timeout", "The run took longer than MaxRuntimeInSeconds", r"MaxRuntimeInSeconds", "endpoint",
          "Slow endpoint: check its latency; or lower --concurrency / raise --invoke-timeout within the period."),
)


@dataclass(frozen=True)
class Diagnosis:
    cause: Cause | None
    evidence: str


def diagnose(view: ExecutionView | None, results: dict[str, CheckResult]) -> Diagnosis | None:
    if view is None:
        return None
    text = view.failure_text
    for cause in CAUSES:
        if text and re.search(cause.pattern, text, re.IGNORECASE):
            check = results.get(cause.check)
            confirmed = f"; check '{check.name}': {'FAILED' if not check.ok else 'ok'}: {check.detail}" if check else ""
            return Diagnosis(cause, f"the failure says `{text[:300]}`{confirmed}")
    failed = [(cause, results[cause.check]) for cause in CAUSES if cause.check in results and not results[cause.check].ok]
    if failed:
        cause, check = failed[0]
        return Diagnosis(cause, f"check '{check.name}' failed: {check.detail}")
    if view.status == "Missing":
        return Diagnosis(None, "the run never started and every check passes: look at the schedule's status above "
                               "(Stopped/Failed) and whether it existed at that hour")
    return Diagnosis(None, f"no usual cause matches `{text or view.status}`; every check passes: read the container log")


def diagnosis_markdown(diagnosis: Diagnosis | None) -> str:
    if diagnosis is None:
        return "**NOTHING TO DIAGNOSE**: no failed, replay-failed or missing run."
    if diagnosis.cause is None:
        return f"**CAUSE UNKNOWN**: {diagnosis.evidence}."
    return (f"**LIKELY CAUSE: {diagnosis.cause.title}** ({diagnosis.evidence}).\n\n"
            f"What to do: {diagnosis.cause.fix}")


# --- re-running an hour --------------------------------------------------------------------------

def rerun_name(schedule_name: str, hour: datetime) -> str:
    """`<schedule>-rerun-<yyyymmddhh of the window's end>`; a re-run of a re-run keeps the original's name."""
    base = re.sub(rf"{RERUN_SUFFIX}\d{{10}}$", "", schedule_name)
    suffix = f"{RERUN_SUFFIX}{hour:%Y%m%d%H}"
    return base[: MAX_SCHEDULE_NAME - len(suffix)] + suffix


def rerun_request(schedule: dict, hour: datetime, now: datetime | None = None) -> dict:
    """CreateMonitoringSchedule for a one-off run (`NOW`) analysing the window of the run at `hour`.

    NOW runs start about a minute after creation; the offsets are taken from the next whole
    minute, so the window is the hour's own within a minute or two (a run may be staged a little
    more capture than the window, as scheduled runs are). What a re-run can and cannot do: the
    platform stages that hour's capture (so an hour with no capture fails again, by design), but
    the replay measures the endpoint as it is NOW, not as it was then. It proves the monitor works
    again after a fix; it does not recover the lost hour's diversity figure, and its report and
    metrics carry the one-off schedule's name, so the hourly alarms never see it.
    """
    hour = as_utc(hour)
    window = window_of(schedule, hour)
    start, end = window.start, window.end
    anchor = (now or utcnow()).astimezone(timezone.utc).replace(second=0, microsecond=0) + timedelta(minutes=1)
    if end > anchor:
        raise DiagnosisError(f"the window of the run at {iso_z(hour)} ends at {iso_z(end)}, after now: nothing to re-run yet")
    request = {
        "MonitoringScheduleName": rerun_name(schedule["MonitoringScheduleName"], end),
        "MonitoringScheduleConfig": {
            "ScheduleConfig": {"ScheduleExpression": "NOW", "DataAnalysisStartTime": format_offset(start - anchor),
                               "DataAnalysisEndTime": format_offset(end - anchor)},
            "MonitoringJobDefinition": job_definition(schedule),
        },
        "Tags": [{"Key": "diversity-monitor:rerun-of", "Value": f"{schedule['MonitoringScheduleName']}@{iso_z(hour)}"}],
    }
    return service_schema.validate_request("sagemaker", "CreateMonitoringSchedule", request)


def rerun_of(view: ExecutionView | None, schedule: dict) -> dict | None:
    """The re-run request of the diagnosed run (`rerun_request`); None when there is no run to re-run."""
    return None if view is None else rerun_request(schedule, view.scheduled)


def rerun_cli(request: dict | None) -> str:
    if request is None:
        return "No re-run: no failed or missing run to re-run."
    config = request["MonitoringScheduleConfig"]["ScheduleConfig"]
    return (f"aws sagemaker create-monitoring-schedule --monitoring-schedule-name {request['MonitoringScheduleName']} "
            f"--monitoring-schedule-config file://rerun.json   # ScheduleExpression NOW, "
            f"DataAnalysisStartTime {config['DataAnalysisStartTime']}, DataAnalysisEndTime {config['DataAnalysisEndTime']}, "
            "MonitoringJobDefinition copied from describe-monitoring-schedule")


def start_rerun(request: dict | None, *, confirm: bool) -> str:
    """Create the one-off schedule (only with `confirm`); returns what happened, for the notebook."""
    if request is None:
        return "NOT STARTED: nothing to re-run."
    name = request["MonitoringScheduleName"]
    if not confirm:
        return (f"NOT STARTED: set rerun=True to create the one-off schedule {name} "
                f"(window {request['MonitoringScheduleConfig']['ScheduleConfig']['DataAnalysisStartTime']} to "
                f"{request['MonitoringScheduleConfig']['ScheduleConfig']['DataAnalysisEndTime']} from its start).")
    try:
        boto3.client("sagemaker").create_monitoring_schedule(**request)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("ResourceInUse", "ResourceInUseException"):
            raise
        return (f"NOT STARTED: a one-off schedule {name} exists already (this hour was re-run before): follow it with "
                f"ListMonitoringExecutions, or delete it first (aws sagemaker delete-monitoring-schedule "
                f"--monitoring-schedule-name {name}).")
    return (f"STARTED: one-off schedule {name}. Follow it with ListMonitoringExecutions(MonitoringScheduleName={name!r}); "
            f"its report lands under <reports>/<endpoint>/{name}/; delete the schedule when done "
            f"(aws sagemaker delete-monitoring-schedule --monitoring-schedule-name {name}).")


# --- the no-data loop: a quiet endpoint, or a production endpoint that lost its capture -----------

NO_DATA_LOOKBACK_HOURS = 24


@dataclass(frozen=True)
class CaptureHistory:
    """What the capture held in the hours before a run: per hour, files and which traffic they hold."""

    hours: tuple[tuple[datetime, int, int, int], ...]  # (hour, files, live records, replay records) sampled

    @property
    def last_live_hour(self) -> datetime | None:
        return max((hour for hour, _, live, _ in self.hours if live), default=None)

    @property
    def last_captured_hour(self) -> datetime | None:
        return max((hour for hour, files, _, _ in self.hours if files), default=None)


def capture_history(roots: list[str], end: datetime, hours: int = NO_DATA_LOOKBACK_HOURS) -> CaptureHistory:
    """Per hour before `end`, the capture files under each variant root, and whose traffic the first
    file of the hour holds (the monitor's replay, by its InferenceId prefix, or live users)."""
    start = end - timedelta(hours=hours)
    counts: dict[datetime, list[int]] = {}
    for root in roots:
        try:
            files = list_capture_files(root, start, end).files
        except CaptureSourceError as error:
            raise storage.StorageError(str(error)) from error.__cause__
        for capture in files:
            entry = counts.setdefault(capture.hour, [0, 0, 0])
            entry[0] += 1
            if entry[0] == 1:
                live, replay = _traffic_of(capture.uri)
                entry[1] += live
                entry[2] += replay
    return CaptureHistory(tuple((hour, *counts[hour]) for hour in sorted(counts)))


def _traffic_of(uri: str) -> tuple[int, int]:
    """(live, replay) records in one capture file, by each record's inferenceId."""
    live = replay = 0
    for line in storage.read_text(uri, MAX_JSON_DOCUMENT_BYTES).split("\n"):
        if not line.strip():
            continue
        try:
            inference = (json.loads(line).get("eventMetadata") or {}).get("inferenceId") or ""
        except (ValueError, AttributeError):
            continue
        if str(inference).startswith(REPLAY_INFERENCE_PREFIX):
            replay += 1
        else:
            live += 1
    return live, replay


def no_data_verdict(history: CaptureHistory, capture_on: bool, window_start: datetime) -> tuple[str, str]:
    """(kind, what to do) for a run that failed with no data: `capture-off`, `lost-capture` or `quiet`."""
    if not capture_on:
        return ("capture-off", "Capture is OFF on the endpoint: every run fails with no data until the live endpoint "
                               "config has a DataCaptureConfig again (notebooks/01_enable_data_capture.ipynb). "
                               "A production endpoint must never run like this.")
    last_live = history.last_live_hour
    if last_live is not None:
        return ("lost-capture",
                f"PRODUCTION ENDPOINT THAT LOST ITS CAPTURE (or its traffic): live users' requests were captured "
                f"until {iso_z(last_live)}, then nothing. Look at the endpoint's Invocations metric for the window: "
                "requests but no capture means capture is broken (DestinationS3Uri permissions or KMS key, sampling "
                "at 0%): fix it; no requests means the traffic stopped upstream, which is an incident of its own.")
    return ("quiet",
            "QUIET ENDPOINT (staging, or unused): no live traffic was captured in the last "
            f"{NO_DATA_LOOKBACK_HOURS} hours; only the monitor's own replay kept its capture alive"
            + (f", until {iso_z(history.last_captured_hour)}" if history.last_captured_hour else "")
            + ". The schedule analyses its period plus "
            f"{ANALYSIS_WINDOW_EXTRA_HOURS} hours, so one quiet or failed hour does not stop it; a longer gap did. "
            "Restart the loop with one replay against the endpoint (its traffic is captured): "
            "`diversity-monitor replay --endpoint-name <endpoint> --validation-set <...> --catalog <...>` "
            "with the schedule's ContainerArguments; the next scheduled run then starts.")


def no_data_markdown(view: ExecutionView | None, schedule: dict) -> str:
    """Section 6 of the failed-run runbook: only for a run that failed with no data."""
    if view is None:  # a healthy schedule: the runbook already said there is nothing to diagnose
        return "No failed run: nothing to tell apart here."
    if not re.search(CAUSES_BY_KEY["no_data"].pattern, view.failure_text or "", re.IGNORECASE):
        return "Not a no-data failure: nothing to tell apart here."
    endpoint = boto3.client("sagemaker").describe_endpoint(EndpointName=view.endpoint_name)
    capture = endpoint.get("DataCaptureConfig") or {}
    roots = [storage.join(capture["DestinationS3Uri"], view.endpoint_name, variant["VariantName"])
             for variant in endpoint.get("ProductionVariants", [])] if capture.get("EnableCapture") else []
    history = capture_history(roots, view.window_end) if roots else CaptureHistory(())
    kind, advice = no_data_verdict(history, bool(capture.get("EnableCapture")), view.window_start)
    rows = "\n".join(f"| {iso_z(hour)} | {files} | {live} | {replay} |" for hour, files, live, replay in history.hours)
    table = ("| hour | capture files | live records (first file) | replay records (first file) |\n|---|---|---|---|\n"
             + rows) if rows else "No capture at all in the last 24 hours."
    return f"**{kind.upper()}**: {advice}\n\n{table}"


CAUSES_BY_KEY = {cause.key: cause for cause in CAUSES}

"""One SageMaker Processing job, run locally: stage inputs, run the image, upload outputs.

A job is described the way DescribeProcessingJob describes it (`ProcessingInputs`,
`ProcessingOutputConfig`, `AppSpecification`, `Environment`, `StoppingCondition`), and its
record in the store keeps that shape while it runs and after. What happens is what the
Processing contract promises a container [PROC]:

- every S3 input is copied under its `LocalPath` (all `/opt/ml/processing/...`), the job's
  settings are written to `/opt/ml/config/processingjobconfig.json`;
- the image's ENTRYPOINT runs with `ContainerArguments` and the job's `Environment`, with
  `/opt/ml` mapped to the job folder (`images`, `container_paths`); a `ContainerEntrypoint`, an
  environment key that changes how a process starts, or a path leaving `/opt/ml` fails the job
  before anything runs (`run_safety`: here they would act on the host);
- past `MaxRuntimeInSeconds` the process group is stopped (SIGINT, then SIGKILL, as Processing
  does) and the job ends `Stopped`, as StoppingCondition documents ("After the condition is met,
  the processing job is stopped" [API: ProcessingStoppingCondition]); a stopped job has no
  FailureReason (a Stopped status is not a failure) and uploads nothing;
- exit code 0 completes the job and uploads every `LocalPath` output to its `S3Uri`; any other
  code fails it with `AlgorithmError`; `/opt/ml/output/message` becomes `ExitMessage` (1 KB).

Model Monitor's extra step (publishing the container's CloudWatch metrics file) is
`publish_container_metrics`, called by the monitoring scheduler, because a plain Processing job
does not publish that file: outside Model Monitor the container calls PutMetricData itself.

The container's stdout/stderr go to `container.log` in the job folder (`container_log_path`);
on AWS they would be in CloudWatch Logs under `/aws/sagemaker/ProcessingJobs`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import posixpath
import signal
import subprocess
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from diversity_monitor.aws import container_paths
from diversity_monitor.clock import iso_z, parse_instant
from diversity_monitor.conventions import METRICS_NAMESPACE  # where the platform publishes a container's metrics
from diversity_monitor.local import images, metric_data, run_safety
from diversity_monitor.local.clock import Clock
from diversity_monitor.local.platform import stop_process
from diversity_monitor.local.protocols import service_model, validate
from diversity_monitor.local.store import Store
from diversity_monitor.storage import S3Location, StorageError

log = logging.getLogger(__name__)

PROCESSING_JOB = "ProcessingJob"  # store kind; records are DescribeProcessingJob outputs
EXIT_MESSAGE_LIMIT = 1024  # bytes of /opt/ml/output/message kept as ExitMessage [PROC]
FAILURE_REASON_LIMIT = 1024  # FailureReason's max length in the API model
# Processing stops a container with SIGINT, then SIGKILL [PROC; facts page]: this long between them.
STOP_SIGNAL = signal.SIGINT
STOP_GRACE_SECONDS = 5

# Model Monitor publishes the container's metrics file here [BYOC; facts page].
# The keys a metrics-file line may carry, as the BYOC CloudWatch page documents them.
METRIC_LINE_KEYS = frozenset({"MetricName", "Timestamp", "Dimensions", "Value", "StatisticValues", "Unit"})


class JobHost(Protocol):
    """What a job run needs from the local platform (`LocalPlatform` provides all of it)."""

    store: Store
    clock: Clock
    state_dir: Path
    jobs_dir: Path
    region: str
    def aws_client(self, service_name: str) -> Any: ...

    def process_environment(self) -> dict[str, str]: ...


class JobError(RuntimeError):
    """A job fails for a reason the platform reports (`FailureReason`), not the container."""


class JobStopped(JobError):
    """The job was stopped (MaxRuntimeInSeconds, StopProcessingJob, the stack stopping): status Stopped,
    not an algorithm failure; `reason` is the FailureReason to record, None for none (AWS gives none)."""

    def __init__(self, reason: str | None) -> None:
        super().__init__(reason or "stopped")
        self.reason = reason


class MetricsFileError(ValueError):
    """A line of the container's CloudWatch metrics file is not the documented shape."""


@dataclasses.dataclass(frozen=True)
class JobFolder:
    """Where a job lives on disk: `root` stands in for /opt/ml; the log stays outside it."""

    path: Path

    @property
    def root(self) -> Path:
        return self.path / "ml"

    @property
    def log(self) -> Path:
        return self.path / "container.log"

    def local(self, container_path: str | PurePosixPath) -> Path:
        """The job folder's file for a container path; a path leaving /opt/ml (`..`) is refused."""
        if not run_safety.within(str(container_path)):
            raise JobError(f"ClientError: {container_path} leaves /opt/ml once normalised; locally it would be this "
                           "machine's file")
        return container_paths.resolve(posixpath.normpath(str(container_path)), root=self.root)


def job_folder(host: JobHost, job_name: str) -> JobFolder:
    return JobFolder(Path(host.jobs_dir) / job_name)


def container_log_path(host: JobHost, job_name: str) -> Path:
    """The container's stdout/stderr for a job (what CloudWatch Logs would hold on AWS)."""
    return job_folder(host, job_name).log


# ---------------------------------------------------------------------------------------------
# Running a job


def run_processing_job(host: JobHost, description: dict) -> dict:
    """Run the job `description` (a DescribeProcessingJob-shaped dict) to its end; return its record.

    The record is stored as `ProcessingJob/<name>` when the job starts (InProgress) and again
    when it ends (Completed or Failed, with FailureReason / ExitMessage).
    """
    name = description["ProcessingJobName"]
    now = host.clock.now()
    record = {
        **description,
        "ProcessingJobStatus": "InProgress",
        "CreationTime": description.get("CreationTime") or iso_z(now),
        "ProcessingStartTime": iso_z(now),
        "LastModifiedTime": iso_z(now),
    }
    host.store.put(PROCESSING_JOB, name, record)
    folder = job_folder(host, name)
    try:
        outcome = _run(host, record, folder)
    except JobStopped as error:
        # AWS gives a stopped job no FailureReason; the local stack's own stop says it was the stack.
        outcome = {"ProcessingJobStatus": "Stopped", **({"FailureReason": error.reason} if error.reason else {})}
    except JobError as error:
        outcome = {"ProcessingJobStatus": "Failed", "FailureReason": _clip(str(error), FAILURE_REASON_LIMIT)}
    except Exception as error:  # a bug or an outage must end the job visibly, not leave it InProgress
        log.exception("processing job %s failed unexpectedly", name)
        outcome = {"ProcessingJobStatus": "Failed", "FailureReason": _clip(f"InternalServerError: {error}", FAILURE_REASON_LIMIT)}
    end = iso_z(host.clock.now())
    record.update(outcome, ProcessingEndTime=end, LastModifiedTime=end)
    host.store.put(PROCESSING_JOB, name, record)
    return record


def _run(host: JobHost, record: dict, folder: JobFolder) -> dict:
    app = record["AppSpecification"]
    try:
        spec = images.resolve(app["ImageUri"])
    except images.ImageNotFound as error:
        raise JobError(f"ClientError: {error}") from error
    # Whoever described the job (the monitoring scheduler, a handler), nothing it names runs on the host.
    problems = run_safety.processing_job_problems(record)
    if problems:
        raise JobError(f"ClientError: {'; '.join(problems)}")

    folder.root.mkdir(parents=True, exist_ok=True)
    s3 = host.aws_client("s3")
    for job_input in record.get("ProcessingInputs", []):
        _stage_input(s3, job_input, folder)
    _write_job_config(record, folder)

    exit_code = _run_container(host, spec, record, folder, app.get("ContainerArguments"))
    stopped, reason = _was_stopped(record["ProcessingJobName"])
    if stopped:
        raise JobStopped(reason)
    exit_message = _exit_message(folder)
    outcome: dict = {"ExitMessage": exit_message} if exit_message else {}
    if exit_code != 0:
        reason = exit_message or f"See job logs for more information (exit code {exit_code})"
        return {**outcome, "ProcessingJobStatus": "Failed", "FailureReason": _clip(f"AlgorithmError: {reason}", FAILURE_REASON_LIMIT)}
    for job_output in record.get("ProcessingOutputConfig", {}).get("Outputs", []):
        _upload_output(s3, job_output, folder)
    return {**outcome, "ProcessingJobStatus": "Completed"}


def _stage_input(s3, job_input: dict, folder: JobFolder) -> None:
    """Copy an S3Prefix input under its LocalPath, keys relative to the prefix's folder."""
    source = job_input.get("S3Input")
    if source is None:
        raise JobError(f"ClientError: input {job_input.get('InputName')!r} has no S3Input (the only kind run locally)")
    if source.get("S3DataType", "S3Prefix") != "S3Prefix":
        raise JobError(f"ClientError: input {job_input['InputName']!r}: S3DataType {source['S3DataType']!r} is not supported locally")
    location = _s3_location(source["S3Uri"], f"input {job_input['InputName']!r}")
    base = location.key.rsplit("/", 1)[0] + "/" if "/" in location.key else ""
    target = folder.local(source["LocalPath"])
    copied = 0
    for key in _keys(s3, location, source["S3Uri"]):
        relative = PurePosixPath(key[len(base):])
        if ".." in relative.parts:
            raise JobError(f"ClientError: input {job_input['InputName']!r}: key {key!r} escapes {source['LocalPath']}")
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            s3.download_file(location.bucket, key, str(destination))
        except (ClientError, BotoCoreError) as error:
            raise JobError(f"ClientError: cannot download s3://{location.bucket}/{key}: {error}") from error
        copied += 1
    if copied == 0:
        raise JobError(f"ClientError: No S3 objects found under S3 URL {source['S3Uri']!r} (input {job_input['InputName']!r})")


def _keys(s3, location: S3Location, uri: str) -> Iterator[str]:
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=location.key):
            for item in page.get("Contents", []):
                if not item["Key"].endswith("/"):  # folder markers carry no data
                    yield item["Key"]
    except (ClientError, BotoCoreError) as error:
        raise JobError(f"ClientError: cannot list {uri}: {error}") from error


def _write_job_config(record: dict, folder: JobFolder) -> None:
    """`/opt/ml/config/processingjobconfig.json`: the job's own settings, as [PROC] describes."""
    keys = ("ProcessingJobArn", "ProcessingJobName", "AppSpecification", "Environment", "ProcessingInputs",
            "ProcessingOutputConfig", "ProcessingResources", "RoleArn", "StoppingCondition")
    config = {key: record[key] for key in keys if key in record}
    path = folder.local(container_paths.PROCESSING_JOB_CONFIG)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=1))
    # A single-instance cluster, as the platform describes it to the container.
    (path.parent / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))


def _run_container(host: JobHost, spec: images.ImageSpec, record: dict, folder: JobFolder, arguments) -> int:
    # The platform's variables (the stack's URL and dummy credentials standing in for the job's
    # role, the simulated clock's now) first; the job's Environment wins over them.
    environment = {**host.process_environment(), **record.get("Environment", {})}
    max_runtime = record.get("StoppingCondition", {}).get("MaxRuntimeInSeconds")
    folder.log.parent.mkdir(parents=True, exist_ok=True)
    try:
        process = images.launch(spec, folder.root, environment, list(arguments) if arguments else None,
                                log_path=folder.log)
    except OSError as error:  # the Dockerfile's command does not exist here
        raise JobError(f"ClientError: cannot start {' '.join(spec.command(arguments))!r} for image {spec.uri}: {error}") from error
    name = record["ProcessingJobName"]
    with _running_lock:
        _running[name] = process
    try:
        return process.wait(timeout=max_runtime)
    except subprocess.TimeoutExpired:
        stop_process(process, grace=STOP_GRACE_SECONDS, first=STOP_SIGNAL)
        log.info("processing job %s ran past MaxRuntimeInSeconds (%s s): stopped", name, max_runtime)
        raise JobStopped(None) from None
    except BaseException:  # the stack is being stopped (a signal): the container must not outlive it
        stop_process(process, grace=STOP_GRACE_SECONDS, first=STOP_SIGNAL)
        raise
    finally:
        with _running_lock:
            _running.pop(name, None)


# Containers running now, by job name: the stack stops them when it stops (they are processes of
# this machine, so the registry is per process).
_running: dict[str, subprocess.Popen] = {}
_stopped: dict[str, str | None] = {}  # job name -> the FailureReason its stop gives (None: like AWS, none)
STACK_STOPPED = "Stopped: the local stack stopped while the job was running"
_running_lock = threading.Lock()


def stop_running_jobs() -> list[str]:
    """Stop every running job's process group; those jobs end with status Stopped."""
    with _running_lock:
        running = list(_running.items())
        _stopped.update((name, STACK_STOPPED) for name, _ in running)
    for _, process in running:
        stop_process(process, grace=STOP_GRACE_SECONDS, first=STOP_SIGNAL)
    return [name for name, _ in running]


def stop_job(job_name: str) -> bool:
    """StopProcessingJob: stop one running job (it ends Stopped); False when it is not running here."""
    with _running_lock:
        process = _running.get(job_name)
        if process is None:
            return False
        _stopped[job_name] = None
    stop_process(process, grace=STOP_GRACE_SECONDS)
    return True


def _was_stopped(job_name: str) -> tuple[bool, str | None]:
    """Whether the job was stopped on purpose, and the FailureReason that stop gives."""
    with _running_lock:
        if job_name in _stopped:
            return True, _stopped.pop(job_name)
        return False, None


def _exit_message(folder: JobFolder) -> str:
    path = folder.local(container_paths.OUTPUT_MESSAGE)
    if not path.is_file():
        return ""
    with open(path, "rb") as handle:
        return handle.read(EXIT_MESSAGE_LIMIT).decode("utf-8", errors="replace").strip()


def _upload_output(s3, job_output: dict, folder: JobFolder) -> None:
    destination = job_output.get("S3Output")
    if destination is None:
        raise JobError(f"ClientError: output {job_output.get('OutputName')!r} has no S3Output (the only kind run locally)")
    location = _s3_location(destination["S3Uri"], f"output {job_output.get('OutputName')!r}")
    source = folder.local(destination["LocalPath"])
    prefix = location.key.rstrip("/")
    for path in sorted(source.rglob("*")) if source.is_dir() and not source.is_symlink() else []:
        if path.is_symlink():  # locally a link can point at any file of this machine
            raise JobError(f"ClientError: output {job_output.get('OutputName')!r} holds a symbolic link "
                           f"({path.relative_to(source).as_posix()}); the local stack uploads regular files only")
        if not path.is_file():
            continue
        key = "/".join(filter(None, [prefix, path.relative_to(source).as_posix()]))
        try:
            s3.upload_file(str(path), location.bucket, key)
        except (ClientError, BotoCoreError) as error:
            raise JobError(f"ClientError: cannot upload {path.name} to s3://{location.bucket}/{key}: {error}") from error


def _s3_location(uri: str, what: str) -> S3Location:
    try:
        return S3Location.parse(uri)
    except StorageError as error:
        raise JobError(f"ClientError: {what}: {error}") from None


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------
# Model Monitor's metric publishing


def publish_container_metrics(host: JobHost, job_name: str) -> int:
    """PutMetricData every line of the job's `/opt/ml/output/metrics/cloudwatch/*.jsonl`.

    All lines are checked first, as CloudWatch would check a PutMetricData request, by the stand-in's
    own rules (not the kit's): documented keys; the MetricDatum shape with the model's minimums,
    maximums and enums (at most 30 dimensions, names up to 255 characters, a known Unit...);
    values finite and within +-2^360; timestamps from 2 weeks ago to 2 hours ahead of the platform
    clock. One bad line publishes nothing and raises MetricsFileError naming the file and line
    (what Model Monitor does with a bad file is not documented; the scheduler fails the
    execution with it as FailureReason). Returns the datums published.
    """
    metrics_dir = job_folder(host, job_name).local(container_paths.CLOUDWATCH_METRICS_DIR)
    data = list(read_metric_lines(sorted(metrics_dir.glob("*.jsonl")), host.clock.now()))
    return metric_data.put_metric_data(host, METRICS_NAMESPACE, data)


def read_metric_lines(paths: Iterable[Path], now: datetime) -> Iterator[dict]:
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise MetricsFileError(f"{path.name} is not UTF-8 text (byte {error.start})") from None
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                yield metric_datum(line, now)
            except MetricsFileError as error:
                raise MetricsFileError(f"{path.name} line {number}: {error}") from None


def metric_datum(line: str, now: datetime) -> dict:
    """One metrics-file line as a PutMetricData datum, or MetricsFileError saying what is wrong."""
    try:
        datum = json.loads(line)
    except json.JSONDecodeError as error:
        raise MetricsFileError(f"not JSON ({error.msg})") from None
    if not isinstance(datum, dict):
        raise MetricsFileError(f"expected a JSON object, got {type(datum).__name__}")
    unknown = sorted(set(datum) - METRIC_LINE_KEYS)
    if unknown:
        raise MetricsFileError(f"unknown keys {unknown} (allowed: {sorted(METRIC_LINE_KEYS)})")
    if ("Value" in datum) == ("StatisticValues" in datum):
        raise MetricsFileError("needs exactly one of Value or StatisticValues")
    if "Timestamp" not in datum:
        raise MetricsFileError("has no Timestamp")
    try:
        datum["Timestamp"] = parse_instant(str(datum["Timestamp"]))
    except ValueError:
        raise MetricsFileError(f"Timestamp {datum['Timestamp']!r} is not ISO-8601 (like 2019-11-26T03:00:00Z)") from None
    try:
        validate({"Namespace": METRICS_NAMESPACE, "MetricData": [datum]}, _put_metric_data(), MetricsFileError)
        metric_data.check_datum(datum, now)
    except ValueError as error:
        raise MetricsFileError(str(error).replace("\n", "; ")) from None
    return datum


@functools.cache
def _put_metric_data():
    return service_model("cloudwatch").operation_model("PutMetricData")

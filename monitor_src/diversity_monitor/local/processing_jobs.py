"""SageMaker Processing jobs, locally: CreateProcessingJob, StopProcessingJob, ListProcessingJobs.

What the plain Processing path needs (EventBridge Scheduler's target calls CreateProcessingJob
every hour, eventbridge_scheduler.py). A created job is recorded `InProgress` in the store in
DescribeProcessingJob's shape (monitoring.py answers DescribeProcessingJob for every job) and run
by `processing.run_processing_job`: on a worker thread, or inline when the caller asks (the
Scheduler stand-in on a simulated clock, so a run at 10:00 is over before the clock moves on).

Checks beyond the API shape, as the service makes them: a unique name, an image the stack can
run, every LocalPath under /opt/ml/processing/; and what the stack refuses to run on this machine
(`run_safety`: ContainerEntrypoint, startup-changing environment, paths leaving /opt/ml).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from diversity_monitor.clock import iso_z
from diversity_monitor.local import images, processing, run_safety
from diversity_monitor.local.errors import ResourceInUse, ResourceNotFound, ValidationError
from diversity_monitor.local.monitoring import _answer, moment_of

log = logging.getLogger(__name__)


class JobRunner:
    """Runs created jobs: inline, or on two workers (the stack's processes share two cores)."""

    def __init__(self, platform) -> None:
        self.platform = platform
        self._workers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="processing-job")

    def start(self, job: dict, *, inline: bool = False) -> dict:
        if inline:
            return processing.run_processing_job(self.platform, job)
        self._workers.submit(processing.run_processing_job, self.platform, job)
        return job

    def shutdown(self) -> None:
        processing.stop_running_jobs()
        self._workers.shutdown(wait=True)


def _check(platform, params: dict) -> None:
    name = params["ProcessingJobName"]
    if platform.store.get(processing.PROCESSING_JOB, name) is not None:
        raise ResourceInUse(f"Job name must be unique within an AWS account and region, and a job with this name "
                            f"already exists ({platform.arn('processing-job', name)})")
    try:
        images.resolve(params["AppSpecification"]["ImageUri"])
    except images.ImageNotFound as error:
        raise ValidationError(f"AppSpecification.ImageUri: {error}") from None
    # what would act on this machine rather than in a container (run_safety's doc)
    run_safety.refuse(run_safety.processing_job_problems(params))


def create_processing_job(platform, params: dict, *, inline: bool = False) -> dict:
    _check(platform, params)
    name = params["ProcessingJobName"]
    job = {**params, "ProcessingJobArn": platform.arn("processing-job", name), "CreationTime": iso_z(platform.clock.now())}
    job.pop("Tags", None)
    platform.store.put(processing.PROCESSING_JOB, name, {**job, "ProcessingJobStatus": "InProgress"})
    runner(platform).start(job, inline=inline)
    return {"ProcessingJobArn": job["ProcessingJobArn"]}


def stop_processing_job(platform, params: dict) -> dict:
    name = params["ProcessingJobName"]
    record = platform.store.get(processing.PROCESSING_JOB, name)
    if record is None:
        raise ResourceNotFound(f"Could not find processing job {name!r}")
    if record["ProcessingJobStatus"] != "InProgress":
        raise ValidationError(f"The job {name!r} is {record['ProcessingJobStatus']}; only an InProgress job can be stopped")
    processing.stop_job(name)
    return {}


def list_processing_jobs(platform, params: dict) -> dict:
    records = platform.store.list(processing.PROCESSING_JOB)
    if params.get("NameContains"):
        records = [r for r in records if params["NameContains"] in r["ProcessingJobName"]]
    if params.get("StatusEquals"):
        records = [r for r in records if r["ProcessingJobStatus"] == params["StatusEquals"]]
    records.sort(key=lambda r: (moment_of(r["CreationTime"]), r["ProcessingJobName"]),
                 reverse=params.get("SortOrder", "Descending") == "Descending")
    size = params.get("MaxResults", 10)
    offset = int(params.get("NextToken") or 0)
    page = records[offset:offset + size]
    summaries = [{key: record.get(key) for key in ("ProcessingJobName", "ProcessingJobArn", "CreationTime",
                                                   "ProcessingEndTime", "LastModifiedTime", "ProcessingJobStatus",
                                                   "FailureReason", "ExitMessage")} for record in page]
    answer = {"ProcessingJobSummaries": summaries}
    if offset + size < len(records):
        answer["NextToken"] = str(offset + size)
    return _answer("ListProcessingJobs", answer)


OPERATIONS: dict[str, Callable[..., dict]] = {
    "CreateProcessingJob": create_processing_job,
    "StopProcessingJob": stop_processing_job,
    "ListProcessingJobs": list_processing_jobs,
}


def runner(platform) -> JobRunner:
    return platform.processing_jobs


def install(platform) -> JobRunner:
    platform.processing_jobs = JobRunner(platform)
    platform.register_operations("sagemaker", OPERATIONS)
    platform.on_stop(platform.processing_jobs.shutdown)
    return platform.processing_jobs

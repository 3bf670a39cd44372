"""Run the monitoring image's entrypoint exactly as the Dockerfile declares it, in a job folder.

Uses the local stack's own image mapping and launcher (`diversity_monitor.local.images`), so the
tests and the local scheduler start the container the same way. Every botocore call the
container (and its papermill kernel) makes is audited against the service model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import boto3

from diversity_monitor.local import images
from helpers.paths import AUDIT_DIR

MONITOR_IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/diversity-monitor:test"


# What Model Monitor sets for an hourly run of schedule `diversity-hourly` (platform-facts.md).
def model_monitor_env(endpoint: str, **overrides: str) -> dict[str, str]:
    env = {
        "dataset_format": '{"sagemakerCaptureJson": {"captureIndexNames": ["endpointInput", "endpointOutput"]}}',
        "dataset_source": "/opt/ml/processing/input/endpoint",
        "output_path": "/opt/ml/processing/output",
        "publish_cloudwatch_metrics": "Enabled",
        "sagemaker_endpoint_name": endpoint,
        "sagemaker_monitoring_schedule_name": "diversity-hourly",
        "start_time": "2027-10-31T08:00:00Z",
        "end_time": "2027-10-31T09:00:00Z",
        "metric_time": "2027-10-31T09:00:00Z",
    }
    env.update(overrides)
    return {key: value for key, value in env.items() if value is not None}


@dataclass
class ContainerRun:
    returncode: int
    job_root: Path
    log: str
    audit: list[dict]

    @property
    def message(self) -> str:
        path = self.job_root / "output/message"
        return path.read_text(encoding="utf-8") if path.exists() else ""

    @property
    def output(self) -> Path:
        return self.job_root / "processing/output"

    def json(self, name: str) -> dict:
        return json.loads((self.output / name).read_text())

    @property
    def metric_lines(self) -> list[dict]:
        path = self.job_root / "output/metrics/cloudwatch/cloudwatch_metrics.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def audit_environment(audit_file: Path) -> dict[str, str]:
    """What makes a process (and its children) record every botocore call it makes in `audit_file`."""
    return {
        "BOTOCORE_AUDIT_FILE": str(audit_file),
        "PYTHONPATH": os.pathsep.join([str(AUDIT_DIR), os.environ.get("PYTHONPATH", "")]),
    }


def read_audit(audit_file: Path) -> list[dict]:
    return [json.loads(line) for line in audit_file.read_text().splitlines()] if audit_file.exists() else []


def run_monitor_container(job_root: Path, platform_env: dict[str, str], arguments: list[str],
                          timeout: float = 300) -> ContainerRun:
    spec = images.resolve(MONITOR_IMAGE)
    audit_file = job_root.parent / f"{job_root.name}-botocore-audit.jsonl"
    log_path = job_root.parent / f"{job_root.name}.log"
    # The test's own AWS settings (its moto server), passed as the platform would pass the job's.
    test_aws = {key: value for key, value in os.environ.items() if key.startswith("AWS_")}
    env = {**test_aws, **platform_env, **audit_environment(audit_file)}
    process = images.launch(spec, job_root, env, arguments, log_path=log_path)
    returncode = process.wait(timeout=timeout)
    return ContainerRun(returncode, job_root, log_path.read_text(errors="replace"), read_audit(audit_file))


def upload_outputs(run: ContainerRun, bucket: str, prefix: str) -> str:
    s3 = boto3.client("s3")
    for path in run.output.rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(run.output)}")
    return f"s3://{bucket}/{prefix}"

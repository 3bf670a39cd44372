"""notebooks/02's baseline-and-gate step as a SageMaker Pipelines definition, built with the SDK.

Two ProcessingSteps running the monitoring image (its ENTRYPOINT replaced, as ProcessingJob's
`ContainerEntrypoint` allows): `Baseline` runs `diversity-monitor baseline` against the
candidate endpoint and writes `baselines/<ModelVersion>/`; `Gate` runs
`diversity-monitor baseline-gate`, which exits 1 on a failing verdict, so the pipeline (and the
deploy after it) stops. The model version and endpoint are pipeline parameters.

The definition is produced by the SDK's own `Pipeline.definition()` under a `PipelineSession`,
which records requests instead of sending them: nothing here calls AWS. Pipelines do not run
locally; upsert the definition with `pipeline.upsert(role_arn=...)` on AWS.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import boto3

from diversity_monitor.conventions import (
    DEFAULT_MAX_MEAN_DROP,
    DEFAULT_MEAN_TOLERANCE,
    DEFAULT_MIN_DIVERSITY,
    DEFAULT_SLOT_MARGIN,
)

BASELINE_ENTRYPOINT = ["dumb-init", "--", "diversity-monitor", "baseline"]
GATE_ENTRYPOINT = ["dumb-init", "--", "diversity-monitor", "baseline-gate"]


@dataclass(frozen=True)
class BaselinePipelineSpec:
    pipeline_name: str
    image_uri: str
    role_arn: str
    region: str
    baselines_root: str  # s3://.../baselines
    validation_set: str
    catalog: str
    endpoint_name: str
    model_version: str
    previous_version: str | None = None
    target_variant: str | None = None
    min_diversity: float = DEFAULT_MIN_DIVERSITY
    max_mean_drop: float = DEFAULT_MAX_MEAN_DROP
    mean_tolerance: float = DEFAULT_MEAN_TOLERANCE
    slot_margin: float = DEFAULT_SLOT_MARGIN
    instance_type: str = "ml.m5.large"


def build_pipeline(spec: BaselinePipelineSpec):
    """The SDK `Pipeline` object (call `.definition()` for the JSON, `.upsert()` on AWS)."""
    # sagemaker 3.x creates a boto3 client while importing (sagemaker.ai_registry), which needs a
    # default region even though nothing is sent.
    os.environ.setdefault("AWS_DEFAULT_REGION", spec.region)
    from sagemaker.core.processing import Processor
    from sagemaker.core.workflow.functions import Join
    from sagemaker.core.workflow.parameters import ParameterString
    from sagemaker.core.workflow.pipeline_context import PipelineSession
    from sagemaker.mlops.workflow.pipeline import Pipeline
    from sagemaker.mlops.workflow.steps import ProcessingStep

    session = PipelineSession(boto_session=boto3.Session(region_name=spec.region),
                              default_bucket=spec.baselines_root.split("/")[2])
    model_version = ParameterString("ModelVersion", default_value=spec.model_version)
    endpoint = ParameterString("EndpointName", default_value=spec.endpoint_name)
    root = spec.baselines_root.rstrip("/")

    def processor(entrypoint: list[str], job: str) -> Processor:
        return Processor(role=spec.role_arn, image_uri=spec.image_uri, instance_count=1,
                         instance_type=spec.instance_type, entrypoint=entrypoint, base_job_name=job,
                         max_runtime_in_seconds=3600, sagemaker_session=session)

    baseline_arguments = [
        "--endpoint-name", endpoint, "--validation-set", spec.validation_set, "--catalog", spec.catalog,
        "--output", Join(on="/", values=[root, model_version]),
        "--mean-tolerance", f"{spec.mean_tolerance:g}", "--slot-margin", f"{spec.slot_margin:g}",
    ]
    if spec.target_variant:
        baseline_arguments += ["--target-variant", spec.target_variant]
    baseline = ProcessingStep(
        name="Baseline",
        step_args=processor(BASELINE_ENTRYPOINT, "diversity-baseline").run(arguments=baseline_arguments),
    )
    gate_arguments = ["--baselines", root, "--model-version", model_version,
                      "--min-diversity", f"{spec.min_diversity:g}", "--max-mean-drop", f"{spec.max_mean_drop:g}"]
    if spec.previous_version:
        gate_arguments += ["--previous-version", spec.previous_version]
    gate = ProcessingStep(
        name="Gate",
        step_args=processor(GATE_ENTRYPOINT, "diversity-gate").run(arguments=gate_arguments),
        depends_on=[baseline],
    )
    return Pipeline(name=spec.pipeline_name, parameters=[model_version, endpoint], steps=[baseline, gate],
                    sagemaker_session=session)


def pipeline_definition(spec: BaselinePipelineSpec) -> dict:
    """The definition JSON the SDK produces, parsed (it is valid JSON or this raises)."""
    return json.loads(build_pipeline(spec).definition())


def read_baseline_with_sdk(baseline_folder_uri: str, region: str) -> dict:
    """Read statistics.json / constraints.json back exactly as the SageMaker SDK does (from S3)."""
    os.environ.setdefault("AWS_DEFAULT_REGION", region)
    from sagemaker.core.helper.session_helper import Session
    from sagemaker.core.model_monitor import Constraints, Statistics

    session = Session(boto_session=boto3.Session(region_name=region))
    base = baseline_folder_uri.rstrip("/")
    statistics = Statistics.from_s3_uri(f"{base}/statistics.json", sagemaker_session=session)
    constraints = Constraints.from_s3_uri(f"{base}/constraints.json", sagemaker_session=session)
    return {
        "statistics features": [feature["name"] for feature in statistics.body_dict["features"]],
        "constraints features": [feature["name"] for feature in constraints.body_dict["features"]],
        "item_count": statistics.body_dict["dataset"]["item_count"],
    }

"""Where a SageMaker container's paths live: the one place that maps `/opt/ml` to a folder.

On SageMaker every path the platform hands a container starts with `/opt/ml`. Locally (the
embedded stack's job folders, a developer's shell) the same entrypoint runs with
`DIVERSITY_MONITOR_ML_ROOT` pointing at a folder that stands in for `/opt/ml`. Every
container path the kit reads or writes goes through `resolve()`; nothing else knows the root.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

ML_ROOT_ENV = "DIVERSITY_MONITOR_ML_ROOT"
CONTAINER_ML_ROOT = PurePosixPath("/opt/ml")

# Paths as the platform names them inside the container.
PROCESSING_INPUT_ENDPOINT = CONTAINER_ML_ROOT / "processing/input/endpoint"  # SDK default LocalPath
PROCESSING_INPUT_BASELINE = CONTAINER_ML_ROOT / "processing/baseline"  # .../constraints/, .../stats/
PROCESSING_OUTPUT = CONTAINER_ML_ROOT / "processing/output"  # SDK default output LocalPath
PROCESSING_JOB_CONFIG = CONTAINER_ML_ROOT / "config/processingjobconfig.json"
OUTPUT_MESSAGE = CONTAINER_ML_ROOT / "output/message"
CLOUDWATCH_METRICS_DIR = CONTAINER_ML_ROOT / "output/metrics/cloudwatch"
CLOUDWATCH_METRICS_FILE = CLOUDWATCH_METRICS_DIR / "cloudwatch_metrics.jsonl"
MODEL_DIR = CONTAINER_ML_ROOT / "model"  # inference containers: extracted model.tar.gz


def ml_root() -> Path:
    """The folder standing in for /opt/ml (the real /opt/ml unless overridden)."""
    override = os.environ.get(ML_ROOT_ENV)
    return Path(override) if override else Path(str(CONTAINER_ML_ROOT))


def resolve(container_path: str | PurePosixPath, root: Path | None = None) -> Path:
    """Map a container path (`/opt/ml/...`) onto the local root; other paths pass through.

    `root` defaults to the environment's root, so a job launcher can map paths for a job folder
    without setting the variable in its own process.
    """
    path = PurePosixPath(str(container_path))
    base = ml_root() if root is None else root
    try:
        relative = path.relative_to(CONTAINER_ML_ROOT)
    except ValueError:
        return Path(str(path))
    return base / relative


"""Model artifacts as SageMaker holds them: `model.tar.gz` whose members land in /opt/ml/model.

The archive holds `model.json` (the manifest: version, defect, hyperparameters, provenance) and
`model.npz` (the learned arrays). Both are written byte-for-byte reproducibly (fixed member
times and owners, no gzip timestamp), so training twice with one seed gives one checksum.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np

MANIFEST = "model.json"
ARRAYS = "model.npz"
ARCHIVE = "model.tar.gz"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


class ArtifactError(RuntimeError):
    """A model archive or model directory that cannot be read; the message names it."""


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz (what np.load reads) with fixed entry times, unlike np.savez."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(arrays):
            with archive.open(zipfile.ZipInfo(f"{name}.npy", date_time=_FIXED_TIME), "w") as member:
                np.lib.format.write_array(member, np.ascontiguousarray(arrays[name]), allow_pickle=False)
    return buffer.getvalue()


def write_archive(out_dir: str | Path, manifest: dict, arrays: dict[str, np.ndarray]) -> Path:
    members = {
        MANIFEST: (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode(),
        ARRAYS: npz_bytes(arrays),
    }
    path = Path(out_dir) / ARCHIVE
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed:
        with tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive:
            for name, content in members.items():
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(content), 0o644, 0
                archive.addfile(info, io.BytesIO(content))
    path.write_bytes(buffer.getvalue())
    return path


def extract(archive_path: str | Path, model_dir: str | Path) -> Path:
    """Unpack `model.tar.gz` into `model_dir` the way SageMaker fills /opt/ml/model."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive_path, "r:gz") as archive:
            archive.extractall(model_dir, filter="data")  # refuses absolute paths, links out, devices
    except (OSError, tarfile.TarError) as error:
        raise ArtifactError(f"model archive {archive_path}: cannot be extracted ({error})") from error
    return model_dir


def read_manifest(model_dir: str | Path) -> dict:
    path = Path(model_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise ArtifactError(f"model directory {model_dir}: no {MANIFEST} (was model.tar.gz extracted here?)") from error
    except (OSError, ValueError) as error:
        raise ArtifactError(f"model manifest {path}: unreadable ({error})") from error
    if not isinstance(manifest, dict):
        raise ArtifactError(f"model manifest {path}: expected a JSON object")
    return manifest


def read_arrays(model_dir: str | Path, required: dict[str, int]) -> dict[str, np.ndarray]:
    """The arrays of `model.npz`; `required` maps each expected name to its number of dimensions."""
    path = Path(model_dir) / ARRAYS
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except FileNotFoundError as error:
        raise ArtifactError(f"model directory {model_dir}: no {ARRAYS}") from error
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise ArtifactError(f"model arrays {path}: unreadable ({error})") from error
    for name, dimensions in required.items():
        if name not in arrays:
            raise ArtifactError(f"model arrays {path}: missing {name!r} (has {sorted(arrays)})")
        if arrays[name].ndim != dimensions:
            raise ArtifactError(f"model arrays {path}: {name!r} has {arrays[name].ndim} dimensions, expected {dimensions}")
    return arrays

"""Container images, locally: an image URI maps to one of the project's Dockerfiles.

No Docker engine runs here, so the local stack does what `docker run` would do as far as the
contract is concerned: it reads the Dockerfile's ENTRYPOINT, CMD and ENV, and runs that command
in this environment with `/opt/ml` mapped to a job folder (`container_paths`, the one mapping).

The mapping is explicit: the ECR repository name (the part of the URI between the registry and
the tag) is looked up in `LOCAL_IMAGES`. Any registry and tag resolve, so the URIs in schedules
and endpoint configs look exactly like production ones.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from diversity_monitor import container_paths

PROJECT_ROOT = Path(__file__).resolve().parents[3]

# ECR repository name -> Dockerfile (relative to the project root).
LOCAL_IMAGES: dict[str, str] = {
    "diversity-monitor": "Dockerfile",
    "news-recommender": "Dockerfile.recommender",
}

# Host variables a local "container" keeps: how to run Python here, and how to reach the local
# stack (on SageMaker the role's credentials and the real endpoints play this part).
_PASSTHROUGH_PREFIXES = ("AWS_",)
_PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT", "MPLBACKEND")


class ImageNotFound(LookupError):
    """An image URI that maps to no Dockerfile of the project."""


@dataclass(frozen=True)
class ImageSpec:
    uri: str
    repository: str
    dockerfile: Path
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)

    def command(self, arguments: list[str] | None = None) -> list[str]:
        """What `docker run IMAGE [ARGS]` executes: ENTRYPOINT + (ARGS or CMD)."""
        return [*self.entrypoint, *(arguments if arguments else self.cmd)]


def repository_of(image_uri: str) -> str:
    """`123.dkr.ecr.eu-west-1.amazonaws.com/team/diversity-monitor:v3` -> `diversity-monitor`."""
    without_digest = image_uri.split("@", 1)[0]
    last = without_digest.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def resolve(image_uri: str, project_root: Path = PROJECT_ROOT) -> ImageSpec:
    repository = repository_of(image_uri)
    relative = LOCAL_IMAGES.get(repository)
    if relative is None:
        raise ImageNotFound(
            f"image {image_uri!r}: repository {repository!r} maps to no Dockerfile "
            f"(known: {', '.join(sorted(LOCAL_IMAGES))})"
        )
    dockerfile = project_root / relative
    if not dockerfile.is_file():
        raise ImageNotFound(f"image {image_uri!r}: {dockerfile} does not exist")
    entrypoint, cmd, env = parse_dockerfile(dockerfile.read_text())
    if not entrypoint and not cmd:
        raise ImageNotFound(f"image {image_uri!r}: {dockerfile} declares no ENTRYPOINT or CMD")
    return ImageSpec(image_uri, repository, dockerfile, entrypoint, cmd, env)


def parse_dockerfile(text: str) -> tuple[tuple[str, ...], tuple[str, ...], dict[str, str]]:
    """The final stage's ENTRYPOINT, CMD (exec form or shell form) and ENV."""
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: dict[str, str] = {}
    for instruction, argument in _instructions(text):
        if instruction == "FROM":  # a new stage starts from scratch
            entrypoint, cmd, env = (), (), {}
        elif instruction == "ENTRYPOINT":
            entrypoint = _command_form(argument)
        elif instruction == "CMD":
            cmd = _command_form(argument)
        elif instruction == "ENV":
            env.update(_env_pairs(argument))
    return entrypoint, cmd, env


def _instructions(text: str):
    logical = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        instruction, _, argument = logical.partition(" ")
        yield instruction.upper(), argument.strip()
        logical = ""


def _command_form(argument: str) -> tuple[str, ...]:
    if argument.startswith("["):
        return tuple(json.loads(argument))
    return ("/bin/sh", "-c", argument)


def _env_pairs(argument: str) -> dict[str, str]:
    parts = shlex.split(argument)
    if parts and "=" not in parts[0]:  # legacy `ENV KEY value`
        return {parts[0]: " ".join(parts[1:])}
    return dict(part.split("=", 1) for part in parts)


def container_environment(spec: ImageSpec, job_root: Path, platform_env: dict[str, str]) -> dict[str, str]:
    """The environment a local run of the image sees: image ENV, then the platform's, then the root."""
    host = {
        key: value
        for key, value in os.environ.items()
        if key in _PASSTHROUGH or key.startswith(_PASSTHROUGH_PREFIXES)
    }
    # The project's virtual environment stands in for the image's installed packages.
    host["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), host.get("PATH", "")])
    return {
        **host,
        **spec.env,
        **platform_env,
        container_paths.ML_ROOT_ENV: str(job_root),
    }


def launch(
    spec: ImageSpec,
    job_root: Path,
    platform_env: dict[str, str],
    arguments: list[str] | None = None,
    *,
    log_path: Path | None = None,
) -> subprocess.Popen:
    """Start the image's command as a local process (the caller waits or keeps it serving)."""
    job_root.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            spec.command(arguments),
            env=container_environment(spec, job_root, platform_env),
            cwd=job_root,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so stopping a job stops its kernels too
        )
    finally:
        if log_path:
            log.close()

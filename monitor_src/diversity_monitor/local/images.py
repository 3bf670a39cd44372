"""Container images, locally: an image URI maps to one of the project's Dockerfiles.

No Docker engine runs here, so the local stack does what `docker run` would do as far as the
contract is concerned: it reads the Dockerfile's ENTRYPOINT, CMD, ENV and WORKDIR, and runs that
command in this environment with `/opt/ml` mapped to a job folder (`container_paths`, the one
mapping), in the WORKDIR mapped the same way. An image without a WORKDIR runs in the `/opt/ml`
stand-in (Docker's default `/` has no local counterpart); a WORKDIR outside `/opt/ml` cannot be
mapped and the image does not resolve.

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
from pathlib import Path, PurePosixPath

from diversity_monitor.aws import container_paths

PROJECT_ROOT = Path(__file__).resolve().parents[3]

# ECR repository name -> Dockerfile (relative to the project root).
LOCAL_IMAGES: dict[str, str] = {
    "diversity-monitor": "Dockerfile",
    "news-recommender": "Dockerfile.recommender",
}

# Host variables a local "container" keeps: how to run Python here. AWS settings come from the
# caller (the stack passes its own; on SageMaker the role's credentials play this part).
_PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT", "MPLBACKEND")
_AWS_PREFIX = "AWS_"


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
    workdir: PurePosixPath | None = None  # the final stage's WORKDIR, a container path

    def working_directory(self, job_root: Path) -> Path:
        """Where the process starts: the WORKDIR mapped onto the job folder, or the folder itself."""
        if self.workdir is None:
            return job_root
        return container_paths.resolve(self.workdir, root=job_root)

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
    parsed = parse_dockerfile(dockerfile.read_text())
    if not parsed.entrypoint and not parsed.cmd:
        raise ImageNotFound(f"image {image_uri!r}: {dockerfile} declares no ENTRYPOINT or CMD")
    if parsed.workdir is not None and not parsed.workdir.is_relative_to(container_paths.CONTAINER_ML_ROOT):
        raise ImageNotFound(
            f"image {image_uri!r}: {dockerfile} ends in WORKDIR {parsed.workdir}, outside "
            f"{container_paths.CONTAINER_ML_ROOT}, the only part of a container the local stack maps"
        )
    return ImageSpec(image_uri, repository, dockerfile, parsed.entrypoint, parsed.cmd, parsed.env, parsed.workdir)


@dataclass(frozen=True)
class Dockerfile:
    """What the final stage of a Dockerfile declares about running it."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    workdir: PurePosixPath | None = None


def parse_dockerfile(text: str) -> Dockerfile:
    """The final stage's ENTRYPOINT, CMD (exec form or shell form), ENV and WORKDIR."""
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: dict[str, str] = {}
    workdir: PurePosixPath | None = None
    for instruction, argument in _instructions(text):
        if instruction == "FROM":  # a new stage starts from scratch
            entrypoint, cmd, env, workdir = (), (), {}, None
        elif instruction == "ENTRYPOINT":
            entrypoint = _command_form(argument)
        elif instruction == "CMD":
            cmd = _command_form(argument)
        elif instruction == "ENV":
            env.update(_env_pairs(argument))
        elif instruction == "WORKDIR":
            # A relative WORKDIR is relative to the previous one (Docker's rule).
            workdir = PurePosixPath("/", *(workdir.parts if workdir else ()), argument.strip())
            if "$" in str(workdir):
                raise ImageNotFound(f"WORKDIR {argument!r}: variables in WORKDIR are not expanded by the local stack")
    return Dockerfile(entrypoint, cmd, env, workdir)


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
    """The environment a local run of the image sees: image ENV, then the platform's, then the root.

    No AWS_* variable of this process passes: the AWS settings are exactly those in
    `platform_env` (a user's AWS_ENDPOINT_URL_S3 or AWS_PROFILE must not divert a job from the
    stack; a test harness passes its own moto settings explicitly).
    """
    host = {key: value for key, value in os.environ.items() if key in _PASSTHROUGH}
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
    """Start the image's command as a local process (the caller waits or keeps it serving).

    It starts in the image's WORKDIR (created, as Docker does), with `container_environment`.
    """
    job_root.mkdir(parents=True, exist_ok=True)
    cwd = spec.working_directory(job_root)
    cwd.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            spec.command(arguments),
            env=container_environment(spec, job_root, platform_env),
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so stopping a job stops its kernels too
        )
    finally:
        if log_path:
            log.close()

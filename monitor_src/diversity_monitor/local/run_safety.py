"""What the local stack refuses to run: request content must never become a command on the host.

On SageMaker a container's command, environment and paths act inside the container. Here the
"container" is a process on the developer's machine (`images`), so the same request fields would
act on the host. The stack therefore runs only the entrypoints of the images it maps, and refuses
with a ValidationException that says why:

- `ContainerEntrypoint`: it would replace the image's entrypoint with any command;
- environment keys that change how a process starts (Python's, the dynamic loader's, a shell's,
  a browser's, a proxy, TLS trust) or that the stack itself sets (AWS settings, the `/opt/ml`
  mapping, the simulated clock, the model server's port);
- paths that leave `/opt/ml` (a `LocalPath` outside `/opt/ml/processing` after normalisation,
  an absolute path outside `/opt/ml` in `ContainerArguments` or an `Environment` value): locally
  they would name the host's files.

Each check returns every problem at once (botocore's style); `refuse` raises them together.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping

from diversity_monitor.aws import container_paths
from diversity_monitor.local.errors import ValidationError

# (pattern over the whole key, case-insensitive; why it is refused)
_STARTUP = "changes how Python, a shell, the dynamic loader or a browser starts"
_NETWORK = "changes where the process's connections go or which certificates it trusts"
_STACK_SETS = "is set by the local stack itself"
REFUSED_ENVIRONMENT: tuple[tuple[re.Pattern, str], ...] = tuple((re.compile(pattern, re.IGNORECASE), why) for pattern, why in (
    (r"PYTHON.*", _STARTUP),
    (r"(LD|DYLD)_.*", _STARTUP),
    (r"PATH|HOME|SHELL|ENV|BASH_ENV|BASH_FUNC_.*|SHELLOPTS|BASHOPTS|PS4|IFS|CDPATH|GLOBIGNORE", _STARTUP),
    (r"BROWSER|DISPLAY|WAYLAND_DISPLAY|GTK_.*|GIO_.*|XDG_.*|DBUS_.*", _STARTUP),
    (r"PERL5?(OPT|LIB)|PERLLIB|RUBYOPT|RUBYLIB|NODE_OPTIONS|NODE_PATH|(JAVA_TOOL|_JAVA|JDK_JAVA)_OPTIONS", _STARTUP),
    (r"GCONV_PATH|LOCPATH|NLSPATH|OPENSSL_.*|HOSTALIASES|RES_OPTIONS|LOCALDOMAIN", _STARTUP),
    (r"JUPYTER_.*|JPY_.*|IPYTHONDIR|MPLBACKEND|MPLCONFIGDIR|PAPERMILL_.*", _STARTUP),
    (r"(HTTP|HTTPS|ALL|NO|FTP)_PROXY|SSL_CERT_(FILE|DIR)|REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE", _NETWORK),
    (r"AWS_.*|DIVERSITY_MONITOR_.*|SAGEMAKER_BIND_TO_PORT", _STACK_SETS),
))
PROCESSING_ROOT = container_paths.CONTAINER_ML_ROOT / "processing"


def environment_problems(environment: Mapping[str, str] | None, field: str) -> list[str]:
    problems = []
    for key, value in (environment or {}).items():
        why = next((why for pattern, why in REFUSED_ENVIRONMENT if pattern.fullmatch(key)), None)
        if why:
            problems.append(f"{field} key {key!r} {why}; the local stack runs containers as processes on this "
                            "machine and refuses it")
        elif _host_path(value):
            problems.append(f"{field} {key}={value!r} names a path outside /opt/ml, which here would be this "
                            "machine's file")
    return problems


def entrypoint_problems(app: Mapping | None, field: str) -> list[str]:
    if app and app.get("ContainerEntrypoint"):
        return [f"{field}.ContainerEntrypoint is refused: the local stack runs only the entrypoint its image's "
                "Dockerfile declares (any other command would run on this machine)"]
    return []


def argument_problems(arguments: Iterable[str] | None, field: str) -> list[str]:
    problems = []
    for argument in arguments or ():
        value = argument.split("=", 1)[1] if argument.startswith("-") and "=" in argument else argument
        if _host_path(value):
            problems.append(f"{field} {argument!r} names a path outside /opt/ml, which here would be this machine's file")
    return problems


def processing_path_problems(paths: Mapping[str, str], root=PROCESSING_ROOT) -> list[str]:
    """`{field: LocalPath}`: each must stay under /opt/ml/processing once `..` is resolved."""
    return [f"{field} {path!r} leaves {root} once normalised ({posixpath.normpath(path)})" if ".." in path.split("/")
            else f"{field} {path!r} must be under {root}/"
            for field, path in paths.items() if not within(path, root)]


def within(container_path: str, root=container_paths.CONTAINER_ML_ROOT) -> bool:
    """True if `container_path`, `..` resolved, is absolute and inside `root`."""
    text = str(container_path)
    if not text.startswith("/"):
        return False
    normalised = posixpath.normpath(text)
    return normalised == str(root) or normalised.startswith(str(root) + "/")


def _host_path(value: str) -> bool:
    """An absolute path (or file: URI) that is not under /opt/ml."""
    text = value.strip()
    if text.lower().startswith("file:"):
        return True
    return text.startswith("/") and not within(text)


def processing_job_problems(description: Mapping) -> list[str]:
    """Every problem of a CreateProcessingJob-shaped description (the API handler checks it; the
    runner checks it again for jobs described by the stack's own modules)."""
    app = description.get("AppSpecification", {})
    paths = {f"ProcessingInputs[{n}].S3Input.LocalPath": item["S3Input"]["LocalPath"]
             for n, item in enumerate(description.get("ProcessingInputs", [])) if "S3Input" in item}
    paths.update({f"ProcessingOutputConfig.Outputs[{n}].S3Output.LocalPath": item["S3Output"]["LocalPath"]
                  for n, item in enumerate(description.get("ProcessingOutputConfig", {}).get("Outputs", []))
                  if "S3Output" in item})
    return [
        *entrypoint_problems(app, "AppSpecification"),
        *argument_problems(app.get("ContainerArguments"), "AppSpecification.ContainerArguments"),
        *environment_problems(description.get("Environment"), "Environment"),
        *processing_path_problems(paths),
    ]


def refuse(problems: list[str]) -> None:
    if problems:
        raise ValidationError("; ".join(problems))

"""Requests checked against the AWS service models shipped in botocore, the way the service checks them.

boto3 validates a request's shape before sending it (required members, types, minimums), but
maximums, enums and patterns are left to the service. A request the kit builds ahead of time (a
rollback, a re-run schedule, an EventBridge Scheduler target) or that the local stand-in receives
is checked here against all of it, so what AWS would reject is rejected before anything changes.
The messages use the service's own wording ("1 validation error detected: Value 'x' at 'y'
failed to satisfy constraint: ...").
"""

from __future__ import annotations

import functools
import re

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape
from botocore.validate import ParamValidator


class RequestInvalid(ValueError):
    """A request the service model rejects; the message says which member and why."""


@functools.cache
def service_model(service_name: str) -> ServiceModel:
    return botocore.session.get_session().get_service_model(service_name)


def operation_model(service_name: str, operation_name: str) -> OperationModel:
    return service_model(service_name).operation_model(operation_name)


# Java regex classes the models use that Python's `re` spells differently. Patterns using
# Unicode categories (\p{L}, \p{N}...) are not expressible in `re` and are not checked.
_JAVA_CLASSES = {"ASCII": r"\x00-\x7F", "Print": r"\x20-\x7E", "Alnum": r"a-zA-Z0-9"}


@functools.cache
def _pattern(java_pattern: str) -> re.Pattern | None:
    translated, depth, position = [], 0, 0
    while position < len(java_pattern):
        char = java_pattern[position]
        if char == "\\" and java_pattern.startswith("p{", position + 1):
            end = java_pattern.index("}", position)
            name = java_pattern[position + 3:end]
            if name not in _JAVA_CLASSES:
                return None
            body = _JAVA_CLASSES[name]
            translated.append(body if depth else f"[{body}]")
            position = end + 1
            continue
        if char == "\\" and position + 1 < len(java_pattern):
            pair = java_pattern[position:position + 2]
            translated.append(r"\Z" if pair == r"\z" else pair)
            position += 2
            continue
        depth += {"[": 1, "]": -1}.get(char, 0)
        translated.append(char)
        position += 1
    try:
        return re.compile("".join(translated))
    except re.error:
        return None


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def constraint_problems(value, shape: Shape, where: str = "") -> list[tuple[str, object, str]]:
    """(path, value, constraint) for each maximum, enum or pattern the value breaks."""
    meta, problems = shape.metadata, []
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value and value[name] is not None:
                path = f"{where}.{_camel(name)}" if where else _camel(name)
                problems += constraint_problems(value[name], member, path)
    elif kind == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            problems.append((where, value, f"Member must have length less than or equal to {meta['max']}"))
        for position, item in enumerate(value, start=1):
            problems += constraint_problems(item, shape.member, f"{where}.{position}.member")
    elif kind == "map" and isinstance(value, dict):
        if "max" in meta and len(value) > meta["max"]:
            problems.append((where, value, f"Member must have length less than or equal to {meta['max']}"))
        for key, item in value.items():
            problems += constraint_problems(key, shape.key, f"{where}.{key}.key")
            problems += constraint_problems(item, shape.value, f"{where}.{key}.value")
    elif kind in ("string", "blob") and isinstance(value, (str, bytes)):
        if "max" in meta and len(value) > meta["max"]:
            problems.append((where, value, f"Member must have length less than or equal to {meta['max']}"))
        if kind == "string" and getattr(shape, "enum", None) and value not in shape.enum:
            problems.append((where, value, f"Member must satisfy enum value set: [{', '.join(shape.enum)}]"))
        pattern = _pattern(meta["pattern"]) if kind == "string" and meta.get("pattern") else None
        if pattern is not None and not pattern.fullmatch(value):
            problems.append((where, value, f"Member must satisfy regular expression pattern: {meta['pattern']}"))
    elif kind in ("integer", "long", "float", "double") and isinstance(value, (int, float)) and not isinstance(value, bool):
        if "max" in meta and value > meta["max"]:
            problems.append((where, value, f"Member must have value less than or equal to {meta['max']}"))
    return problems


def request_problem(params: dict, operation: OperationModel, *, constraints: bool = True) -> str | None:
    """Why the service would reject `params` (its own wording), or None when it would accept them.

    `constraints=False` checks the shape only (what boto3 checks): for a template whose
    placeholders (`<aws.scheduler.execution-id>`) are filled in later and checked then.
    """
    shape = operation.input_shape
    if shape is None:
        return f"{operation.name} takes no parameters, got {sorted(params)}" if params else None
    report = ParamValidator().validate(params, shape)
    if report.has_errors():
        return report.generate_report()
    problems = constraint_problems(params, shape) if constraints else []
    if not problems:
        return None
    details = "; ".join(f"Value '{_shown(value)}' at '{path}' failed to satisfy constraint: {constraint}"
                        for path, value, constraint in problems)
    return f"{len(problems)} validation error{'s' if len(problems) > 1 else ''} detected: {details}"


def validate_request(service_name: str, operation_name: str, params: dict, *, constraints: bool = True) -> dict:
    """`params` unchanged when the service model accepts them; RequestInvalid naming the operation otherwise."""
    problem = request_problem(params, operation_model(service_name, operation_name), constraints=constraints)
    if problem:
        raise RequestInvalid(f"{service_name} {operation_name}: {problem}")
    return params


def validate_shape(service_name: str, shape_name: str, value, what: str) -> None:
    """RequestInvalid listing every problem (shape, maximums, enums, patterns) unless `value` fits the shape.

    For settings checked before any request carries them (a capture writer's DataCaptureConfig,
    an endpoint name): the same rules as a request, the same wording.
    """
    shape = service_model(service_name).shape_for(shape_name)
    report = ParamValidator().validate(value, shape)
    problems = [report.generate_report()] if report.has_errors() else []
    problems += [f"Value '{_shown(bad)}' at '{path or what}' failed to satisfy constraint: {constraint}"
                 for path, bad, constraint in constraint_problems(value, shape)]
    if problems:
        raise RequestInvalid(f"invalid {what}: " + "; ".join(problems))


def _shown(value) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text if len(text) <= 200 else text[:200] + "..."

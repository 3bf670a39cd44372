"""`DataCaptureConfig` checked against the SageMaker API's own model (botocore's service-2.json).

botocore's ParamValidator checks types, required members and minimums; the model also carries
maximums, enums and patterns, which `_check_constraints` walks generically, so no constraint is
restated by hand here. Endpoint and variant names are checked against their shapes the same way.
"""

from __future__ import annotations

import functools
import re

import botocore.session
from botocore.validate import ParamValidator


class CaptureConfigError(ValueError):
    """A data capture setting the SageMaker API would reject; the message lists every problem."""


@functools.lru_cache(maxsize=1)
def _model():
    return botocore.session.get_session().get_service_model("sagemaker")


def validate(shape_name: str, value: object, what: str) -> None:
    """Raise CaptureConfigError unless `value` fits the model shape `shape_name`."""
    shape = _model().shape_for(shape_name)
    report = ParamValidator().validate(value, shape)
    problems = [report.generate_report()] if report.has_errors() else []
    problems += _check_constraints(value, shape, what)
    if problems:
        raise CaptureConfigError(f"invalid {what}: " + "; ".join(problems))


def _check_constraints(value, shape, where: str) -> list[str]:
    problems = []
    meta = shape.metadata
    if shape.type_name == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                problems += _check_constraints(value[name], member, f"{where}.{name}")
    elif shape.type_name == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{where} has {len(value)} items, at most {meta['max']} allowed")
        for position, item in enumerate(value):
            problems += _check_constraints(item, shape.member, f"{where}[{position}]")
    elif shape.type_name == "string" and isinstance(value, str):
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{where} is {len(value)} characters, at most {meta['max']} allowed")
        if getattr(shape, "enum", None) and value not in shape.enum:
            problems.append(f"{where} is {value!r}, must be one of {shape.enum}")
        pattern = _pattern(meta.get("pattern"))
        if pattern is not None and not pattern.fullmatch(value):
            problems.append(f"{where} {value!r} does not match the pattern {meta['pattern']!r}")
    elif shape.type_name == "integer" and isinstance(value, int) and not isinstance(value, bool):
        if "max" in meta and value > meta["max"]:
            problems.append(f"{where} is {value}, at most {meta['max']} allowed")
    return problems


@functools.lru_cache(maxsize=64)
def _pattern(text: str | None) -> re.Pattern | None:
    """The model's (Java) pattern as a Python regex; None when absent or not expressible in `re`."""
    if not text:
        return None
    try:
        return re.compile(text)
    except re.error:  # e.g. \p{ASCII}: no such shape is used for data capture settings
        return None

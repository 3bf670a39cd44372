"""The invocation request body, declared once: field -> (required, default, check).

`{"user_id": "u00042", "history": ["a0123", ...], "k": 10, "candidates": ["a0456", ...]}`:
`history` (recently clicked article ids, oldest first) defaults to empty and `k` to 10.
`candidates` (default: none, rank the whole catalog) restricts the answer to those articles:
re-rank this impression's candidates, the common news task (MIND's impressions). Unknown fields are ignored, as a
model server should when clients add tracing fields. Every problem is a `RequestError` naming
the field and what is wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_ID_LENGTH = 128
MAX_HISTORY = 1000
MAX_CANDIDATES = 1000
K_RANGE = (1, 100)


class RequestError(ValueError):
    """A request the model cannot serve; the message is the reason given to the caller."""


@dataclass(frozen=True)
class Request:
    user_id: str
    history: list[str]
    k: int
    candidates: list[str] | None = None


def _identifier(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "must be a non-empty string"
    if len(value) > MAX_ID_LENGTH:
        return f"must be at most {MAX_ID_LENGTH} characters"
    return None


def _history(value: Any) -> str | None:
    if not isinstance(value, list):
        return f"must be a list of article ids, got {type(value).__name__}"
    if len(value) > MAX_HISTORY:
        return f"must hold at most {MAX_HISTORY} article ids, got {len(value)}"
    for position, item in enumerate(value):
        problem = _identifier(item)
        if problem:
            return f"item {position} {problem}"
    return None


def _candidates(value: Any) -> str | None:
    if not isinstance(value, list) or not value:
        return f"must be a non-empty list of article ids, got {type(value).__name__ if not isinstance(value, list) else 'an empty list'}"
    if len(value) > MAX_CANDIDATES:
        return f"must hold at most {MAX_CANDIDATES} article ids, got {len(value)}"
    return _history(value)


def _k(value: Any) -> str | None:
    low, high = K_RANGE
    if isinstance(value, bool) or not isinstance(value, int):
        return f"must be an integer in {low}..{high}, got {type(value).__name__}"
    if not low <= value <= high:
        return f"must be in {low}..{high}, got {value}"
    return None


@dataclass(frozen=True)
class Field:
    required: bool
    default: Callable[[], Any] | None
    check: Callable[[Any], str | None]


FIELDS: dict[str, Field] = {
    "user_id": Field(required=True, default=None, check=_identifier),
    "history": Field(required=False, default=list, check=_history),
    "k": Field(required=False, default=lambda: 10, check=_k),
    "candidates": Field(required=False, default=lambda: None, check=_candidates),
}


def parse(body: Any) -> Request:
    if not isinstance(body, dict):
        raise RequestError(f"request body must be a JSON object, got {type(body).__name__}")
    values = {}
    for name, field in FIELDS.items():
        if name not in body or (body[name] is None and not field.required):
            if field.required:
                raise RequestError(f"'{name}' is required")
            values[name] = field.default()
            continue
        problem = field.check(body[name])
        if problem:
            raise RequestError(f"'{name}' {problem}")
        values[name] = body[name]
    return Request(**values)

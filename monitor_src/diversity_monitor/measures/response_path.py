"""Where the ranked article ids sit in a response payload: a tiny path expression.

`recommendations[].article_id` reads `payload["recommendations"]` as a list and takes
`item["article_id"]` from each item, in order. Grammar: keys separated by `.`, with exactly one
`[]` after the key that holds the ranked list (or first, when the payload itself is the list):
`ids[]`, `[].article_id`, `result.items[].id`. Every id must be a string.

`compile_response_path` returns a function payload -> list[str]. It runs a plain comprehension
first (the capture reader calls it ~150,000 times a second) and only on failure walks the payload
again to say exactly what did not match; so the fast path and the error agree by construction.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from operator import itemgetter

DEFAULT_RESPONSE_PATH = "recommendations[].article_id"

_KEY = r"[^.\[\]\s]+"
_GRAMMAR = re.compile(rf"(?P<prefix>{_KEY}(?:\.{_KEY})*)?\[\](?:\.(?P<suffix>{_KEY}(?:\.{_KEY})*))?")
_EXAMPLE = "e.g. 'recommendations[].article_id'"


def compile_response_path(expr: str) -> Callable[[object], list[str]]:
    """Compile `expr`; the result raises ValueError naming the mismatch on a payload that doesn't fit."""
    match = _GRAMMAR.fullmatch(expr) if isinstance(expr, str) else None
    if match is None:
        raise ValueError(
            f"response path {expr!r} is not valid: expected keys separated by '.', with exactly one '[]' "
            f"after the key that holds the ranked list ({_EXAMPLE})"
        )
    prefix = tuple(match["prefix"].split(".")) if match["prefix"] else ()
    suffix = tuple(match["suffix"].split(".")) if match["suffix"] else ()
    explain = _explainer(expr, prefix, suffix)
    leaf = itemgetter(suffix[0]) if len(suffix) == 1 else None  # the common case, at C speed

    def extract(payload: object) -> list[str]:
        try:
            node = payload
            for key in prefix:
                node = node[key]
            if type(node) is not list:  # a dict or string would iterate without error
                raise TypeError
            if leaf is not None:
                ids = list(map(leaf, node))
            elif suffix:
                ids = [_dig(item, suffix) for item in node]
            else:
                ids = list(node)
            "".join(ids)  # TypeError unless every id is a str, at C speed
            return ids
        except (KeyError, TypeError, IndexError):
            explain(payload)
            raise AssertionError("unreachable: the explainer raises for every mismatch") from None

    extract.expression = expr  # type: ignore[attr-defined]
    return extract


def _dig(node, keys):
    for key in keys:
        node = node[key]
    return node


def _explainer(expr: str, prefix: tuple[str, ...], suffix: tuple[str, ...]) -> Callable[[object], None]:
    """The slow walk: raises ValueError saying where the payload departs from the path."""

    def fail(problem: str) -> None:
        raise ValueError(f"response payload does not match {expr!r}: {problem}")

    def walk(node: object, keys: tuple[str, ...], where: str) -> object:
        for key in keys:
            if not isinstance(node, dict):
                fail(f"{where} is {_kind(node)}, expected an object with key {key!r}")
            if key not in node:
                fail(f"{where} has no key {key!r}")
            node = node[key]
            where = f"{where}.{key}" if where != "payload" else key
        return node

    def explain(payload: object) -> None:
        node = walk(payload, prefix, "payload")
        where = ".".join(prefix) or "payload"
        if not isinstance(node, list):
            fail(f"{where} is {_kind(node)}, expected a list")
        for position, item in enumerate(node):
            value = walk(item, suffix, f"item {position}")
            if not isinstance(value, str):
                leaf = f"item {position}" + (f" {'.'.join(suffix)}" if suffix else "")
                fail(f"{leaf} is {_kind(value)}, expected a string article id")
        fail("unexpected shape")  # only reached if the fast path and this walk disagree

    return explain


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), f"a {type(value).__name__}")

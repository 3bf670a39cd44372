"""CloudWatch composite-alarm rules (PutCompositeAlarm's AlarmRule), parsed and evaluated. Pure: no I/O.

Source: the PutCompositeAlarm API reference, AlarmRule:
- functions `ALARM(name)`, `OK(name)`, `INSUFFICIENT_DATA(name)`: TRUE when the named alarm is in that
  state; the name is an alarm name or ARN, "surrounded with double-quotes, but do not have to be";
- `TRUE` and `FALSE`; operators `AND`, `OR`, `NOT`; parentheses group.
The reference does not state precedence; we follow the usual one (NOT binds tighter than AND,
AND tighter than OR), the reading of its own examples (`ALARM(a) AND NOT ALARM(b)`).

And the CloudWatch user guide on composite alarms: the composite is in ALARM when its rule is
TRUE and in OK when it is FALSE; "for a composite alarm, this initial time after creation is the
only time that the alarm can be in INSUFFICIENT_DATA state".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

FUNCTIONS = ("ALARM", "OK", "INSUFFICIENT_DATA")
MAX_CHILDREN = 100  # "The rule expression of a composite alarm can include as many as 100 underlying alarms."
_TOKEN = re.compile(r'\s*(?:(\()|(\))|"([^"]*)"|([A-Za-z_]+)(?=\s*\()|([^\s()"]+))')
_ALARM_ARN = re.compile(r"^arn:aws[a-z-]*:cloudwatch:[^:]*:\d{12}:alarm:(.+)$")


class RuleError(ValueError):
    """An AlarmRule CloudWatch would reject; the message says where."""


@dataclass(frozen=True)
class Node:
    kind: str  # "const", "state", "not", "and", "or"
    value: object = None  # const: bool; state: (function, alarm name)
    children: tuple[Node, ...] = ()


def alarm_name(reference: str) -> str:
    """An alarm named by name or ARN, as a name."""
    match = _ALARM_ARN.match(reference)
    return match.group(1) if match else reference


def _tokens(rule: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    text = rule.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise RuleError(f"AlarmRule: cannot read {text[position:position + 30]!r} at character {position + 1}")
        opening, closing, quoted, function, word = match.groups()
        if opening:
            tokens.append(("(", "("))
        elif closing:
            tokens.append((")", ")"))
        elif quoted is not None:
            tokens.append(("name", quoted))
        elif function and function.upper() not in ("AND", "OR", "NOT"):
            tokens.append(("function", function))
        elif function:
            tokens.append(("word", function))
        else:
            tokens.append(("word", word))
        position = match.end()
    return tokens


def parse(rule: str) -> Node:
    """The rule as a tree; RuleError names what is wrong."""
    if not isinstance(rule, str) or not rule.strip():
        raise RuleError("AlarmRule: empty rule")
    tokens = _tokens(rule)
    position = 0

    def peek() -> tuple[str, str] | None:
        return tokens[position] if position < len(tokens) else None

    def take(kind: str, what: str) -> str:
        nonlocal position
        token = peek()
        if token is None or token[0] != kind:
            found = repr(token[1]) if token else "the end of the rule"
            raise RuleError(f"AlarmRule: expected {what}, found {found}")
        position += 1
        return token[1]

    def keyword(word: str) -> bool:
        token = peek()
        return token is not None and token[0] == "word" and token[1].upper() == word

    def expression() -> Node:
        nonlocal position
        terms = [conjunction()]
        while keyword("OR"):
            position += 1
            terms.append(conjunction())
        return terms[0] if len(terms) == 1 else Node("or", children=tuple(terms))

    def conjunction() -> Node:
        nonlocal position
        factors = [factor()]
        while keyword("AND"):
            position += 1
            factors.append(factor())
        return factors[0] if len(factors) == 1 else Node("and", children=tuple(factors))

    def factor() -> Node:
        nonlocal position
        token = peek()
        if token is None:
            raise RuleError("AlarmRule: the rule ends where a condition was expected")
        kind, text = token
        if kind == "word" and text.upper() == "NOT":
            position += 1
            return Node("not", children=(factor(),))
        if kind == "word" and text.upper() in ("TRUE", "FALSE"):
            position += 1
            return Node("const", text.upper() == "TRUE")
        if kind == "(":
            position += 1
            inner = expression()
            take(")", "')'")
            return inner
        if kind == "function":
            if text not in FUNCTIONS:
                raise RuleError(f"AlarmRule: unknown function {text!r} (use one of {', '.join(FUNCTIONS)})")
            position += 1
            take("(", "'(' after " + text)
            token = peek()
            if token is None or token[0] not in ("name", "word"):
                raise RuleError(f"AlarmRule: {text}( needs an alarm name or ARN")
            position += 1
            name = alarm_name(token[1].strip())
            if not name:
                raise RuleError(f"AlarmRule: {text}() names no alarm")
            take(")", f"')' after the alarm name in {text}(")
            return Node("state", (text, name))
        raise RuleError(f"AlarmRule: expected a condition, found {text!r}")

    tree = expression()
    if peek() is not None:
        raise RuleError(f"AlarmRule: unexpected {peek()[1]!r} after a complete rule")
    if len(children(tree)) > MAX_CHILDREN:
        raise RuleError(f"AlarmRule: names {len(children(tree))} alarms; at most {MAX_CHILDREN}")
    return tree


def children(tree: Node) -> list[str]:
    """The alarms the rule names, in order of first mention."""
    names: list[str] = []

    def walk(node: Node) -> None:
        if node.kind == "state" and node.value[1] not in names:
            names.append(node.value[1])
        for child in node.children:
            walk(child)

    walk(tree)
    return names


def evaluate(tree: Node, state_of: Callable[[str], str]) -> bool:
    """Is the rule TRUE, given each named alarm's state."""
    if tree.kind == "const":
        return bool(tree.value)
    if tree.kind == "state":
        function, name = tree.value
        return state_of(name) == function
    if tree.kind == "not":
        return not evaluate(tree.children[0], state_of)
    if tree.kind == "and":
        return all(evaluate(child, state_of) for child in tree.children)
    return any(evaluate(child, state_of) for child in tree.children)


def holding(tree: Node, state_of: Callable[[str], str]) -> list[str]:
    """The alarms whose function in the rule is TRUE now (what made an ALARM rule true)."""
    found: list[str] = []

    def walk(node: Node, negated: bool) -> None:
        if node.kind == "state":
            function, name = node.value
            if (state_of(name) == function) != negated and name not in found:
                found.append(name)
        for child in node.children:
            walk(child, negated != (node.kind == "not"))

    walk(tree, False)
    return found

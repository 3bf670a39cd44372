"""Composite-alarm rules as the PutCompositeAlarm reference documents them, by hand."""

import pytest

from diversity_monitor.aws import composite_rule as rule

STATES = {"cpu": "ALARM", "disk": "OK", "deploy": "INSUFFICIENT_DATA"}


def truth(text: str) -> bool:
    return rule.evaluate(rule.parse(text), lambda name: STATES.get(name, "INSUFFICIENT_DATA"))


def test_the_documented_functions_and_operators():
    assert truth("ALARM(cpu)") and truth('ALARM("cpu")') and not truth("ALARM(disk)")
    assert truth("OK(disk)") and truth("INSUFFICIENT_DATA(deploy)")
    assert truth("TRUE") and not truth("FALSE")
    assert truth("ALARM(cpu) AND NOT ALARM(deploy)")  # the reference's own example shape
    assert not truth("ALARM(cpu) AND ALARM(disk)") and truth("ALARM(cpu) OR ALARM(disk)")
    assert truth("ALARM(disk) OR ALARM(cpu) AND OK(disk)")  # AND binds tighter than OR
    assert not truth("(ALARM(disk) OR ALARM(cpu)) AND NOT OK(disk)")
    assert truth('ALARM("arn:aws:cloudwatch:eu-west-1:123456789012:alarm:cpu")')  # an ARN names the alarm


def test_children_and_what_holds():
    tree = rule.parse('ALARM("a") OR (ALARM(b) AND NOT OK(c)) OR ALARM("a")')
    assert rule.children(tree) == ["a", "b", "c"]
    states = {"a": "OK", "b": "ALARM", "c": "ALARM"}
    assert rule.holding(tree, states.get) == ["b", "c"]  # NOT OK(c) holds because c is not OK


@pytest.mark.parametrize("text, message", [
    ("", "empty"), ("ALARM(a) OR", "ends where a condition"), ("ALARM(a) ALARM(b)", "unexpected"),
    ("PANIC(a)", "unknown function"), ("ALARM()", "needs an alarm name"), ("(ALARM(a)", "found the end of the rule"),
])
def test_bad_rules_are_named(text, message):
    with pytest.raises(rule.RuleError, match=message):
        rule.parse(text)

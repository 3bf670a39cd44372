"""The command line as a new user meets it: --version, a description on every (sub)command, one
name per option (old spellings warn), the README's command list, and a replay that says when its
figures do not count."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

import pytest

from diversity_monitor import cli
from diversity_monitor.job.commands import replay_problems
from helpers.paths import ROOT


def subparsers_of(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert re.fullmatch(r"diversity-monitor \d+\.\d+\.\d+\S*\n", capsys.readouterr().out)


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_every_command_and_subcommand_is_described(name):
    command = subparsers_of(cli.build_parser([name]))[name]
    assert command.description, name
    for sub_name, sub in subparsers_of(command).items():
        assert sub.description, f"{name} {sub_name}"
        shown = " ".join(sub.format_help().split())  # argparse wraps long descriptions
        assert f"{name} {sub_name}" in shown and " ".join(sub.description.split()) in shown


def test_local_subcommands_say_what_they_do(capsys):
    with pytest.raises(SystemExit):
        cli.main(["local", "advance", "--help"])
    assert "move a simulated clock forward" in capsys.readouterr().out


def test_capture_stats_says_top_k_like_every_command_and_k_still_works_with_a_warning(capsys):
    arguments = ["capture-stats", "s3://bucket/datacapture", "--catalog", "catalog.csv"]
    assert cli.build_parser(arguments).parse_args([*arguments, "--top-k", "5"]).top_k == 5
    assert "warning" not in capsys.readouterr().err
    assert cli.build_parser(arguments).parse_args([*arguments, "--k", "7"]).top_k == 7
    warned = capsys.readouterr().err
    assert "--k is deprecated" in warned and "use --top-k" in warned
    help_text = subparsers_of(cli.build_parser(arguments))["capture-stats"].format_help()
    assert "--top-k" in help_text and "--k " not in help_text


def test_no_command_spells_an_option_k():
    for name in cli.COMMANDS:
        command = subparsers_of(cli.build_parser([name]))[name]
        for parser in [command, *subparsers_of(command).values()]:
            visible = {option for action in parser._actions if action.help != argparse.SUPPRESS
                       for option in action.option_strings}
            assert "--k" not in visible, name


def test_readme_lists_every_command():
    readme = (ROOT / "README.md").read_text()
    assert [name for name in cli.COMMANDS if f"diversity-monitor {name}" not in readme] == []


@dataclass
class _Outcome:
    error: str | None


@dataclass
class _Result:
    outcomes: list

    attempted = property(lambda self: len(self.outcomes))
    succeeded = property(lambda self: sum(o.error is None for o in self.outcomes))
    success_rate = property(lambda self: self.succeeded / self.attempted)

    def errors(self):
        kinds: dict[str, int] = {}
        for outcome in self.outcomes:
            if outcome.error:
                kinds[outcome.error.split(":")[0]] = kinds.get(outcome.error.split(":")[0], 0) + 1
        return kinds


def test_a_replay_with_nothing_replayed_is_never_called_reliable():
    result = _Result([_Outcome("ValidationError: Endpoint recommender-prd not found")] * 500)
    lines = replay_problems(result, reliable=result.success_rate >= 0.95, min_success_rate=0.95)
    assert "replay errors: 500 session(s): ValidationError" in lines
    assert "first error: ValidationError: Endpoint recommender-prd not found" in lines
    assert any(line.startswith("NOT RELIABLE: 0 of 500 sessions replayed") for line in lines)

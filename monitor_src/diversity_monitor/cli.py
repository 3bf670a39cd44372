"""`diversity-monitor`: one command line, subcommands registered by the module that owns them.

The registry maps a subcommand to "module:function"; the function adds its parser to the
subparsers and sets `handler`. Modules are imported only when their command is used, so
`diversity-monitor run` inside the container never imports the local stack.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
from importlib.metadata import PackageNotFoundError, version

# name -> "module:register_function". One line per command; the module owns its arguments.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("diversity_monitor.job.entrypoint:register_run", "run the monitoring job (container entrypoint)"),
    "baseline": ("diversity_monitor.job.commands:register_baseline", "replay against an endpoint and write a baseline"),
    "replay": ("diversity_monitor.job.commands:register_replay", "one-off replay; prints the diversity table"),
    "baseline-gate": ("diversity_monitor.setup.baseline_gate:register", "judge a candidate's baseline against the floor and the previous version (exit 1: do not deploy)"),
    "demo": ("diversity_monitor.demo.command:register", "replay the incident end to end on the embedded local stack"),
    "drill": ("diversity_monitor.demo.drill:register", "rehearse the incident: replay it up to the page and leave the local stack serving, for the on-call to walk the alarm runbook"),
    "capture-stats": ("diversity_monitor.oncall.capture_stats:register", "live-traffic diversity and malformed lines from data capture (S3 or folder)"),
    "alarm-backtest": ("diversity_monitor.oncall.alarm_backtest:register", "replay a metric's history through CloudWatch's alarm rules; sweep thresholds and M-of-N against incidents"),
    "policy": ("diversity_monitor.setup.permissions:register", "print the least-privilege IAM policy (JSON) of one role: job, scheduler, data-scientist or oncall, scoped to the endpoint, buckets, prefixes and keys given"),
    "recommender": ("diversity_monitor.recommender.cli:register", "reference news recommender: generate data, train, serve"),
    "local": ("diversity_monitor.local.cli:register", "the embedded local stack: up, down, status, advance"),
}


def deprecated_alias(parser: argparse.ArgumentParser, old: str, new: str) -> None:
    """Keep `old`, a former spelling of option `new`, working for one release: it sets the same value
    and warns. Hidden from --help, so nobody starts using it. Every renamed option goes through here."""
    target = next(action for action in parser._actions if new in action.option_strings)

    class _Deprecated(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            print(f"warning: {old} is deprecated and will be removed in the next release; use {new}", file=sys.stderr)
            setattr(namespace, target.dest, values)

    parser.add_argument(old, dest=target.dest, type=target.type, action=_Deprecated, metavar=target.metavar,
                        help=argparse.SUPPRESS)


def package_version() -> str:
    try:
        return version("diversity-monitor")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def describe_subcommands(parser: argparse.ArgumentParser) -> None:
    """A nested subcommand without a description gets its one-line help as one (`local up --help` says
    what `up` does), whichever module registered it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, subparser in action.choices.items():
                if subparser.description is None and helps.get(name):
                    subparser.description = helps[name]
                describe_subcommands(subparser)

# --- numeric options: every one range-checked, by one pair of argparse types --------------------
# A value out of range is a usage error naming the option (exit 2), never a MemoryError or a
# traceback further down (`capture-stats --k 1000000000` once allocated a billion-slot histogram).

def whole_option(name: str, low: int = 1, high: int | None = None):
    """argparse type: a whole number in [low, high] (no upper bound when `high` is None)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a whole number, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{name} must be between {low} and {high}, got {value}" if high is not None
                                             else f"{name} must be at least {low}, got {value}")
        return value

    return parse


def number_option(name: str, low: float, high: float):
    """argparse type: a finite number in [low, high]."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{name} must be a finite number, got {text!r}")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{name} must be between {low:g} and {high:g}, got {value:g}")
        return value

    return parse


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diversity-monitor", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    for name, (target, help_text) in COMMANDS.items():
        if name == chosen:
            module_name, function_name = target.split(":")
            register = getattr(importlib.import_module(module_name), function_name)
            command = subparsers.add_parser(name, help=help_text, description=help_text)
            register(command)
            describe_subcommands(command)
        else:
            subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_extra_arguments", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra_arguments = extra
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    return int(handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

"""`diversity-monitor baseline` and `replay`: the run's measurement, by hand, against any endpoint."""

from __future__ import annotations

import argparse
import json
import sys
import traceback

from diversity_monitor import storage
from diversity_monitor.aws.session import SetupError
from diversity_monitor.conventions import (
    CUSTOM_BLOCK,
    DEFAULT_MEAN_TOLERANCE,
    DEFAULT_MIN_SUCCESS_RATE,
    DEFAULT_SLOT_MARGIN,
)
from diversity_monitor.job import contract
from diversity_monitor.job.contract import ContractError
from diversity_monitor.job.inputs import InputError
from diversity_monitor.job.model_monitor_files import BaselineError

EXIT_FAILED = 1


def _add_endpoint_arguments(parser: argparse.ArgumentParser) -> None:
    parser.allow_abbrev = False
    parser.add_argument("--endpoint-name", type=contract.endpoint_name_argument, required=True, metavar="NAME",
                        help="endpoint to replay against")
    contract.add_replay_arguments(parser)


def register_baseline(parser: argparse.ArgumentParser) -> None:
    _add_endpoint_arguments(parser)
    parser.add_argument("--output", required=True, metavar="URI",
                        help="where statistics.json and constraints.json go (s3://.../baselines/<model-version>/)")
    parser.add_argument("--mean-tolerance", type=contract.number_argument("--mean-tolerance", 0, 1000),
                        default=DEFAULT_MEAN_TOLERANCE,
                        help=f"how far below the baseline mean a run may fall (categories, default {DEFAULT_MEAN_TOLERANCE:g})")
    parser.add_argument("--slot-margin", type=contract.number_argument("--slot-margin", 0, 1), default=DEFAULT_SLOT_MARGIN,
                        help="how far above the baseline's most-concentrated slot share a run may go "
                             f"(default {DEFAULT_SLOT_MARGIN:g})")
    contract.add_limit_arguments(parser)  # every bound the baseline suggests is capped by them
    parser.add_argument("--overwrite", action="store_true", help="replace an existing baseline at --output")
    parser.set_defaults(handler=_baseline)


def _command_failed(command: str, error: Exception) -> int:
    """A named error for the baseline / replay commands; a traceback only for what nobody foresaw."""
    if not isinstance(error, (BaselineError, InputError, ContractError, storage.StorageError, SetupError)):
        traceback.print_exc(file=sys.stderr)
        print(f"{command} failed: {type(error).__name__}: {error}", file=sys.stderr)
    else:
        print(f"{command} failed: {error}", file=sys.stderr)
    return EXIT_FAILED


def _baseline(args: argparse.Namespace) -> int:
    from diversity_monitor.job.baseline import build_baseline

    try:
        statistics, _, result = build_baseline(
            args.endpoint_name, contract.replay_settings(args), args.output,
            mean_tolerance=args.mean_tolerance, slot_margin=args.slot_margin, overwrite=args.overwrite,
            limits=contract.Limits.from_args(args),
        )
    except Exception as error:
        return _command_failed("baseline", error)
    block = statistics[CUSTOM_BLOCK]
    print(f"baseline written to {args.output}: mean {block['mean']:.2f}, min {block['min']}, p5 {block['p5']} "
          f"over {result.succeeded} sessions in {result.wall_seconds:.1f}s "
          f"(served by endpoint config {block.get('serving', {}).get('endpoint_config') or 'unknown'})")
    return 0


def register_replay(parser: argparse.ArgumentParser) -> None:
    _add_endpoint_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the statistics document instead of a table")
    parser.add_argument("--min-success-rate", type=contract.number_argument("--min-success-rate", 0, 1),
                        default=DEFAULT_MIN_SUCCESS_RATE, metavar="RATE",
                        help=f"replayed share below which the diversity figures are not reliable (default {DEFAULT_MIN_SUCCESS_RATE:g})")
    parser.set_defaults(handler=_replay)


def _replay(args: argparse.Namespace) -> int:
    from diversity_monitor.job.measure import measure
    from diversity_monitor.job.model_monitor_files import statistics_document
    from diversity_monitor.job.report_views import summary_table

    try:
        measurement, result = measure(args.endpoint_name, contract.replay_settings(args), "adhoc", confirm_endpoint=True)
    except Exception as error:
        return _command_failed("replay", error)
    reliable = result.success_rate >= args.min_success_rate  # the hourly run's rule: never trust an empty replay
    statistics = statistics_document(measurement, reliable=reliable, context={"endpoint": args.endpoint_name})
    if args.json:
        print(json.dumps(statistics, indent=2))
    else:
        print(summary_table(statistics).to_string())
        serving = statistics[CUSTOM_BLOCK]["serving"]
        if serving["error"]:
            print(f"\nserving config unknown: {serving['error']}")
        print(f"\n{result.succeeded}/{result.attempted} sessions in {result.wall_seconds:.1f}s")
    for line in replay_problems(result, reliable, args.min_success_rate):
        print(line, file=sys.stderr)
    return 0 if reliable else EXIT_FAILED


def replay_problems(result, reliable: bool, min_success_rate: float) -> list[str]:
    """What went wrong in a replay, for a person: the errors by kind, and whether the figures count."""
    lines = [f"replay errors: {count} session(s): {kind}" for kind, count in sorted(result.errors().items())]
    first = next((outcome.error for outcome in result.outcomes if outcome.error), None)
    if first:
        lines.append(f"first error: {first}")
    if not reliable:
        lines.append(f"NOT RELIABLE: {result.succeeded} of {result.attempted} sessions replayed "
                     f"({result.success_rate:.0%}, below --min-success-rate {min_success_rate:g}): the diversity figures "
                     "do not describe the endpoint")
    return lines

"""The container entrypoint (`diversity-monitor run`): the hourly run from start to exit.

contract -> preflight (inputs, baseline) -> report notebook (analysis: replay, measure,
compare, Model Monitor files) -> metrics file -> exit message. Every run leaves an executed
notebook (and its HTML) in its report folder. The entrypoint, not the notebook, owns the exit
contract:
- papermill's exit code is the signal (report.py); a partial notebook is kept;
- after a clean run it reads statistics.json / constraint_violations.json, publishes metrics
  (the metrics file for Model Monitor, or PutMetricData for a plain Processing job), writes
  `/opt/ml/output/message` (`Completed: ...` / `CompletedWithViolations: ...`) and exits 0;
- every failure writes `Failed: <what>` there and exits 1, keeping the partial notebook. Known
  failures have their own words; anything else ends as `Failed: <ExceptionType>: <message>`
  with the traceback on stderr, never as a bare traceback with no message.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

import orjson

from diversity_monitor.conventions import (
    COMPLETED_WITH_VIOLATIONS,
    EXECUTED_NOTEBOOK,
    RUN_OUTPUT_FILES,
    STATISTICS_FILE,
    VIOLATIONS_FILE,
)
from diversity_monitor.job import contract
from diversity_monitor.job import metrics_file as cloudwatch
from diversity_monitor.job.analysis import preflight
from diversity_monitor.job.contract import ContractError, MonitoringContext
from diversity_monitor.job.inputs import InputError
from diversity_monitor.job.model_monitor_files import BaselineError
from diversity_monitor.job.report import ReportFailed, execute_report, render_html, report_title

EXIT_FAILED = 1


class JobFailed(RuntimeError):
    """The run failed; the message becomes the job's ExitMessage."""


def publish(context: MonitoringContext, statistics: dict) -> str:
    """The metrics file for Model Monitor, or PutMetricData for a plain Processing job; says which."""
    if not (context.publish_cloudwatch_metrics or context.put_metric_data):
        return "metrics not published (publish_cloudwatch_metrics is not Enabled and --put-metric-data not given)"
    records = cloudwatch.metric_records(statistics, context.endpoint_name, context.schedule_name)
    cloudwatch.validate(records, context.metrics_namespace)
    if context.publish_cloudwatch_metrics:
        cloudwatch.write_metrics_file(records)
        return f"{len(records)} metrics written for Model Monitor to publish"
    cloudwatch.put_metric_data(records, context.metrics_namespace)
    return f"{len(records)} metrics put to {context.metrics_namespace}"


def run_job(arguments: list[str], env=None) -> int:
    """One monitoring run under the contract; 0 when it completed, 1 (with a message) otherwise."""
    try:
        return _run(arguments, env)
    except Exception as error:  # last resort: whatever nobody foresaw still ends as a message
        traceback.print_exc(file=sys.stderr)
        return _fail(f"{type(error).__name__}: {error}")


def _run(arguments: list[str], env) -> int:
    try:
        context = contract.load_context(arguments, env)
        preflight(context)
    except (ContractError, InputError, BaselineError) as error:
        return _fail(f"bad input: {error}")
    folder = context.report_folder
    try:
        present = [name for name in RUN_OUTPUT_FILES if (folder / name).exists()]
        if present:
            raise JobFailed(f"{folder} already holds {', '.join(present)} from another run; refusing to overwrite it")
        folder.mkdir(parents=True, exist_ok=True)
        try:
            execute_report(context, folder)
        except ReportFailed:
            _render_partial(folder, context)
            raise
        statistics = _read(folder / STATISTICS_FILE)
        render_html(folder, report_title(folder, f"{context.endpoint_name}: report"))
        violations = _read(folder / VIOLATIONS_FILE)["violations"]
    except (JobFailed, ReportFailed) as error:
        return _fail(str(error))
    except OSError as error:
        return _fail(f"cannot write the report to {folder}: {error}")
    try:
        published = publish(context, statistics)
    except (cloudwatch.MetricsError, OSError) as error:
        return _fail(f"publishing metrics: {error}")
    count = len(violations)
    if count:
        message = f"{COMPLETED_WITH_VIOLATIONS}: Job completed successfully with {count} violations."
    else:
        message = "Completed: Job completed successfully with no violations."
    contract.write_message(message)
    print(f"{message} ({published})")
    return 0


def _render_partial(folder: Path, context) -> None:
    """A failed run's partial notebook as HTML too, when it can be had; the failure is what the run reports."""
    if not (folder / EXECUTED_NOTEBOOK).exists():
        return
    try:
        render_html(folder, f"{context.endpoint_name}: FAILED run")
    except Exception as error:  # never mask the failure being reported
        print(f"warning: could not render the failed run's HTML report: {error}", file=sys.stderr)


def _read(path: Path) -> dict:
    if not path.exists():
        raise JobFailed(f"the report notebook finished without writing {path.name}")
    try:
        document = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as error:
        raise JobFailed(f"the report notebook wrote an unreadable {path.name} ({error})") from error
    if path.name == VIOLATIONS_FILE and not isinstance(document.get("violations") if isinstance(document, dict) else None, list):
        raise JobFailed(f"the report notebook wrote {path.name} without a 'violations' list")
    return document


def _fail(reason: str) -> int:
    message = f"Failed: {reason}"
    print(message, file=sys.stderr)
    try:
        contract.write_message(message)
    except OSError as error:  # e.g. a developer's machine without /opt/ml: the message is on stderr
        print(f"warning: could not write the message file: {error}", file=sys.stderr)
    return EXIT_FAILED


# --- command registration -------------------------------------------------------------------

def register_run(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = (
        "Container entrypoint. Reads the Model Monitor environment and these ContainerArguments:\n\n"
        + contract.run_argument_parser().format_help()
    )
    parser.allow_abbrev = False  # `--he` must not mean --help, any more than `--top` means --top-k
    # The contract parses the arguments itself, so a bad one fails the job with a message.
    parser.set_defaults(handler=lambda args: run_job(args.extra_arguments), accepts_extra_arguments=True)
    parser.exit = _run_parser_exit(parser)


def _run_parser_exit(parser: argparse.ArgumentParser):
    """`run --help` prints the usage; inside a job (ContainerArguments ["--help"]) it is also a failed run.

    argparse ends `--help` with exit(0): in a job that would be a passing run that monitored
    nothing and left no message.
    """
    def exit(status: int = 0, message: str | None = None):
        if contract.under_contract():
            reason = (message or "").strip() or ("--help asks for the usage (printed to the log), not for a run; "
                                                  "remove it from ContainerArguments")
            sys.exit(_fail(f"bad input: ContainerArguments: {reason}"))
        argparse.ArgumentParser.exit(parser, status, message)

    return exit


def main() -> int:  # `python -m diversity_monitor.job.entrypoint` = the container's run
    return run_job(sys.argv[1:], os.environ)


if __name__ == "__main__":
    sys.exit(main())

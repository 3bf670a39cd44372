"""The container entrypoint (`diversity-monitor run`): the hourly run from start to exit.

contract -> preflight (inputs, baseline) -> report notebook (analysis: replay, measure,
compare, Model Monitor files) -> metrics file -> exit message. Every run leaves an executed
notebook (and its HTML) in its report folder. The entrypoint, not the notebook, owns the exit
contract:
- papermill's exit code is the signal (report.py); a partial notebook is kept;
- after a clean run it reads statistics.json / constraint_violations.json, publishes metrics
  (the metrics file for Model Monitor, or PutMetricData for a plain Processing job), writes
  `/opt/ml/output/message` (`Completed: ...` / `CompletedWithViolations: ...`) and exits 0;
- every failure writes `Failed: <stage>: <ErrorClass>...` there and exits 1, keeping the partial
  notebook. The message names the failing stage and the error's class, in the kit's own words;
  URIs, ARNs and anything the endpoint or the data said stay in the job log (stderr), as AWS asks
  ("don't write sensitive data to the /opt/ml/output/message file"). Anything nobody foresaw ends
  as `Failed: <stage>: <ExceptionType>` with the traceback on stderr, never as a bare traceback;
- SIGTERM or SIGINT (how the platform stops a job: SIGINT, then SIGKILL) stops the run within
  seconds: every process it started (papermill, the kernel, replay workers, all in sessions of
  their own, so no signal reaches them) is frozen and killed, the partial notebook is kept, and
  the message says `Failed: stopped by <signal> during <stage>`. Nothing is written after it.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
import traceback
from pathlib import Path

import orjson

from diversity_monitor import storage
from diversity_monitor.conventions import (
    COMPLETED_WITH_VIOLATIONS,
    EXECUTED_NOTEBOOK,
    RUN_OUTPUT_FILES,
    STATISTICS_FILE,
    VIOLATIONS_FILE,
)
from diversity_monitor.job import contract, report
from diversity_monitor.job import metrics_file as cloudwatch
from diversity_monitor.job.analysis import preflight
from diversity_monitor.job.contract import ContractError, MonitoringContext
from diversity_monitor.job.inputs import InputError
from diversity_monitor.job.model_monitor_files import BaselineError
from diversity_monitor.job.report import ReportFailed, execute_report, render_html, report_title

EXIT_FAILED = 1
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

# The stages a message names (the failed-run runbook's causes match on them).
STAGE_START = "start-up"
STAGE_INPUTS = "bad input"  # reading the contract, the inputs and the baseline
STAGE_OUTPUT = "writing the report"
STAGE_REPORT = "report notebook"
STAGE_METRICS = "publishing metrics"


class JobFailed(RuntimeError):
    """The run failed; the message becomes the job's ExitMessage."""


class Stopped(BaseException):  # not an Exception: no `except Exception` on the way may swallow it
    """SIGTERM or SIGINT arrived: the run stops."""

    def __init__(self, signum: int) -> None:
        self.signal_name = signal.Signals(signum).name
        super().__init__(self.signal_name)


class _Progress:
    """Where the run is, for the message of a stop or an unforeseen error."""

    stage = STAGE_START
    folder: Path | None = None


def _on_stop(signum, frame) -> None:
    for stop_signal in STOP_SIGNALS:  # one stop: taking the tree down is not interrupted by a second
        signal.signal(stop_signal, signal.SIG_IGN)
    raise Stopped(signum)


# --- what the message may say --------------------------------------------------------------------
# URIs and ARNs name buckets, accounts and hosts: the job log keeps them, the message does not.
_SENSITIVE = re.compile(r"\b(?:s3|https?)://\S+|\barn:aws[\w-]*:\S+")
MESSAGE_DETAIL_LIMIT = 400


def scrub(text: str) -> str:
    """`text` without URIs or ARNs, on one line, cut to MESSAGE_DETAIL_LIMIT characters."""
    text = _SENSITIVE.sub("<see the job log>", " ".join(str(text).split()))
    return text if len(text) <= MESSAGE_DETAIL_LIMIT else text[: MESSAGE_DETAIL_LIMIT - 1] + "…"


def _failure(stage: str, error: BaseException, detail: bool = True) -> str:
    """`<stage>: <ErrorClass>[: <our words, scrubbed>]`; the whole error goes to the job log."""
    print(f"{stage}: {type(error).__name__}: {error}", file=sys.stderr)
    name = type(error).__name__
    return f"{stage}: {name}: {scrub(str(error))}" if detail else f"{stage}: {name} (details in the job log)"


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


def run_job(arguments: list[str], env=None, *, as_container: bool = False) -> int:
    """One monitoring run under the contract; 0 when it completed, 1 (with a message) otherwise.

    `as_container`: this process is the container's (stop signals handled, orphans adopted).
    """
    _Progress.stage, _Progress.folder = STAGE_START, None
    handlers = {}
    if as_container and threading.current_thread() is threading.main_thread():
        report.become_subreaper()
        handlers = {stop_signal: signal.signal(stop_signal, _on_stop) for stop_signal in STOP_SIGNALS}
    try:
        try:
            return _run(arguments, env)
        except Exception as error:  # last resort: whatever nobody foresaw still ends as a message
            traceback.print_exc(file=sys.stderr)
            return _fail(_failure(_Progress.stage, error, detail=False))
    except Stopped as stop:
        return _stopped(stop)
    finally:
        for stop_signal, handler in handlers.items():
            signal.signal(stop_signal, handler)


def _stopped(stop: Stopped) -> int:
    """Take down every process the run started, then say so; nothing is written after this."""
    report.kill_descendants()
    stage = {STAGE_INPUTS: "the input checks"}.get(_Progress.stage, _Progress.stage)
    if stage == STAGE_REPORT and _Progress.folder is not None:
        stage = report.running_step(_Progress.folder)
    print(f"stopped by {stop.signal_name} during {stage}; every process the run started was killed", file=sys.stderr)
    return _fail(f"stopped by {stop.signal_name} during {stage}")


def _run(arguments: list[str], env) -> int:
    _Progress.stage = STAGE_INPUTS
    try:
        context = contract.load_context(arguments, env)
        preflight(context)
    except (ContractError, InputError, BaselineError) as error:
        return _fail(_failure(STAGE_INPUTS, error))
    folder = context.report_folder
    _Progress.stage = STAGE_OUTPUT
    try:
        # lexists: a dangling symlink is "there" too (exists() follows it and says no).
        taken = [*RUN_OUTPUT_FILES, report.in_progress_notebook(folder).name]
        present = [name for name in taken if os.path.lexists(folder / name)]
        if present:
            raise JobFailed(f"{folder} already holds {', '.join(present)} from another run (or a link); "
                            "refusing to overwrite it")
        folder.mkdir(parents=True, exist_ok=True)
        _Progress.stage, _Progress.folder = STAGE_REPORT, folder
        try:
            execute_report(context, folder)
        except ReportFailed as error:
            _render_partial(folder, context)
            return _fail(_report_failure(error, folder))
        _Progress.stage = STAGE_OUTPUT
        statistics = _read(folder / STATISTICS_FILE)
        render_html(folder, report_title(folder, f"{context.endpoint_name}: report"))
        violations = _read(folder / VIOLATIONS_FILE)["violations"]
    except (JobFailed, ReportFailed, storage.StorageError) as error:
        return _fail(_failure(_Progress.stage, error))
    except OSError as error:
        return _fail(_failure(STAGE_OUTPUT, error))
    _Progress.stage = STAGE_METRICS
    try:
        published = publish(context, statistics)
    except (cloudwatch.MetricsError, OSError) as error:
        return _fail(_failure(STAGE_METRICS, error))
    count = len(violations)
    if count:
        message = f"{COMPLETED_WITH_VIOLATIONS}: Job completed successfully with {count} violations."
    else:
        message = "Completed: Job completed successfully with no violations."
    contract.write_message(message)
    print(f"{message} ({published})")
    return 0


def _report_failure(error: ReportFailed, folder: Path) -> str:
    """`report notebook (<step>): <ErrorClass> (papermill exit N)`: the reason line, which may quote
    the endpoint or the data, stays in the job log."""
    print(f"{STAGE_REPORT}: {error}", file=sys.stderr)
    text = str(error)
    exit_code = re.search(r"papermill exit (\d+)", text)
    reason = text.split("): ", 1)[1] if "): " in text else ""
    name = report.error_class(reason) if reason else ("CellTimeoutError" if "CellTimeoutError" in text else "ReportFailed")
    stage = report.running_step(folder)  # "report notebook (replay)", "report notebook (cell 5)"...
    suffix = f" (papermill exit {exit_code.group(1)})" if exit_code else " (papermill and its kernel were killed)"
    return f"{stage}: {name}{suffix}; the partial report.ipynb and the job log say more"


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
    parser.set_defaults(handler=lambda args: run_job(args.extra_arguments, as_container=True),
                        accepts_extra_arguments=True)
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
    return run_job(sys.argv[1:], os.environ, as_container=True)


if __name__ == "__main__":
    sys.exit(main())

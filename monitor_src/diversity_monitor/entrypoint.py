"""The container entrypoint (`diversity-monitor run`) and the `baseline` / `replay` commands.

`run` executes the report notebook with papermill, so every run leaves an executed notebook
(and its HTML) in its report folder. The entrypoint, not the notebook, owns the exit contract:
- papermill runs as a child process in its own session and its exit code is the signal (a cell
  error, a dead kernel, a cell timeout all end non-zero; on a timeout the saved notebook can
  look clean). If papermill itself overruns, it and its kernel are killed, not left behind;
- after a clean run it reads statistics.json / constraint_violations.json, publishes metrics
  (the metrics file for Model Monitor, or PutMetricData for a plain Processing job), writes
  `/opt/ml/output/message` (`Completed: ...` / `CompletedWithViolations: ...`) and exits 0;
- every failure writes `Failed: <what>` there and exits 1, keeping the partial notebook. Known
  failures have their own words; anything else ends as `Failed: <ExceptionType>: <message>`
  with the traceback on stderr, never as a bare traceback with no message.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import traceback
from importlib import resources
from pathlib import Path

import orjson
import psutil

from diversity_monitor import cloudwatch, contract, storage
from diversity_monitor.contract import ContractError, MonitoringContext
from diversity_monitor.inputs import InputError
from diversity_monitor.job import (
    EXECUTED_HTML,
    EXECUTED_NOTEBOOK,
    PARAMETERS_FILE,
    RUN_OUTPUT_FILES,
    STATISTICS_FILE,
    VIOLATIONS_FILE,
    preflight,
)
from diversity_monitor.model_monitor_files import BaselineError

REPORT_NOTEBOOK_NAME = "diversity_report.ipynb"
EXIT_FAILED = 1
PAPERMILL_GRACE_SECONDS = 120  # beyond the cell timeout: kernel start-up, saving, a hung papermill
PAPERMILL_DEAD_KERNEL = 138  # papermill's own exit code for nbclient's DeadKernelError


class JobFailed(RuntimeError):
    """The run failed; the message becomes the job's ExitMessage."""


def report_notebook() -> Path:
    """The report notebook shipped inside the package (a link to notebooks/ in the repo)."""
    return Path(str(resources.files("diversity_monitor") / "notebooks" / REPORT_NOTEBOOK_NAME))


def run_in_own_session(command: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """Run `command` in a new session; on timeout kill it and everything it started, then raise.

    Jupyter starts each kernel in a session of its own, so killing papermill's process group
    alone would orphan the kernel: its descendants are collected first and killed too.
    """
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, **kwargs)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(process.pid)
        process.communicate()
        raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def kill_tree(pid: int) -> None:
    """SIGKILL a process, its process group and every descendant (including those in other sessions)."""
    try:
        descendants = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    groups = {pid}
    for child in descendants:
        try:
            groups.add(os.getpgid(child.pid))
        except ProcessLookupError:
            pass
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for child in descendants:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(descendants, timeout=5)


def execute_report(context: MonitoringContext, folder: Path) -> None:
    """Run the report notebook in a child papermill; raise JobFailed on any non-zero exit."""
    parameters = folder / PARAMETERS_FILE  # kept: what exactly this run was given
    parameters.write_text(json.dumps({"context": context.to_parameters()}, indent=2))
    command = [
        sys.executable, "-m", "papermill", str(report_notebook()), str(folder / EXECUTED_NOTEBOOK),
        "--parameters_file", str(parameters),
        "--kernel", "python3",
        "--execution-timeout", str(int(context.report_timeout)),
        "--cwd", str(folder),
        "--no-progress-bar", "--log-level", "WARNING",
    ]
    try:
        completed = run_in_own_session(command, timeout=context.report_timeout + PAPERMILL_GRACE_SECONDS)
    except subprocess.TimeoutExpired as error:
        raise JobFailed(f"report notebook did not finish within {context.report_timeout + PAPERMILL_GRACE_SECONDS:.0f}s; "
                        "papermill and its kernel were killed") from error
    sys.stderr.write(completed.stderr[-20000:])
    if completed.returncode == PAPERMILL_DEAD_KERNEL:
        raise JobFailed(f"report notebook's kernel died (papermill exit {completed.returncode}): "
                        f"{_papermill_reason(completed.stderr)}")
    if completed.returncode != 0:
        raise JobFailed(f"report notebook failed (papermill exit {completed.returncode}): {_papermill_reason(completed.stderr)}")


def _papermill_reason(stderr: str) -> str:
    """The most telling line of papermill's output: the exception it ended with."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if ("Error" in line or "Exception" in line) and not line.startswith(("File ", "Traceback", "---", "^")):
            return line[:600]
    return lines[-1][:600] if lines else "no output"


def render_html(folder: Path) -> None:
    """Self-contained HTML of the executed notebook (images inlined), for people without Jupyter."""
    import nbformat
    from nbconvert import HTMLExporter

    notebook = nbformat.read(folder / EXECUTED_NOTEBOOK, as_version=4)
    body, _ = HTMLExporter(embed_images=True).from_notebook_node(notebook)
    (folder / EXECUTED_HTML).write_text(body, encoding="utf-8")


def publish(context: MonitoringContext, statistics: dict) -> str:
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
        finally:
            if (folder / EXECUTED_NOTEBOOK).exists():
                try:
                    render_html(folder)
                except Exception as error:  # the HTML is a convenience; never mask the real outcome
                    print(f"warning: could not render HTML report: {error}", file=sys.stderr)
        statistics = _read(folder / STATISTICS_FILE)
        violations = _read(folder / VIOLATIONS_FILE)["violations"]
    except JobFailed as error:
        return _fail(str(error))
    except OSError as error:
        return _fail(f"cannot write the report to {folder}: {error}")
    try:
        published = publish(context, statistics)
    except (cloudwatch.MetricsError, OSError) as error:
        return _fail(f"publishing metrics: {error}")
    count = len(violations)
    if count:
        message = f"CompletedWithViolations: Job completed successfully with {count} violations."
    else:
        message = "Completed: Job completed successfully with no violations."
    contract.write_message(message)
    print(f"{message} ({published})")
    return 0


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


def _add_endpoint_arguments(parser: argparse.ArgumentParser) -> None:
    parser.allow_abbrev = False
    parser.add_argument("--endpoint-name", type=contract.endpoint_name_argument, required=True, metavar="NAME",
                        help="endpoint to replay against")
    contract.add_replay_arguments(parser)


def register_baseline(parser: argparse.ArgumentParser) -> None:
    _add_endpoint_arguments(parser)
    parser.add_argument("--output", required=True, metavar="URI",
                        help="where statistics.json and constraints.json go (s3://.../baselines/<model-version>/)")
    parser.add_argument("--mean-tolerance", type=contract.number_argument("--mean-tolerance", 0, 1000), default=1.0,
                        help="how far below the baseline mean a run may fall (categories, default 1.0)")
    parser.add_argument("--slot-margin", type=contract.number_argument("--slot-margin", 0, 1), default=0.3,
                        help="how far above the baseline's most-concentrated slot share a run may go (default 0.3)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing baseline at --output")
    parser.set_defaults(handler=_baseline)


def _command_failed(command: str, error: Exception) -> int:
    """A named error for the baseline / replay commands; a traceback only for what nobody foresaw."""
    if not isinstance(error, (BaselineError, InputError, ContractError, storage.StorageError)):
        traceback.print_exc(file=sys.stderr)
        print(f"{command} failed: {type(error).__name__}: {error}", file=sys.stderr)
    else:
        print(f"{command} failed: {error}", file=sys.stderr)
    return EXIT_FAILED


def _baseline(args: argparse.Namespace) -> int:
    from diversity_monitor.job import build_baseline

    try:
        statistics, _, result = build_baseline(
            args.endpoint_name, contract.replay_settings(args), args.output,
            mean_tolerance=args.mean_tolerance, slot_margin=args.slot_margin, overwrite=args.overwrite,
        )
    except Exception as error:
        return _command_failed("baseline", error)
    block = statistics["diversity_monitor"]
    print(f"baseline written to {args.output}: mean {block['mean']:.2f}, min {block['min']}, p5 {block['p5']} "
          f"over {result.succeeded} sessions in {result.wall_seconds:.1f}s "
          f"(served by endpoint config {block.get('serving', {}).get('endpoint_config') or 'unknown'})")
    return 0


def register_replay(parser: argparse.ArgumentParser) -> None:
    _add_endpoint_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the statistics document instead of a table")
    parser.set_defaults(handler=_replay)


def _replay(args: argparse.Namespace) -> int:
    from diversity_monitor.job import measure
    from diversity_monitor.model_monitor_files import statistics_document
    from diversity_monitor.report import summary_table

    try:
        measurement, result = measure(args.endpoint_name, contract.replay_settings(args), "adhoc")
    except Exception as error:
        return _command_failed("replay", error)
    statistics = statistics_document(measurement, reliable=True, context={"endpoint": args.endpoint_name})
    if args.json:
        print(json.dumps(statistics, indent=2))
    else:
        print(summary_table(statistics).to_string())
        serving = statistics["diversity_monitor"]["serving"]
        if serving["error"]:
            print(f"\nserving config unknown: {serving['error']}")
        print(f"\n{result.succeeded}/{result.attempted} sessions in {result.wall_seconds:.1f}s")
    return 0 if result.succeeded else EXIT_FAILED


def main() -> int:  # `python -m diversity_monitor.entrypoint` = the container's run
    return run_job(sys.argv[1:], os.environ)


if __name__ == "__main__":
    sys.exit(main())

"""The container entrypoint (`diversity-monitor run`) and the `baseline` / `replay` commands.

`run` executes the report notebook with papermill, so every run leaves an executed notebook
(and its HTML) in `output_path`. The entrypoint, not the notebook, owns the exit contract:
- papermill runs as a child process and its exit code is the signal (a cell error, a dead
  kernel, a cell timeout all end non-zero; on a timeout the saved notebook can look clean);
- after a clean run it reads statistics.json / constraint_violations.json, publishes metrics
  (the metrics file for Model Monitor, or PutMetricData for a plain Processing job), writes
  `/opt/ml/output/message` (`Completed: ...` / `CompletedWithViolations: ...`) and exits 0;
- any failure writes `Failed: <what>` there and exits 1, keeping the partial notebook.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import orjson

from diversity_monitor import cloudwatch, contract
from diversity_monitor.contract import ContractError, MonitoringContext
from diversity_monitor.inputs import InputError
from diversity_monitor.job import STATISTICS_FILE, VIOLATIONS_FILE, preflight
from diversity_monitor.model_monitor_files import BaselineError

REPORT_NOTEBOOK_NAME = "diversity_report.ipynb"
EXECUTED_NOTEBOOK = "report.ipynb"
EXECUTED_HTML = "report.html"
EXIT_FAILED = 1


class JobFailed(RuntimeError):
    """The run failed; the message becomes the job's ExitMessage."""


def report_notebook() -> Path:
    """The report notebook shipped inside the package (a link to notebooks/ in the repo)."""
    return Path(str(resources.files("diversity_monitor") / "notebooks" / REPORT_NOTEBOOK_NAME))


def execute_report(context: MonitoringContext, output: Path) -> None:
    """Run the report notebook in a child papermill; raise JobFailed on any non-zero exit."""
    parameters = output / "parameters.json"  # kept: what exactly this run was given
    parameters.write_text(json.dumps({"context": context.to_parameters()}, indent=2))
    command = [
        sys.executable, "-m", "papermill", str(report_notebook()), str(output / EXECUTED_NOTEBOOK),
        "--parameters_file", str(parameters),
        "--kernel", "python3",
        "--execution-timeout", str(int(context.report_timeout)),
        "--cwd", str(output),
        "--no-progress-bar", "--log-level", "WARNING",
    ]
    try:
        completed = subprocess.run(command, capture_output=True, text=True,
                                   timeout=context.report_timeout + 120)
    except subprocess.TimeoutExpired as error:
        raise JobFailed(f"report notebook did not finish within {context.report_timeout:.0f}s") from error
    sys.stderr.write(completed.stderr[-20000:])
    if completed.returncode != 0:
        raise JobFailed(f"report notebook failed (papermill exit {completed.returncode}): {_papermill_reason(completed.stderr)}")


def _papermill_reason(stderr: str) -> str:
    """The most telling line of papermill's output: the exception it ended with."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if ("Error" in line or "Exception" in line) and not line.startswith(("File ", "Traceback", "---", "^")):
            return line[:600]
    return lines[-1][:600] if lines else "no output"


def render_html(output: Path) -> None:
    """Self-contained HTML of the executed notebook (images inlined), for people without Jupyter."""
    import nbformat
    from nbconvert import HTMLExporter

    notebook = nbformat.read(output / EXECUTED_NOTEBOOK, as_version=4)
    body, _ = HTMLExporter(embed_images=True).from_notebook_node(notebook)
    (output / EXECUTED_HTML).write_text(body, encoding="utf-8")


def publish(context: MonitoringContext, statistics: dict) -> str:
    records = cloudwatch.metric_records(statistics, context.endpoint_name, context.schedule_name)
    cloudwatch.validate(records, context.metrics_namespace)
    if context.publish_cloudwatch_metrics:
        cloudwatch.write_metrics_file(records)
        return f"{len(records)} metrics written for Model Monitor to publish"
    if context.put_metric_data:
        cloudwatch.put_metric_data(records, context.metrics_namespace)
        return f"{len(records)} metrics put to {context.metrics_namespace}"
    return "metrics not published (publish_cloudwatch_metrics is not Enabled and --put-metric-data not given)"


def run_job(arguments: list[str], env=None) -> int:
    try:
        context = contract.load_context(arguments, env)
    except ContractError as error:
        return _fail(f"bad input: {error}")
    try:
        preflight(context)
    except (InputError, BaselineError) as error:
        return _fail(f"bad input: {error}")
    output = context.output_path
    try:
        if (output / STATISTICS_FILE).exists():
            raise JobFailed(f"{output} already holds a report; refusing to overwrite it")
        output.mkdir(parents=True, exist_ok=True)
        try:
            execute_report(context, output)
        finally:
            if (output / EXECUTED_NOTEBOOK).exists():
                try:
                    render_html(output)
                except Exception as error:  # the HTML is a convenience; never mask the real outcome
                    print(f"warning: could not render HTML report: {error}", file=sys.stderr)
        statistics = _read(output / STATISTICS_FILE)
        violations = _read(output / VIOLATIONS_FILE)["violations"]
        published = publish(context, statistics)
    except (JobFailed, cloudwatch.MetricsError, OSError, KeyError, ValueError) as error:
        return _fail(str(error) if isinstance(error, JobFailed) else f"{type(error).__name__}: {error}")
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
    return orjson.loads(path.read_bytes())


def _fail(reason: str) -> int:
    message = f"Failed: {reason}"
    contract.write_message(message)
    print(message, file=sys.stderr)
    return EXIT_FAILED


# --- command registration -------------------------------------------------------------------

def register_run(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = (
        "Container entrypoint. Reads the Model Monitor environment and these ContainerArguments:\n\n"
        + contract.run_argument_parser().format_help()
    )
    # The contract parses the arguments itself, so a bad one fails the job with a message.
    parser.set_defaults(handler=lambda args: run_job(args.extra_arguments), accepts_extra_arguments=True)


def _add_endpoint_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--endpoint-name", required=True, metavar="NAME", help="endpoint to replay against")
    contract.add_replay_arguments(parser)


def register_baseline(parser: argparse.ArgumentParser) -> None:
    _add_endpoint_arguments(parser)
    parser.add_argument("--output", required=True, metavar="URI",
                        help="where statistics.json and constraints.json go (s3://.../baselines/<model-version>/)")
    parser.add_argument("--mean-tolerance", type=float, default=1.0,
                        help="how far below the baseline mean a run may fall (categories, default 1.0)")
    parser.add_argument("--slot-margin", type=float, default=0.3,
                        help="how far above the baseline's most-concentrated slot share a run may go (default 0.3)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing baseline at --output")
    parser.set_defaults(handler=_baseline)


def _baseline(args: argparse.Namespace) -> int:
    from diversity_monitor.job import build_baseline
    from diversity_monitor.model_monitor_files import BaselineError
    from diversity_monitor.inputs import InputError

    try:
        statistics, _, result = build_baseline(
            args.endpoint_name, contract.replay_settings(args), args.output,
            mean_tolerance=args.mean_tolerance, slot_margin=args.slot_margin, overwrite=args.overwrite,
        )
    except (BaselineError, InputError) as error:
        print(f"baseline failed: {error}", file=sys.stderr)
        return EXIT_FAILED
    block = statistics["diversity_monitor"]
    print(f"baseline written to {args.output}: mean {block['mean']:.2f}, min {block['min']}, p5 {block['p5']} "
          f"over {result.succeeded} sessions in {result.wall_seconds:.1f}s")
    return 0


def register_replay(parser: argparse.ArgumentParser) -> None:
    _add_endpoint_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the statistics document instead of a table")
    parser.set_defaults(handler=_replay)


def _replay(args: argparse.Namespace) -> int:
    from diversity_monitor.inputs import InputError
    from diversity_monitor.job import measure
    from diversity_monitor.model_monitor_files import statistics_document
    from diversity_monitor.report import summary_table

    try:
        measurement, result = measure(args.endpoint_name, contract.replay_settings(args), "adhoc")
    except InputError as error:
        print(f"replay failed: {error}", file=sys.stderr)
        return EXIT_FAILED
    statistics = statistics_document(measurement, reliable=True, context={"endpoint": args.endpoint_name})
    if args.json:
        print(json.dumps(statistics, indent=2))
    else:
        print(summary_table(statistics).to_string())
        print(f"\n{result.succeeded}/{result.attempted} sessions in {result.wall_seconds:.1f}s")
    return 0 if result.succeeded else EXIT_FAILED


def main() -> int:  # `python -m diversity_monitor.entrypoint` = the container's run
    return run_job(sys.argv[1:], os.environ)


if __name__ == "__main__":
    sys.exit(main())

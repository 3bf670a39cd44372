"""Step 8 of the run: the report: execute the report notebook with papermill, render it as HTML.

papermill runs as a child process in its own session and its exit code is the signal (a cell
error, a dead kernel, a cell timeout all end non-zero; on a timeout the saved notebook can look
clean). If papermill itself overruns, it and its kernel are killed, not left behind.
"""

from __future__ import annotations

import html
import json
import os
import signal
import subprocess
import sys
from importlib import resources
from pathlib import Path

import psutil

from diversity_monitor import storage
from diversity_monitor.conventions import (
    EXECUTED_HTML,
    EXECUTED_NOTEBOOK,
    PARAMETERS_FILE,
    REPORT_NOTEBOOK,
    STATISTICS_FILE,
    VIOLATIONS_FILE,
)
from diversity_monitor.job.contract import MonitoringContext

PAPERMILL_GRACE_SECONDS = 120  # beyond the cell timeout: kernel start-up, saving, a hung papermill
PAPERMILL_DEAD_KERNEL = 138  # papermill's own exit code for nbclient's DeadKernelError


class ReportFailed(RuntimeError):
    """The report notebook did not run to the end; the message says how."""


def report_notebook() -> Path:
    """The report notebook shipped inside the package (a link to notebooks/ in the repo)."""
    return Path(str(resources.files("diversity_monitor") / "notebooks" / REPORT_NOTEBOOK))


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
    """Run the report notebook in a child papermill; raise ReportFailed on any non-zero exit."""
    parameters = folder / PARAMETERS_FILE  # kept: what exactly this run was given
    parameters.write_text(json.dumps({"context": context.to_parameters()}, indent=2))
    # papermill saves the notebook as it goes: it writes under a temporary name, renamed when it ends
    # (a failed run's partial notebook included), so `report.ipynb` is never a notebook mid-write.
    in_progress = folder / f".{EXECUTED_NOTEBOOK}.partial"
    command = [
        sys.executable, "-m", "papermill", str(report_notebook()), str(in_progress),
        "--parameters_file", str(parameters),
        "--kernel", "python3",
        "--execution-timeout", str(int(context.report_timeout)),
        "--cwd", str(folder),
        "--no-progress-bar", "--log-level", "WARNING",
    ]
    try:
        completed = run_in_own_session(command, timeout=context.report_timeout + PAPERMILL_GRACE_SECONDS)
    except subprocess.TimeoutExpired as error:
        _keep_notebook(in_progress, folder)
        raise ReportFailed(f"report notebook did not finish within {context.report_timeout + PAPERMILL_GRACE_SECONDS:.0f}s; "
                        "papermill and its kernel were killed") from error
    _keep_notebook(in_progress, folder)
    sys.stderr.write(completed.stderr[-20000:])
    if completed.returncode == PAPERMILL_DEAD_KERNEL:
        raise ReportFailed(f"report notebook's kernel died (papermill exit {completed.returncode}): "
                        f"{_papermill_reason(completed.stderr)}")
    if completed.returncode != 0:
        raise ReportFailed(f"report notebook failed (papermill exit {completed.returncode}): {_papermill_reason(completed.stderr)}")


def _keep_notebook(in_progress: Path, folder: Path) -> None:
    if in_progress.exists():
        os.replace(in_progress, folder / EXECUTED_NOTEBOOK)


def _papermill_reason(stderr: str) -> str:
    """The most telling line of papermill's output: the exception it ended with."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if ("Error" in line or "Exception" in line) and not line.startswith(("File ", "Traceback", "---", "^")):
            return line[:600]
    return lines[-1][:600] if lines else "no output"


# The page around nbconvert's "basic" body: no script, no font or style fetched, images inline.
# The CSP forbids every network request outright, so a report opened in a browser never calls out.
_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>{title}</title>
<style>{style}</style>
</head>
<body><main>
{body}
</main></body>
</html>
"""
_STYLE = """
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f1f1f;background:#fff}
main{max-width:60rem;margin:0 auto;padding:0.8rem}
h1{font-size:1.6rem}h2{font-size:1.15rem;margin:1.4em 0 0.4em;border-bottom:1px solid #ddd}
img{max-width:100%;height:auto;display:block}
table{border-collapse:collapse;display:block;overflow-x:auto;max-width:100%;margin:0.4em 0}
th,td{padding:0.25em 0.6em;border-bottom:1px solid #e4e4e4;text-align:left;vertical-align:top;overflow-wrap:break-word}
td{min-width:4em}
thead th{border-bottom:2px solid #bbb}
code{font-size:0.92em;overflow-wrap:anywhere}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#fbeaea;padding:0.5em}
.jp-InputPrompt,.jp-OutputPrompt,.anchor-link{display:none}
"""
HIDDEN_TAG = "report-hidden"  # cells for notebook readers only (the description), left out of report.html


def report_title(folder: Path, fallback: str) -> str:
    """Endpoint, hour and verdict, from the files the run wrote; `fallback` when it wrote none (a failed run)."""
    from diversity_monitor.job.report_views import verdict

    try:
        statistics = json.loads((folder / STATISTICS_FILE).read_text())
        violations = json.loads((folder / VIOLATIONS_FILE).read_text())
        return verdict(statistics, violations).title
    except (OSError, ValueError, KeyError, TypeError):
        return fallback


def render_html(folder: Path, title: str) -> int:
    """`report.html`: the executed notebook as a page a person reads (code hidden, verdict first,
    self-contained), written atomically. Returns its size; ReportFailed when it cannot be written."""
    import nbformat
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    notebook = nbformat.read(folder / EXECUTED_NOTEBOOK, as_version=4)
    for cell in notebook.cells:  # progress and warnings belong in the job log, not the page
        if cell.get("outputs"):
            cell.outputs = [output for output in cell.outputs
                            if not (output.get("output_type") == "stream" and output.get("name") == "stderr")]
    config = Config()
    config.TagRemovePreprocessor.remove_cell_tags = (HIDDEN_TAG,)
    config.TagRemovePreprocessor.enabled = True
    exporter = HTMLExporter(config=config, template_name="basic", exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True, embed_images=True)
    body, _ = exporter.from_notebook_node(notebook)
    page = _PAGE.format(title=html.escape(title), style=_STYLE, body=body)
    try:
        return storage.write_file_atomically(folder / EXECUTED_HTML, page.encode("utf-8"))
    except OSError as error:
        raise ReportFailed(f"cannot write {EXECUTED_HTML}: {error.strerror or error}") from error

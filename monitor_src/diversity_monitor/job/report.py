"""Step 8 of the run: the report: execute the report notebook with papermill, render it as HTML.

papermill runs as a child process in its own session and its exit code is the signal (a cell
error, a dead kernel, a cell timeout all end non-zero; on a timeout the saved notebook can look
clean). If papermill itself overruns, it and its kernel are killed, not left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from importlib import resources
from pathlib import Path

import psutil

from diversity_monitor.conventions import EXECUTED_HTML, EXECUTED_NOTEBOOK, PARAMETERS_FILE, REPORT_NOTEBOOK
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
        raise ReportFailed(f"report notebook did not finish within {context.report_timeout + PAPERMILL_GRACE_SECONDS:.0f}s; "
                        "papermill and its kernel were killed") from error
    sys.stderr.write(completed.stderr[-20000:])
    if completed.returncode == PAPERMILL_DEAD_KERNEL:
        raise ReportFailed(f"report notebook's kernel died (papermill exit {completed.returncode}): "
                        f"{_papermill_reason(completed.stderr)}")
    if completed.returncode != 0:
        raise ReportFailed(f"report notebook failed (papermill exit {completed.returncode}): {_papermill_reason(completed.stderr)}")


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

"""Step 8 of the run: the report: execute the report notebook with papermill, render it as HTML.

papermill runs as a child process in its own session and its exit code is the signal (a cell
error, a dead kernel, a cell timeout all end non-zero; on a timeout the saved notebook can look
clean). If papermill itself overruns, or the run is stopped (SIGTERM/SIGINT reach the entrypoint
only: papermill and its kernel have sessions of their own), it, its kernel and everything they
started are killed, not left behind, before anything else happens.

Parameters reach the kernel without YAML: the child (`python -m diversity_monitor.job.report`)
reads parameters.json with the JSON parser and hands the dict to papermill's Python API, which
writes it into the notebook as Python literals. papermill's own `--parameters_file` reads YAML,
which turns a JSON surrogate pair (an emoji, escaped) into two broken characters.
"""

from __future__ import annotations

import ctypes
import html
import json
import logging
import os
import signal
import subprocess
import sys
import time
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

PAPERMILL_DEAD_KERNEL = 138  # papermill's own exit code for nbclient's DeadKernelError
# Beyond the report timeout (papermill's cell timeout) before papermill itself is killed: time to
# interrupt the cell and save the partial notebook. Inside contract.RUN_RESERVE_SECONDS, so the
# kill still comes before the platform's MaxRuntimeInSeconds.
PAPERMILL_SAVE_GRACE_SECONDS = 30
# What a report cell is doing, for a stopped run's message: the first cell source that holds a key
# names the step (the report notebook's replay cell calls run_monitoring).
REPORT_STEPS = {"run_monitoring(": "replay"}


class ReportFailed(RuntimeError):
    """The report notebook did not run to the end; the message says how."""


def report_notebook() -> Path:
    """The report notebook shipped inside the package (a link to notebooks/ in the repo)."""
    return Path(str(resources.files("diversity_monitor") / "notebooks" / REPORT_NOTEBOOK))


def run_in_own_session(command: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """Run `command` in a new session; on timeout, or anything raised while waiting (a stop signal's
    exception), kill it and everything it started, then raise.

    Jupyter starts each kernel in a session of its own, so killing papermill's process group
    alone would orphan the kernel: its descendants are collected first and killed too.
    """
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, **kwargs)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except BaseException:
        kill_tree(process.pid)
        process.communicate()
        raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def become_subreaper() -> bool:
    """Linux: orphans of this process's descendants are re-parented here, not to init, so a tree
    whose middle dies (papermill before its kernel) is still found and killed whole."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def kill_tree(pid: int) -> None:
    """SIGKILL a process, its process group and every descendant (including those in other sessions).

    Descendants are frozen (SIGSTOP) before any is killed, so none starts another process or
    writes another byte while the tree is taken down; repeated until none is left.
    """
    try:
        root = [psutil.Process(pid)]
    except psutil.NoSuchProcess:
        root = []
    _kill_processes(root, groups=(pid,))


def kill_descendants() -> None:
    """SIGKILL every descendant of this process (a stopped run: nothing it started outlives it)."""
    _kill_processes([], groups=(), include_children_of=psutil.Process())


def _kill_processes(roots: list[psutil.Process], groups: tuple[int, ...] = (),
                    include_children_of: psutil.Process | None = None) -> None:
    for _ in range(20):
        found = list(roots)
        for root in [*roots, *([include_children_of] if include_children_of else [])]:
            try:
                found += root.children(recursive=True)
            except psutil.NoSuchProcess:
                pass
        alive = [process for process in found if _alive(process)]
        if not alive:
            return
        for process in alive:
            try:
                process.suspend()
            except psutil.NoSuchProcess:
                pass
        for group in {*groups, *(_group(process) for process in alive)} - {None, os.getpgrp()}:
            try:
                os.killpg(group, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for process in alive:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        # Gone, or a zombie (dead, waiting for its parent): psutil.wait_procs would wait out the
        # timeout on zombies whose parent is not this process.
        settle = time.monotonic() + 2
        while any(_alive(process) for process in alive) and time.monotonic() < settle:
            time.sleep(0.02)
        roots = [process for process in roots if _alive(process)]


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _group(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except ProcessLookupError:
        return None


def in_progress_notebook(folder: Path) -> Path:
    """Where papermill saves the notebook while it runs (renamed to report.ipynb when it ends)."""
    return folder / f".{EXECUTED_NOTEBOOK}.partial"


def execute_report(context: MonitoringContext, folder: Path) -> None:
    """Run the report notebook in a child papermill; raise ReportFailed on any non-zero exit.

    Whatever interrupts the wait (a stop signal's exception) kills papermill's tree first and
    keeps the partial notebook, then propagates.
    """
    parameters = folder / PARAMETERS_FILE  # kept: what exactly this run was given
    # UTF-8 as is (no \u escapes), created exclusively: never through a planted link.
    storage.create_exclusively(parameters, json.dumps({"context": context.to_parameters()}, indent=2,
                                                      ensure_ascii=False).encode("utf-8"))
    # papermill saves the notebook as it goes: it writes under a temporary name, renamed when it ends
    # (a failed run's partial notebook included), so `report.ipynb` is never a notebook mid-write.
    in_progress = in_progress_notebook(folder)
    command = [sys.executable, "-m", "diversity_monitor.job.report", str(report_notebook()), str(in_progress),
               str(parameters), str(folder), str(int(context.report_timeout))]
    try:
        completed = run_in_own_session(command, timeout=context.report_timeout + PAPERMILL_SAVE_GRACE_SECONDS)
    except subprocess.TimeoutExpired as error:
        _keep_notebook(in_progress, folder)
        raise ReportFailed(f"report notebook did not finish within {context.report_timeout + PAPERMILL_SAVE_GRACE_SECONDS:.0f} s "
                           "(CellTimeoutError); papermill and its kernel were killed") from error
    except BaseException:
        _keep_notebook(in_progress, folder)
        raise
    _keep_notebook(in_progress, folder)
    sys.stderr.write(completed.stderr[-20000:])
    if completed.returncode == PAPERMILL_DEAD_KERNEL:
        raise ReportFailed(f"report notebook's kernel died (papermill exit {completed.returncode}): "
                           f"{_papermill_reason(completed.stderr)}")
    if completed.returncode != 0:
        raise ReportFailed(f"report notebook failed (papermill exit {completed.returncode}): {_papermill_reason(completed.stderr)}")


def _keep_notebook(in_progress: Path, folder: Path) -> None:
    """The partial notebook becomes report.ipynb; an empty one (papermill died before writing) is removed."""
    try:
        if in_progress.stat().st_size == 0:
            in_progress.unlink()
            return
    except FileNotFoundError:
        return
    os.replace(in_progress, folder / EXECUTED_NOTEBOOK)


def running_step(folder: Path) -> str:
    """Which part of the report was running, from the saved notebook (a stopped run's message)."""
    import nbformat

    for path in (folder / EXECUTED_NOTEBOOK, in_progress_notebook(folder)):
        try:
            notebook = nbformat.read(path, as_version=4)
            break
        except Exception:  # not there, or cut short: the step is then unknown
            continue
    else:
        return "report notebook"
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]

    def papermill(cell) -> dict:
        return cell.get("metadata", {}).get("papermill", {})

    # The cell papermill saw running or failing; after a dead kernel it marks every cell completed,
    # so then the last one that started.
    current = [n for n, cell in enumerate(code_cells) if papermill(cell).get("status") in ("running", "failed")]
    started = [n for n, cell in enumerate(code_cells) if papermill(cell).get("start_time")]
    index = current[-1] if current else (started[-1] if started else None)
    if index is None:
        return "report notebook (kernel start-up)"
    cell = code_cells[index]
    step = next((name for key, name in REPORT_STEPS.items() if key in cell.source), f"cell {index + 1}")
    return f"report notebook ({step})"


def _papermill_reason(stderr: str) -> str:
    """The most telling line of papermill's output: the exception it ended with."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if ("Error" in line or "Exception" in line) and not line.startswith(("File ", "Traceback", "---", "^")):
            return line[:600]
    return lines[-1][:600] if lines else "no output"


def error_class(reason: str) -> str:
    """The exception's class in papermill's reason line (`nbclient...DeadKernelError: ...` -> DeadKernelError)."""
    head = reason.split(":", 1)[0].strip()
    name = head.rsplit(".", 1)[-1]
    return name if name.isidentifier() else "ReportFailed"


def _run_papermill(argv: list[str]) -> int:
    """The child: papermill's Python API with the parameters read as JSON (see the module doc)."""
    import nbclient.exceptions
    import papermill

    notebook, output, parameters_file, cwd, timeout = argv
    logging.basicConfig(level=logging.WARNING)
    parameters = json.loads(Path(parameters_file).read_text(encoding="utf-8"))
    try:
        papermill.execute_notebook(notebook, output, parameters=parameters, kernel_name="python3", cwd=cwd,
                                   execution_timeout=int(timeout), progress_bar=False)
    except nbclient.exceptions.DeadKernelError:
        import traceback

        traceback.print_exc()
        return PAPERMILL_DEAD_KERNEL  # papermill's CLI's own code for a dead kernel
    return 0


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


if __name__ == "__main__":  # the report's papermill child (execute_report)
    sys.exit(_run_papermill(sys.argv[1:]))

"""Notebooks executed by papermill for the tests, and what a reader of the executed copy sees.

`execute_notebook` runs a notebook with parameters injected, in a folder of its own, with every
botocore call of its kernel audited against the service model (tests/botocore_audit, on the
PYTHONPATH the caller set up) and read back into `Executed.audit`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nbformat
import papermill
import pytest

from helpers.container import read_audit

_TEXT_MIMES = ("text/plain", "text/markdown", "text/html")


def visible_text(notebook: nbformat.NotebookNode) -> str:
    """Every output's text: streams, rich text (plain, markdown, HTML tables) and errors."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts += [output.get("data", {}).get(mime, "") for mime in _TEXT_MIMES]
            if output.get("output_type") == "error":
                parts.append(f"{output['ename']}: {output['evalue']}")
    return "\n".join(part if isinstance(part, str) else "".join(part) for part in parts)


@dataclass
class Executed:
    """The executed copy, the folder it ran in, its kernel's audited botocore calls, and the
    PapermillExecutionError if a cell raised (None otherwise)."""

    notebook: nbformat.NotebookNode
    folder: Path
    audit: list[dict]
    error: Exception | None

    @property
    def text(self) -> str:
        return visible_text(self.notebook)

    @property
    def images(self) -> int:
        return sum("image/png" in output.get("data", {}) for cell in self.notebook.cells for output in cell.get("outputs", []))

    @property
    def operations(self) -> set[str]:
        return {record["operation"] for record in self.audit}

    @property
    def invalid(self) -> list[dict]:
        return [record for record in self.audit if record["invalid"]]


def execute_notebook(source: Path, folder: Path, parameters: dict, env: dict[str, str] | None = None) -> Executed:
    """papermill in `folder` (created; it must not exist), parameters injected, `env` set for the
    kernel on top of BOTOCORE_AUDIT_FILE (read by the kernel's sitecustomize)."""
    folder.mkdir()
    audit_file = folder / "botocore-audit.jsonl"
    output = folder / source.name
    error = None
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {"BOTOCORE_AUDIT_FILE": str(audit_file), **(env or {})}.items():
            patch.setenv(key, value)
        try:
            papermill.execute_notebook(str(source), str(output), parameters=parameters,
                                       kernel_name="python3", cwd=str(folder), progress_bar=False)
        except papermill.PapermillExecutionError as failure:
            error = failure
    return Executed(nbformat.read(output, as_version=4), folder, read_audit(audit_file), error)

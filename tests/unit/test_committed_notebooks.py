"""The notebooks and runbooks as committed: valid, without outputs, one cell tagged `parameters` for papermill."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from helpers.paths import NOTEBOOKS, RUNBOOKS


def committed_notebooks() -> list[Path]:
    return sorted([*NOTEBOOKS.glob("*.ipynb"), *RUNBOOKS.glob("*.ipynb")])


@pytest.mark.parametrize("path", committed_notebooks(), ids=lambda path: path.name)
def test_committed_notebooks_have_no_outputs_and_one_parameters_cell(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code), f"{path.name} has outputs"
    tagged = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} parameters-tagged cells"

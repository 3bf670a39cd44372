"""What a reader of an executed notebook sees, for the tests that execute notebooks and runbooks."""

from __future__ import annotations

import nbformat

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

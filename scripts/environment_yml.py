"""Write environment.yml from uv.lock, so the conda environment and the lock cannot drift.

`make environment.yml` (run after `uv lock`) regenerates it; tests/unit/test_environment_file.py
fails when the committed file differs from what this prints. Every package is pinned to the
version uv.lock holds (`uv export`: the runtime dependencies and the `notebooks` extra, with
their platform markers), then the project itself is installed on top; pip finds every
requirement already satisfied at the locked version.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UV = ROOT / ".tools" / "bin" / "uv"
KERNEL = "diversity-monitor"

HEADER = f"""\
# GENERATED from uv.lock by `make environment.yml` (scripts/environment_yml.py): do not edit by hand.
# The data scientists' conda environment: Python from conda-forge, every package at the version
# uv.lock pins (the notebooks extra), then this project.
#   conda env create -f environment.yml && conda activate {KERNEL}
#   python -m ipykernel install --user --name {KERNEL} --display-name "Python ({KERNEL})"
#   jupyter lab
# The environment's own JupyterLab already offers its kernel (ipykernel's `python3`); the
# `ipykernel install` line registers it by name for a JupyterLab started from anywhere else.
name: {KERNEL}
channels:
  - conda-forge
dependencies:
  - python=3.11
  - pip
  - pip:
"""


def locked_requirements(root: Path = ROOT) -> list[str]:
    """`name==version[ ; marker]` for every package the notebooks extra installs, from uv.lock."""
    exported = subprocess.run(
        [str(UV), "export", "--frozen", "--no-dev", "--extra", "notebooks", "--no-hashes", "--no-emit-project",
         "--no-header", "--no-annotate", "--format", "requirements-txt"],
        cwd=root, capture_output=True, text=True, check=True,
    ).stdout
    return [line.strip() for line in exported.splitlines() if line.strip() and not line.startswith(("#", "-"))]


def render(requirements: list[str]) -> str:
    lines = [f'      - "{requirement}"' for requirement in requirements]
    lines.append('      - "-e .[notebooks]"')
    return HEADER + "\n".join(lines) + "\n"


def main() -> int:
    text = render(locked_requirements())
    if len(sys.argv) > 1 and sys.argv[1] == "--check":
        return 0 if (ROOT / "environment.yml").read_text() == text else 1
    (ROOT / "environment.yml").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

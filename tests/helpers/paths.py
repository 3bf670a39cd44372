"""Where the repository's and the tests' own files are, whichever test folder asks."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
AUDIT_DIR = TESTS / "botocore_audit"  # sitecustomize.py: audits every botocore call of a process
FIXTURES = TESTS / "fixtures"
NOTEBOOKS = ROOT / "notebooks"
RUNBOOKS = ROOT / "runbooks"

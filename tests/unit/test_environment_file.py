"""environment.yml is generated from uv.lock: the conda environment pins what the lock pins."""

from __future__ import annotations

import importlib.util
import re
import tomllib

import pytest

from helpers.paths import ROOT

spec = importlib.util.spec_from_file_location("environment_yml", ROOT / "scripts" / "environment_yml.py")
environment_yml = importlib.util.module_from_spec(spec)
spec.loader.exec_module(environment_yml)


@pytest.fixture(scope="module")
def committed() -> str:
    return (ROOT / "environment.yml").read_text()


def test_environment_yml_is_what_the_lock_generates(committed):
    if not environment_yml.UV.exists():
        pytest.fail(f"{environment_yml.UV} is missing: `make venv` installs it (make test does)")
    assert committed == environment_yml.render(environment_yml.locked_requirements()), (
        "environment.yml drifted from uv.lock: run `make environment.yml`")


def test_every_pin_is_the_locked_version(committed):
    locked = {package["name"]: package["version"] for package in tomllib.loads((ROOT / "uv.lock").read_text())["package"]
              if "version" in package}
    pins = dict(re.findall(r'- "([A-Za-z0-9_.\-]+)==([^ ;"]+)', committed))
    assert len(pins) > 100  # the notebooks extra's whole closure, not just the direct dependencies
    assert {name: version for name, version in pins.items() if locked.get(name) != version} == {}
    for direct in ("boto3", "papermill", "jupyterlab", "ipykernel", "moto", "pandas"):
        assert direct in pins


def test_environment_names_and_registers_its_kernel(committed):
    assert "name: diversity-monitor" in committed
    assert "python -m ipykernel install --user --name diversity-monitor" in committed
    assert committed.rstrip().endswith('- "-e .[notebooks]"')

"""`diversity-monitor local` where no stack runs: what status says, and how durations are read."""

from __future__ import annotations

import os

from diversity_monitor import cli
from diversity_monitor.local import cli as local_cli


def test_cli_reports_no_running_stack(tmp_path, capsys):
    assert cli.main(["local", "status", "--state-dir", str(tmp_path)]) == 1
    assert "no stack is running" in capsys.readouterr().err
    assert local_cli.parse_duration("1h30m") == 5400


def test_without_state_dir_the_registry_decides(tmp_path, monkeypatch, capsys):
    """No --state-dir: the one registered stack, or a message naming the registry (none) or asking (several)."""
    from diversity_monitor.aws import local_stacks

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert cli.main(["local", "status"]) == 1
    assert f"no stack is running (none registered in {local_stacks.registry_folder()})" in capsys.readouterr().err
    for port in (4601, 4602):  # two live records (this process stands in for both stacks)
        local_stacks.register_stack({"pid": os.getpid(), "url": f"http://127.0.0.1:{port}",
                                     "state_dir": str(tmp_path / str(port)), "region": "eu-west-1", "clock": "real time"})
    assert cli.main(["local", "advance", "1h"]) == 1
    assert "2 stacks are running" in capsys.readouterr().err
    assert local_cli.chosen_state_dir(tmp_path / "4601") == (tmp_path / "4601").resolve()

"""`diversity-monitor local` where no stack runs: what status says, and how durations are read."""

from __future__ import annotations

from diversity_monitor import cli
from diversity_monitor.local import cli as local_cli


def test_cli_reports_no_running_stack(tmp_path, capsys):
    assert cli.main(["local", "status", "--state-dir", str(tmp_path)]) == 1
    assert "no stack is running" in capsys.readouterr().err
    assert local_cli.parse_duration("1h30m") == 5400

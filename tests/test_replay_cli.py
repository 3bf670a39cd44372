"""`replay` / `baseline` with a mistyped endpoint name: one line naming it, before any session is sent."""

from __future__ import annotations

import boto3
import pytest

from diversity_monitor import cli


@pytest.mark.parametrize("command", ["replay", "baseline"])
def test_a_mistyped_endpoint_is_named_before_any_replay(command, aws_env, tmp_path, capsys):
    sessions, catalog = tmp_path / "sessions.jsonl", tmp_path / "catalog.csv"
    sessions.write_text('{"session_id": "s1", "request": {"user_id": "u1"}}\n')
    catalog.write_text("article_id,category\na1,news\n")
    extra = ["--output", str(tmp_path / "baseline")] if command == "baseline" else []
    status = cli.main([command, "--endpoint-name", "recommender-prd", "--validation-set", str(sessions),
                       "--catalog", str(catalog), *extra])
    printed = capsys.readouterr()
    assert status == 1
    assert f"{command} failed: endpoint 'recommender-prd' does not exist in eu-west-1" in printed.err
    # The endpoints that do exist (other tests' on this shared server, or none) are listed.
    existing = [item["EndpointName"] for item in boto3.client("sagemaker").list_endpoints(MaxResults=100)["Endpoints"]]
    assert f"endpoints there: {', '.join(existing) or 'none'}" in printed.err
    assert "Traceback" not in printed.err and "sessions in" not in printed.out  # nothing was replayed
    assert not (tmp_path / "baseline").exists()

"""`grantledger plan / sync / get grants / get operations` in the embedded mode (SQLite
ledger, in-process broker and worker) against an in-process Sandbox."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tests.integration.sync_support import World
from workers.cli.main import app, register_commands

pytest_plugins = ["tests.integration.sync_fixtures"]
register_commands()


def run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, (result.output, result.exception)
    return result.output


def test_plan_shows_the_changes_and_applies_nothing(cli_world: World):
    shown = json.loads(run("plan", "-o", "json"))
    assert [(c["change"], c["principal"], c["account"], c["permission_set"])
            for c in shown["changes"]] == [
        ("scim_create_user", "USER:alice", None, None),
        ("create", "USER:alice", "111111111111 (Production)", "ReadOnlyAccess")]
    assert shown["counts"]["users_to_push"] == 1
    assert "nothing applied" in run("sync", "--dry-run")
    assert cli_world.grants() == [] and cli_world.aws_assignments() == set()


def test_sync_runs_until_idle_then_get_shows_grants_and_operations(cli_world: World):
    summary = json.loads(run("sync", "-o", "json"))
    assert summary["counts"]["created"] == 1 and summary["pending"] == {}
    assert cli_world.key("user:alice", "Production", "ReadOnlyAccess") \
        in cli_world.aws_assignments()
    grants = json.loads(run("get", "grants", "--user", "alice", "-o", "json"))
    assert [(g["principal"], g["permission_set"], g["state"]) for g in grants] == [
        ("USER:alice", "ReadOnlyAccess", "ACTIVE")]
    operations = json.loads(run("get", "operations", "--state", "succeeded", "-o", "json"))
    assert [(o["kind"], o["principal"], o["state"]) for o in operations] == [
        ("create_assignment", "USER:alice", "SUCCEEDED")]
    assert operations[0]["request_id"]
    assert "grants (1)" in run("get", "grants")  # the table (its cells wrap at 80 columns)


def test_sync_user_reprovision_recreates_the_user(cli_world: World):
    run("sync")
    cli_world.runtime.directory.delete_user(user_id=cli_world.user_id("alice"))
    json.loads(run("sync", "--user", "alice", "--reprovision", "-o", "json"))
    assert cli_world.key("user:alice", "Production", "ReadOnlyAccess") \
        in cli_world.aws_assignments()


def test_bad_options_exit_2(cli_world: World):
    assert "--reprovision needs --user" in run("sync", "--reprovision", code=2)
    assert "unknown state" in run("get", "grants", "--state", "LOST", code=2)


def test_worker_and_beat_refuse_the_in_process_broker(cli_world: World):
    from models.errors import ConfigError

    result = CliRunner().invoke(app, ["worker"])
    assert isinstance(result.exception, ConfigError)
    assert "in-process broker" in str(result.exception)

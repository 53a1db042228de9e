"""The CLI tells the truth (issue 21): exit codes of work with errors, a plan listing every
kind of change, and a status that reads what the sync and workers record."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from tests.integration.sync_support import World, sandbox_settings
from workers.celery_app import celery_app
from workers.cli.main import app, register_commands
from workers.cli.output import PARTIAL_EXIT
from workers.runtime import Runtime, set_runtime
from workers.sandbox import Sandbox

pytest_plugins = ["tests.integration.sync_fixtures"]
register_commands()


@pytest.fixture
def cli_world(sync_sandbox: Sandbox, tmp_path) -> Iterator[World]:
    celery_app.control.purge()
    runtime = Runtime(sandbox_settings(sync_sandbox, f"sqlite:///{tmp_path / 'ledger.db'}"))
    world = World(runtime, sync_sandbox)
    world.reset()
    world.add_role("prod-read", allow=[("Production", "ReadOnlyAccess")])
    world.add_user("alice", roles=["prod-read"])
    previous = set_runtime(runtime)
    yield world
    set_runtime(previous)
    runtime.close()


def invoke(*args: str, code: int = 0):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, (result.output, result.exception)
    return result


def run(*args: str, code: int = 0) -> str:
    return invoke(*args, code=code).output


@pytest.fixture
def refused_world(cli_world: World) -> Iterator[World]:
    """Alice leaves a synced access list; the removal meets a token the directory refuses."""
    cli_world.add_list("developers", roles=["prod-read"], users=["alice"])
    run("sync")
    cli_world.remove_member("developers", "alice")
    with cli_world.reconfigured(scim_token=SecretStr("revoked-token")) as broken:
        previous = set_runtime(broken.runtime)
        yield broken
        set_runtime(previous)


def test_sync_with_scim_refused_exits_partly_applied_and_says_why_on_stderr(
        refused_world: World):
    result = invoke("sync", "-o", "json", "--timeout", "30", code=PARTIAL_EXIT)
    summary = json.loads(result.stdout)
    assert summary["counts"]["scim_stopped"] == 1 and summary["errors"]
    assert "401" in result.stderr and "partly applied" in result.stderr


def test_sync_without_errors_exits_0(cli_world: World):
    assert invoke("sync", "-o", "json").stderr == ""


def test_help_documents_the_exit_codes():
    for command in ("sync", "import", "revoke", "uninstall", "apply"):
        assert f"{PARTIAL_EXIT}" in run(command, "--help"), command


def test_plan_lists_membership_user_and_group_changes(cli_world: World):
    run("sync")
    cli_world.add_list("developers", roles=["prod-read"])
    cli_world.add_user("erin")
    shown = json.loads(run("plan", "-o", "json"))
    changes = {(c["change"], c["principal"]) for c in shown["changes"]}
    assert ("scim_create_user", "USER:erin") in changes
    assert ("scim_create_group", "GROUP:developers") in changes
    run("sync")
    cli_world.add_member("developers", "erin")
    shown = json.loads(run("plan", "-o", "json"))
    assert shown["counts"] == {"members_added": 1}
    assert [(c["change"], c["principal"], c["group"]) for c in shown["changes"]] == [
        ("member_add", "USER:erin", "developers")]
    table = run("plan")
    assert "member_add" in table and "erin" in table and "developers" in table
    run("sync")
    cli_world.remove_member("developers", "erin")
    shown = json.loads(run("plan", "-o", "json"))
    assert [(c["change"], c["principal"], c["group"]) for c in shown["changes"]] == [
        ("member_remove", "USER:erin", "developers")]


def test_status_shows_when_the_last_full_sync_finished(cli_world: World):
    assert "never" in _row(run("status"), "last full sync")
    run("sync")
    row = _row(run("status"), "last full sync")
    assert "never" not in row and "20" in row  # a date


def _row(table: str, label: str) -> str:
    return next(line for line in table.splitlines() if label in line)

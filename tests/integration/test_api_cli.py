"""`grantledger token create | list | revoke` against the API tests' PostgreSQL ledger, and
the token they print working (then not) on the API."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from models.errors import NotFound
from tests.integration.api_support import bearer
from workers.cli.main import app, register_commands
from workers.runtime import Runtime, set_runtime

pytest_plugins = ["tests.integration.api_fixtures"]
register_commands()


@pytest.fixture
def installed(api_runtime: Runtime, api_world) -> Iterator[Runtime]:
    """The API tests' api_runtime as the process api_runtime, for the CLI."""
    previous = set_runtime(api_runtime)
    yield api_runtime
    set_runtime(previous)


def run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_token_create_list_revoke(installed: Runtime, client: TestClient) -> None:
    created = json.loads(run("token", "create", "--user", "alice", "--label", "laptop",
                             "--actor", "ops", "-o", "json"))
    assert created["user"] == "alice" and created["token"].startswith("glt_")
    assert client.get("/v1/users", headers=bearer(created["token"])).status_code == 200

    listed = json.loads(run("token", "list", "--user", "alice", "-o", "json"))
    assert [(t["id"], t["label"], t["revoked_at"]) for t in listed] == [
        (created["id"], "laptop", None)]
    assert created["token"] not in json.dumps(listed)

    revoked = json.loads(run("token", "revoke", str(created["id"]), "-o", "json"))
    assert revoked["revoked_at"] is not None
    assert client.get("/v1/users", headers=bearer(created["token"])).status_code == 401


def test_table_output_shows_the_token_once(installed: Runtime) -> None:
    output = run("token", "create", "--user", "bob")
    assert "shown once" in output and "glt_" in output
    assert "glt_" not in run("token", "list")


def test_token_for_an_unknown_user_is_refused(installed: Runtime) -> None:
    result = CliRunner().invoke(app, ["token", "create", "--user", "nobody"])
    assert isinstance(result.exception, NotFound)
    assert json.loads(run("token", "list", "-o", "json")) == []

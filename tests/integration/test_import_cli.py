"""`grantledger import`, `get accounts|permission-sets|assignments` and `iam-policy` as
processes: a tmp SQLite ledger, GRANTLEDGER_AWS_ENDPOINT_URL pointing at a sandbox served
by this test process."""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.ledger import migrate
from tests.conftest import throwaway_database
from tests.integration.import_support import SMALL_FIXTURE
from workers.sandbox import Sandbox


@pytest.fixture(scope="module")
def served() -> Iterator[Sandbox]:
    """One sandbox for the module: these tests read AWS, they never change it."""
    with Sandbox(settle_delay=0.0).start() as running:
        running.seed(SMALL_FIXTURE)
        yield running


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


def cli_env(sandbox: Sandbox, ledger: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRANTLEDGER_")}
    env.update(GRANTLEDGER_DATABASE_URL=f"sqlite:///{ledger}",
               GRANTLEDGER_AWS_ENDPOINT_URL=sandbox.endpoint_url,
               GRANTLEDGER_INSTANCE_ARN=sandbox.instance_arn,
               GRANTLEDGER_IDENTITY_STORE_ID=sandbox.identity_store_id,
               GRANTLEDGER_SSO_ADMIN_RATE="1000", GRANTLEDGER_IDENTITYSTORE_RATE="1000",
               COLUMNS="160")
    return env | overrides


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workers.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def count(ledger: Path, table: str) -> int:
    with sqlite3.connect(ledger) as db:
        return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_preview_as_json_shows_the_organization_and_writes_nothing(served: Sandbox,
                                                                   ledger: Path) -> None:
    result = run(cli_env(served, ledger), "import", "--preview", "-o", "json")
    assert result.returncode == 0, result.stderr
    preview = json.loads(result.stdout)
    assert preview["enrolled"] is False
    assert {g["display_name"]: g["access_list"] for g in preview["groups"]} == {
        "Developers": "developers", "Finance": "finance", "Platform Admins": "platform-admins"}
    assert [a["id"] for a in preview["accounts"]] == [
        "111111111111", "123456789012", "222222222222", "333333333333"]
    assert len(preview["users"]) == 6 and len(preview["permission_sets"]) == 4
    assert not ledger.exists()  # a preview creates no ledger


def test_preview_works_on_a_database_never_migrated(served: Sandbox, ledger: Path) -> None:
    with throwaway_database("gl_preview") as url:
        env = cli_env(served, ledger, GRANTLEDGER_DATABASE_URL=url,
                      GRANTLEDGER_API_TOKEN=secrets.token_urlsafe(32))
        result = run(env, "import", "--preview")
        assert result.returncode == 0, result.stderr
        assert "Platform Admins" in result.stdout
        assert "not migrated" in result.stdout
        assert migrate.current(url) is None


def test_import_enrols_then_changes_nothing_and_feeds_get(served: Sandbox,
                                                          ledger: Path) -> None:
    env = cli_env(served, ledger)
    first = run(env, "import", "--default-owner", "alice", "--actor", "ops")
    assert first.returncode == 0, first.stderr
    assert "Enrolled" in first.stdout and "platform-admins" in first.stdout
    assert "assignments" in first.stderr  # the fetch progress, kept off stdout
    again = json.loads(run(env, "import", "-o", "json").stdout)
    assert not again["enrolled_now"] and again["new_grants"] == 0
    assert all(names == [] for names in again["new"].values())

    catalog = json.loads(run(env, "get", "assignments", "-o", "json").stdout)
    admin = next(a for a in catalog if a["id"] == "111111111111/AdministratorAccess")
    assert (admin["system_role"], admin["granted_by"]) == (
        "AdministratorAccess-on-Production-111111111111", ["platform-admins"])
    account = json.loads(run(env, "get", "accounts", "Production", "-o", "json").stdout)
    assert (account["id"], account["present"]) == ("111111111111", True)
    assert count(ledger, "grants") == 8


def test_first_import_without_owners_is_refused(served: Sandbox, ledger: Path) -> None:
    result = run(cli_env(served, ledger), "import")
    assert result.returncode == 2
    assert "needs default owners" in result.stderr and "--default-owner" in result.stderr
    unknown = run(cli_env(served, ledger), "import", "--default-owner", "mallory")
    assert unknown.returncode == 2 and "mallory" in unknown.stderr
    assert count(ledger, "accounts") == 0


@pytest.mark.parametrize(("overrides", "says", "hint"), [
    ({"GRANTLEDGER_AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed_port()}"},
     "cannot reach AWS", "GRANTLEDGER_AWS_ENDPOINT_URL"),
    ({"GRANTLEDGER_INSTANCE_ARN": "arn:aws:sso:::instance/ssoins-0000000000000000"},
     "ResourceNotFoundException", "GRANTLEDGER_INSTANCE_ARN"),
])
def test_aws_faults_are_one_line_with_a_hint_and_import_nothing(
        served: Sandbox, ledger: Path, overrides: dict[str, str], says: str, hint: str) -> None:
    result = run(cli_env(served, ledger, **overrides), "import", "--default-owner", "alice",
                 "-o", "json")
    assert result.returncode == 1
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and says in error[0]
    assert hint in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == "" and count(ledger, "accounts") == 0


def test_iam_policy_is_the_json_document(served: Sandbox, ledger: Path) -> None:
    result = run(cli_env(served, ledger), "iam-policy")
    assert result.returncode == 0
    actions = {a for s in json.loads(result.stdout)["Statement"] for a in s["Action"]}
    assert {"sso:ListAccountAssignments", "identitystore:ListGroupMemberships",
            "organizations:ListAccounts"} <= actions


def test_embedded_commands_write_nothing_on_stderr_with_a_bare_memory_broker(
        served: Sandbox, ledger: Path) -> None:
    env = cli_env(served, ledger, GRANTLEDGER_BROKER_URL="memory://",
                  GRANTLEDGER_SCIM_URL=served.scim_url, GRANTLEDGER_SCIM_TOKEN=served.scim_token)
    assert run(env, "import", "--default-owner", "alice", "-o", "json").returncode == 0
    synced = run(env, "sync", "--wait", "-o", "json")
    assert synced.returncode == 0, synced.stderr
    assert synced.stderr == ""  # kombu warned "No hostname was supplied" on each connection

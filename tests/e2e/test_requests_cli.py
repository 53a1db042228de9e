"""The request commands as a person runs them: `grantledger request ...`, `get requestable`,
`get requests`, `access-list review`, against a SQLite ledger file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from models.ledger import migrate
from models.ledger.db import make_engine, session_factory, transaction
from tests.integration.requests_support import ROLES, STAGING, World, add_catalog


@pytest.fixture(scope="module")
def ledger_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('requests-cli') / 'ledger.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        add_catalog(session)
    world = World(sessions)
    for name, spec in ROLES.items():
        world.add_role(name, spec)
    world.add_user("alice", ["developer"])
    world.add_user("bob", ["security-reviewer"])
    world.add_list("staging-admins", owners=["bob"],
                   roles=["AdministratorAccess-on-Staging-222222222222"], members=["dave"],
                   recurrence_seconds=86400)
    world.add_user("dave", [])
    engine.dispose()
    return url


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GRANTLEDGER_DATABASE_URL": url, "USER": "tester"}
    return subprocess.run([sys.executable, "-m", "workers.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])


def test_request_approve_extend_promote_from_the_command_line(ledger_url: str) -> None:
    created = cli(ledger_url, "request", "create", "--user", "alice", "--resource",
                  "Staging/AdministratorAccess", "--reason", "release 4.2", "--duration", "9h")
    assert created.returncode == 0, created.stderr
    request_id = created.stdout.strip()
    assert request_id.startswith("req-") and "\n" not in request_id
    assert "capped to 4h" in created.stderr

    own = cli(ledger_url, "request", "approve", request_id, "--reviewer", "alice")
    assert own.returncode == 2 and "own request" in own.stderr

    approved = cli(ledger_url, "request", "approve", request_id, "--reviewer", "bob", "-o",
                   "json")
    assert approved.returncode == 0, approved.stderr
    assert json.loads(approved.stdout)["state"] == "APPROVED"

    extended = cli(ledger_url, "request", "extend", request_id, "--duration", "1h",
                   "--reviewer", "bob", "-o", "json")
    assert extended.returncode == 0, extended.stderr
    assert json.loads(extended.stdout)["expires_at"] > json.loads(approved.stdout)["expires_at"]

    promoted = cli(ledger_url, "request", "promote", request_id, "--access-list",
                   "staging-admins", "--reviewer", "bob", "-o", "yaml")
    assert promoted.returncode == 0, promoted.stderr
    assert "state: PROMOTED" in promoted.stdout

    listed = cli(ledger_url, "get", "requests", "--user", "alice", "--state", "promoted",
                 "-o", "json")
    assert [r["id"] for r in json.loads(listed.stdout)] == [request_id]


def test_get_requestable_groups_by_account(ledger_url: str) -> None:
    shown = cli(ledger_url, "get", "requestable", "--user", "alice", "-o", "json")
    assert shown.returncode == 0, shown.stderr
    accounts = {a["account_id"]: a["permission_sets"] for a in json.loads(shown.stdout)["accounts"]}
    assert accounts[STAGING]["AdministratorAccess"] == "4h"


def test_refusals_exit_2_with_the_reason(ledger_url: str) -> None:
    refused = cli(ledger_url, "request", "create", "--user", "alice", "--resource",
                  "Production/AdministratorAccess", "--reason", "x")
    assert refused.returncode == 2
    assert "111111111111/AdministratorAccess: none of your roles allows" in refused.stderr
    assert refused.stdout == ""
    bad = cli(ledger_url, "request", "create", "--user", "alice", "--resource", "x/y",
              "--reason", "x", "--duration", "soon")
    assert bad.returncode == 2 and "invalid duration" in bad.stderr


def test_access_list_review_by_an_owner(ledger_url: str) -> None:
    refused = cli(ledger_url, "access-list", "review", "staging-admins", "--reviewer", "alice")
    assert refused.returncode == 2 and "not an owner" in refused.stderr
    reviewed = cli(ledger_url, "access-list", "review", "staging-admins", "--reviewer", "bob",
                   "--remove", "dave", "-o", "json")
    assert reviewed.returncode == 0, reviewed.stderr
    review = json.loads(reviewed.stdout)
    assert review["removed"] == ["dave"] and review["next_review_at"] > review["reviewed_at"]


def test_an_operator_cancels_a_pending_request_from_the_command_line(ledger_url: str) -> None:
    created = cli(ledger_url, "request", "create", "--user", "alice", "--resource",
                  "Staging/AdministratorAccess", "--reason", "release 4.3")
    request_id = created.stdout.strip()
    cancelled = cli(ledger_url, "request", "cancel", request_id, "--actor", "alice", "-o",
                    "json")
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["state"] == "DENIED"
    again = cli(ledger_url, "request", "cancel", request_id)
    assert again.returncode != 0 and "only PENDING" in again.stderr

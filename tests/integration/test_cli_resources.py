"""The real `grantledger` command on a SQLite ledger (and once on PostgreSQL): db, validate,
apply, delete, get, access-list membership and audit; exit codes and machine output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.orm import Session, sessionmaker

from models.domain import PrincipalType
from models.ledger import migrate
from models.ledger.base import database_time
from models.ledger.db import make_engine, session_factory
from models.ledger.enums import GrantState, SourceKind
from models.ledger.grants import transition, upsert_grant
from tests.integration.services_support import (
    BROKEN,
    EXAMPLES,
    sandbox_assignments,
    seed_system_roles,
    wipe,
)

pytest_plugins = ["tests.integration.services_fixtures"]

GRANTLEDGER = str(Path(sys.executable).parent / "grantledger")


@dataclass
class Cli:
    """`grantledger` run as a process against one ledger database."""

    database_url: str
    cwd: Path

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "GRANTLEDGER_DATABASE_URL": self.database_url,
               "GRANTLEDGER_API_TOKEN": "cli-test-token-not-a-placeholder", "USER": "operator",
               "COLUMNS": "200"}  # tables wide enough to hold whole names
        return subprocess.run([GRANTLEDGER, *args], input=stdin, capture_output=True,
                              text=True, timeout=60, env=env, cwd=self.cwd)

    def ok(self, *args: str, stdin: str | None = None) -> str:
        result = self(*args, stdin=stdin)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def json(self, *args: str, stdin: str | None = None) -> Any:
        return json.loads(self.ok(*args, "-o", "json", stdin=stdin))

    def sessions(self) -> sessionmaker[Session]:
        return session_factory(make_engine(self.database_url))


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """A fresh SQLite ledger holding the sandbox's system roles (what import leaves)."""
    cli = Cli(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path)
    migrate.upgrade(cli.database_url)
    seed_system_roles(cli.sessions())
    return cli


@pytest.fixture(scope="module")
def seeded_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """One seeded ledger for tests that must not write to it."""
    path = tmp_path_factory.mktemp("cli")
    cli = Cli(f"sqlite:///{path / 'ledger.db'}", path)
    migrate.upgrade(cli.database_url)
    seed_system_roles(cli.sessions())
    return cli


def test_db_upgrade_then_current(tmp_path: Path) -> None:
    cli = Cli(f"sqlite:///{tmp_path / 'new.db'}", tmp_path)
    assert cli.json("db", "current")["at_head"] is False
    status = cli.json("db", "upgrade")
    assert status["at_head"] is True and status["revision"] == migrate.head()


def test_unreachable_database_is_one_line_and_a_hint(tmp_path: Path) -> None:
    result = Cli("postgresql://nobody@127.0.0.1:1/none", tmp_path)("db", "current")
    assert result.returncode == 1
    first, hint = result.stderr.strip().splitlines()
    assert first.startswith("error: cannot reach the ledger database") and "hint:" in hint


def test_validate_resolves_system_roles_through_the_ledger(seeded_sqlite: Cli,
                                                          tmp_path: Path) -> None:
    summary = seeded_sqlite.json("validate", "-f", str(EXAMPLES))
    assert summary["ledger"] == "checked" and summary["counts"]["access_list"] == 5
    offline = seeded_sqlite("validate", "-f", str(EXAMPLES), "--offline")
    assert offline.returncode == 2
    assert "role 'AdministratorAccess-on-Production-111111111111' does not exist" in (
        offline.stderr)
    assert "not consulted: skipped (--offline)" in offline.stderr
    no_ledger = Cli(f"sqlite:///{tmp_path / 'absent.db'}", tmp_path)(
        "validate", "-f", str(EXAMPLES / "roles.yaml"))
    assert no_ledger.returncode == 0 and not (tmp_path / "absent.db").exists()


@pytest.mark.parametrize("ledger", ["absent", "empty"])
def test_validate_without_an_imported_ledger_names_what_it_could_not_check(
        tmp_path: Path, ledger: str) -> None:
    cli = Cli(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path)
    if ledger == "empty":
        migrate.upgrade(cli.database_url)
    result = cli("validate", "-f", str(EXAMPLES), "-o", "json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["counts"]["access_list"] == 5
    assert [line.split(" ", 1)[1] for line in summary["unchecked"]] == [
        "spec.grants.roles[1]: role 'PowerUserAccess-on-Staging-222222222222'",
        "spec.grants.roles[0]: role 'AdministratorAccess-on-Production-111111111111'",
        "spec.grants.roles[0]: role 'ReadOnlyAccess-on-Production-111111111111'",
        "spec.grants.roles[0]: role 'BillingAccess-on-Production-111111111111'"]
    assert "could not check 4 reference(s) to system roles" in result.stderr
    assert (tmp_path / "ledger.db").exists() is (ledger == "empty")


def test_validate_each_reports_every_broken_example_on_its_own(tmp_path: Path) -> None:
    result = Cli(f"sqlite:///{tmp_path / 'absent.db'}", tmp_path)(
        "validate", "--each", "-f", str(BROKEN))
    assert result.returncode == 2
    files = sorted(BROKEN.glob("*.yaml"))
    assert f"{len(files)} error(s)" in result.stderr
    for broken in files:
        expected = next(line.split("# expect: ", 1)[1] for line in
                        broken.read_text().splitlines() if line.startswith("# expect: "))
        assert expected in result.stderr, broken.name


@pytest.mark.parametrize("broken", sorted(BROKEN.glob("*.yaml")), ids=lambda p: p.stem)
def test_each_broken_example_exits_2_at_its_expected_line(seeded_sqlite: Cli,
                                                          broken: Path) -> None:
    expected = next(line.split("# expect: ", 1)[1] for line in broken.read_text().splitlines()
                    if line.startswith("# expect: "))
    result = seeded_sqlite("apply", "-f", str(broken))
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_apply_examples_then_again_unchanged(cli: Cli) -> None:
    created = cli.json("apply", "-f", str(EXAMPLES))
    assert {row["action"] for row in created} == {"created"} and len(created) == 15
    again = cli.json("apply", "-f", str(EXAMPLES))
    assert {row["action"] for row in again} == {"unchanged"}
    table = cli.ok("get", "access-lists")
    assert "platform-admins" in table and "sre" in table
    alice = yaml.safe_load(cli.ok("get", "users", "alice", "-o", "yaml"))
    assert alice["roles"] == ["developer"] and alice["lists"] == ["platform-admins"]


def test_dry_run_and_stdin(cli: Cli) -> None:
    users = (EXAMPLES / "users.yaml").read_text() + "---\n" + (EXAMPLES / "roles.yaml").read_text()
    planned = cli.json("apply", "-f", "-", "--dry-run", stdin=users)
    assert len(planned) == 10 and cli.json("get", "users") == []
    cli.ok("apply", "-f", "-", stdin=users)
    assert len(cli.json("get", "users")) == 6
    edited = users.replace("alice@example.com", "alice@corp.example")
    rows = cli.json("apply", "-f", "-", stdin=edited)
    assert {r["name"]: r["changes"] for r in rows if r["action"] == "updated"} == {
        "alice": "email"}


def test_a_bad_reference_applies_nothing(cli: Cli, tmp_path: Path) -> None:
    batch = tmp_path / "batch.yaml"
    batch.write_text((EXAMPLES / "users.yaml").read_text().replace("[developer]", "[dev]"))
    result = cli("apply", "-f", str(batch), "-f", str(EXAMPLES / "roles.yaml"))
    assert result.returncode == 2 and "batch.yaml:9 spec.roles[0]: role 'dev'" in result.stderr
    assert cli.json("get", "users") == [] and cli.json("get", "roles") != []


def test_membership_and_delete_commands(cli: Cli) -> None:
    cli.ok("apply", "-f", str(EXAMPLES))
    cycle = cli("access-list", "add-member", "sre", "--list", "engineering")
    assert cycle.returncode == 2
    assert "cycle: engineering -> platform-admins -> sre -> engineering" in cycle.stderr
    added = cli.json("access-list", "add-member", "security", "--user", "alice",
                     "--expires", "2031-01-31")
    assert added["action"] == "added" and added["expires"].startswith("2031-01-31T00:00:00")
    removed = cli.json("access-list", "remove-member", "security", "--user", "alice")
    assert removed["action"] == "removed"
    refused = cli("delete", "user", "carol")
    assert refused.returncode == 2 and "owns access list(s) engineering, finance, security" in (
        refused.stderr)
    rows = cli.json("delete", "user", "carol", "--force")
    assert rows[0] == {"kind": "user", "name": "carol", "action": "deleted", "changes": ""}
    assert "carol" not in [u["name"] for u in cli.json("get", "users")]


def test_audit_trail_as_json_lines_and_holders_at(cli: Cli) -> None:
    cli.ok("apply", "-f", str(EXAMPLES / "users.yaml"), "-f", str(EXAMPLES / "roles.yaml"),
           "--actor", "ops-bot")
    lines = cli.ok("audit", "--user", "ops-bot", "-o", "json").splitlines()
    events = [json.loads(line) for line in lines]
    assert len(events) == 10 and {e["action"] for e in events} == {"resource.created"}
    assert all(e["actor"].startswith("cli:ops-bot (os: ") for e in events)
    assignment = sandbox_assignments()[0]
    with cli.sessions().begin() as session:
        before = database_time(session).isoformat()
        grant, _ = upsert_grant(
            session, principal_type=PrincipalType.USER, principal_name="alice",
            account_id=assignment.account.id, permission_set_arn=assignment.permission_set.arn,
            source_kind=SourceKind.REQUEST, source_id="req-1")
        transition(session, grant_id=grant.id, expected=GrantState.PENDING,
                   to=GrantState.PROVISIONING)
        transition(session, grant_id=grant.id, expected=GrantState.PROVISIONING,
                   to=GrantState.ACTIVE)
    (held,) = cli.json("audit", "--at", "now", "--account", assignment.account.id)
    assert (held["user"], held["source"]) == ("alice", "request:req-1")
    assert cli.json("audit", "--at", before) == []
    bad = cli("audit", "--since", "yesterday-ish")
    assert bad.returncode == 2 and "neither a time" in bad.stderr


def test_apply_and_get_on_postgresql(services_postgresql_url: str, tmp_path: Path) -> None:
    cli = Cli(services_postgresql_url, tmp_path)
    try:
        assert cli.json("db", "upgrade")["at_head"] is True
        seed_system_roles(cli.sessions())
        assert len(cli.json("apply", "-f", str(EXAMPLES))) == 15
        (sre,) = [a for a in cli.json("get", "access-lists") if a["name"] == "sre"]
        assert sre["member_count"] == 2 and sre["next_review_at"]
    finally:
        wipe(cli.sessions())


ESCAPED_TITLE = ("kind: access_list\nmetadata: {name: sre}\n"
                 "spec:\n  title: \"SRE \\e[31mred\\e[0m\"\n")


def test_terminal_controls_never_reach_the_ledger_or_the_audit(cli: Cli) -> None:
    cli.ok("apply", "-f", str(EXAMPLES))
    titled = cli("apply", "-f", "-", stdin=ESCAPED_TITLE)
    assert titled.returncode == 2 and ":4 spec.title: control character" in titled.stderr
    coloured = cli("request", "create", "--user", "alice", "--role", "developer",
                   "--reason", "deploy \x1b[31mnow\x1b[0m")
    assert coloured.returncode == 2 and "--reason" in coloured.stderr
    assert "control character" in coloured.stderr
    blank = cli("request", "create", "--user", "alice", "--role", "developer",
                "--reason", "   ")
    assert blank.returncode == 2 and "(--reason TEXT)" in blank.stderr
    trail = cli.ok("audit")
    assert "\x1b" not in trail and "\x9b" not in trail


def test_a_time_beyond_utc_years_is_a_clear_error(cli: Cli) -> None:
    cli.ok("apply", "-f", str(EXAMPLES))
    beyond = cli("access-list", "add-member", "sre", "--user", "alice",
                 "--expires", "9999-12-31T23:59:59-14:00")
    assert beyond.returncode == 2 and "--expires" in beyond.stderr
    assert "outside the years 1-9999" in beyond.stderr and "Traceback" not in beyond.stderr
    before = cli("audit", "--since", "0001-01-01T00:00:00+14:00")
    assert before.returncode == 2 and "--since" in before.stderr


def test_alias_bombs_and_deep_nesting_are_located_errors(cli: Cli, tmp_path: Path) -> None:
    from tests.unit.test_resources import alias_bomb

    (tmp_path / "bomb.yaml").write_text(alias_bomb())
    (tmp_path / "deep.yaml").write_text("kind: user\nspec: " + "{a: " * 5000 + "1"
                                        + "}" * 5000 + "\n")
    for name, expected in (("bomb.yaml", ":10: invalid YAML: aliases expand"),
                           ("deep.yaml", ":2: invalid YAML: nested deeper")):
        for command in ("validate", "apply"):
            result = cli(command, "-f", str(tmp_path / name))
            assert result.returncode == 2 and expected in result.stderr, result.stderr
            assert "Traceback" not in result.stderr

"""`grantledger uninstall` on PostgreSQL + an in-process Sandbox, after a real enrolment:
--dry-run lists exactly what grantledger created (its assignments, including one on an
imported group; its SCIM group and user); uninstall removes exactly that, and what was there
before enrolment (a group, a user, their assignments) and a foreign assignment survive."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import delete
from typer.testing import CliRunner

from models.domain import AssignmentKey
from models.ledger import tables
from models.ledger.db import transaction
from models.ledger.kv import read_state
from tasks import importer
from tests.integration.sync_support import ACCOUNTS, FIXTURE, World
from workers.cli.main import app, register_commands
from workers.runtime import set_runtime

pytest_plugins = ["tests.integration.sync_fixtures"]
register_commands()

PROD, STAGING = ACCOUNTS["Production"], ACCOUNTS["Staging"]
BEFORE_GRANTLEDGER = {
    **FIXTURE,
    "users": [{"user_name": name, "given_name": name.title(), "family_name": "Old",
               "email": f"{name}@example.com"} for name in ("carol", "erin")],
    "groups": [{"display_name": "Legacy Ops", "members": ["carol"]}],
    "assignments": [
        {"account": "Production", "permission_set": "AdministratorAccess", "group": "Legacy Ops"},
        {"account": "Staging", "permission_set": "ReadOnlyAccess", "user": "carol"}],
}


@pytest.fixture
def installed(sync_world: World) -> Iterator[World]:
    """Enrolled over BEFORE_GRANTLEDGER, then grantledger's own policy synced, plus a foreign
    assignment made after enrolment."""
    world = sync_world
    world.sandbox.reset()
    world.seeded = world.sandbox.seed(BEFORE_GRANTLEDGER)
    with transaction(world.runtime.sessions) as session:  # the catalog comes from the import
        session.execute(delete(tables.Account))
        session.execute(delete(tables.PermissionSet))
    importer.run_import(runtime=world.runtime, default_owners=["carol"], actor="tester")
    world.add_role("prod-read", allow=[("Production", "ReadOnlyAccess")])
    world.add_role("staging-admin", allow=[("Staging", "AdministratorAccess")])
    world.add_user("dave", roles=["prod-read"])
    world.add_list("admins", roles=["staging-admin"], users=["dave", "carol"])
    world.set_list_roles("legacy-ops", [*legacy_roles(world), "prod-read"])
    world.sync()
    world.sandbox.center.seed_assignment(
        ("USER", world.seeded.users["erin"], PROD, world.arn("PowerUserAccess")))
    previous = set_runtime(world.runtime)
    yield world
    set_runtime(previous)


def legacy_roles(world: World) -> list[str]:
    with world.runtime.sessions() as session:
        return list(session.get(tables.AccessList, "legacy-ops").granted_roles)


def ours(world: World) -> set[AssignmentKey]:
    return {world.key("user:dave", "Production", "ReadOnlyAccess"),
            world.key("group:admins", "Staging", "AdministratorAccess"),
            world.key("group:legacy-ops", "Production", "ReadOnlyAccess")}


def uninstall(*args: str) -> str:
    result = CliRunner().invoke(app, ["uninstall", *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def test_dry_run_lists_exactly_what_grantledger_created(installed: World):
    truth = installed.truth()
    rows = json.loads(uninstall("--dry-run", "-o", "json"))
    assert sorted((r["kind"], r["name"], r.get("permission_set")) for r in rows) == [
        ("assignment", "GROUP:admins", "AdministratorAccess"),
        ("assignment", "GROUP:legacy-ops", "ReadOnlyAccess"),
        ("assignment", "USER:dave", "ReadOnlyAccess"),
        ("group", "admins", None), ("user", "dave", None)]
    assert installed.truth() == truth and ours(installed) <= truth


def test_uninstall_removes_exactly_ours_and_keeps_imported_and_foreign(installed: World):
    truth, removed = installed.truth(), ours(installed)
    dave, admins = installed.user_id("dave"), installed.group_id("admins")
    uninstall("--yes", "-o", "json")
    assert installed.truth() == truth - removed
    directory = installed.runtime.directory
    assert {u.user_name for u in directory.list_users()} == {"carol", "erin"}
    assert {g.display_name for g in directory.list_groups()} == {"Legacy Ops"}
    assert directory.get_user(user_id=dave) is None
    with installed.runtime.sessions() as session:
        assert read_state(session, "uninstalled")["removed"] == {
            "assignments": 3, "groups": 1, "users": 1}
        assert session.get(tables.AccessList, "admins").group_id is None
    revoked = {(g.principal_name, g.account_id, g.permission_set_arn)
               for g in installed.grants(state="REVOKED")}
    assert revoked == {("dave", PROD, installed.arn("ReadOnlyAccess")),
                       ("admins", STAGING, installed.arn("AdministratorAccess")),
                       ("legacy-ops", PROD, installed.arn("ReadOnlyAccess"))}
    assert admins not in {g.id for g in directory.list_groups()}
    assert json.loads(uninstall("--dry-run", "-o", "json")) == []


def test_a_grant_in_a_vanished_account_is_named_and_everything_else_is_removed(
        installed: World):
    installed.sandbox.client("organizations").remove_account_from_organization(
        AccountId=STAGING)
    importer.refresh(runtime=installed.runtime)
    result = CliRunner().invoke(app, ["uninstall", "--yes", "-o", "json"])
    assert result.exit_code == 3  # partly applied, (result.output, result.exception)
    report = json.loads(result.stdout)  # one JSON document, nothing else on stdout
    [blocked] = report["blocked"]
    assert (blocked["principal"], blocked["account"], blocked["permission_set"]) == (
        "GROUP:admins", f"{STAGING} (Staging)", "AdministratorAccess")
    assert "no longer exists in the Organization" in blocked["why"]
    assert blocked["grant_id"] in {g.id for g in installed.grants(principal_name="admins")}
    assert report["removed"] == {"assignments": 2, "groups": 1, "users": 1}
    directory = installed.runtime.directory
    assert {u.user_name for u in directory.list_users()} == {"carol", "erin"}
    assert {g.display_name for g in directory.list_groups()} == {"Legacy Ops"}

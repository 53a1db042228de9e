"""Enrolment import and scheduled refresh against the sandbox, on PostgreSQL and SQLite."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from models.domain import PrincipalType
from models.errors import AwsNotFound, InputError
from models.ledger import tables
from models.ledger.enums import GrantState, Origin, SourceKind
from models.ledger.locks import IMPORT_LOCK, named_lock
from tasks.importing import importer
from tests.integration.import_support import audit_actions, ledger_dump, sandbox_settings
from tests.integration.import_support import rows as table_rows
from workers.runtime import Runtime
from workers.sandbox import Sandbox

pytest_plugins = ["tests.integration.import_fixtures"]

ADMIN_ROLES = ["AdministratorAccess-on-Production-111111111111",
               "AdministratorAccess-on-Sandbox-333333333333",
               "AdministratorAccess-on-Staging-222222222222"]


def enrol(runtime: Runtime, owners: tuple[str, ...] = ("alice",)) -> importer.ImportSummary:
    return importer.run_import(runtime=runtime, default_owners=list(owners), actor="tester")


def rows(runtime: Runtime, table: type) -> list:
    return table_rows(runtime.sessions, table)


def test_enrolment_imports_lists_members_roles_users_and_grants(runtime: Runtime) -> None:
    summary = enrol(runtime)
    assert summary.enrolled_now and summary.found == {
        "accounts": 4, "permission_sets": 4, "users": 6, "groups": 3, "assignments": 8}
    lists = {row.name: row for row in rows(runtime, tables.AccessList)}
    assert set(lists) == {"platform-admins", "developers", "finance"}
    admins = lists["platform-admins"]
    assert (admins.title, admins.owners, admins.granted_roles, admins.origin) == (
        "Platform Admins", ["alice"], ADMIN_ROLES, Origin.IMPORTED)
    members = sorted((m.list_name, m.member_name) for m in rows(runtime, tables.Membership))
    assert members == [("developers", "carol"), ("developers", "dave"),
                       ("developers", "erin"), ("finance", "frank"),
                       ("platform-admins", "alice"), ("platform-admins", "bob")]
    roles = {row.name: row for row in rows(runtime, tables.Role)}
    assert len(roles) == 7 and all(r.origin is Origin.SYSTEM for r in roles.values())
    users = {row.name: row for row in rows(runtime, tables.User)}
    assert set(users) == {"alice", "bob", "carol", "dave", "erin", "frank"}
    assert all(u.principal_id and u.origin is Origin.IMPORTED for u in users.values())


def test_imported_grants_are_active_and_match_aws_exactly(runtime: Runtime,
                                                          sandbox: Sandbox) -> None:
    before = sandbox.assignments()
    enrol(runtime)
    grants = rows(runtime, tables.Grant)
    assert all(g.state is GrantState.ACTIVE and g.activated_at for g in grants)
    assert {(str(g.principal_type), g.principal_id, g.account_id, g.permission_set_arn)
            for g in grants} == before
    finance = next(g for g in grants if g.principal_name == "finance")
    assert (finance.principal_type, finance.source_kind, finance.source_id) == (
        PrincipalType.GROUP, SourceKind.ACCESS_LIST, "finance")
    frank = next(g for g in grants if g.principal_type is PrincipalType.USER)
    assert (frank.principal_name, frank.source_kind, frank.source_id) == (
        "frank", SourceKind.IMPORTED, "enrolment")
    assert sandbox.assignments() == before
    assert not [c for c in sandbox.calls() if "Create" in c or "Delete" in c]


@pytest.mark.parametrize("ledger_url", ["postgres"], indirect=True)
def test_the_first_sync_after_enrolment_changes_nothing(runtime: Runtime,
                                                        sandbox: Sandbox) -> None:
    from tasks.sync.engine import full_sync

    enrol(runtime)
    before, calls = ledger_dump(runtime.sessions), sandbox.calls()
    report = full_sync(runtime=runtime)
    assert report.changes == [] and report.errors == []
    assert report.counts["grants_inserted"] == report.counts["grants_revoked"] == 0
    writes = [api for api, n in sandbox.calls().items()
              if n != calls.get(api, 0) and not api.split(":")[1].startswith(("List", "Get"))]
    assert writes == []  # no assignment, user, group or membership was touched in AWS
    assert ledger_dump(runtime.sessions)["grants"] == before["grants"]


def test_a_second_import_changes_nothing(runtime: Runtime) -> None:
    enrol(runtime)
    first, trail = ledger_dump(runtime.sessions), audit_actions(runtime.sessions)
    summary = enrol(runtime)
    assert ledger_dump(runtime.sessions) == first
    assert audit_actions(runtime.sessions) == [*trail, "import.run"]
    assert not summary.enrolled_now and summary.new_grants == 0
    assert all(names == [] for names in summary.new.values())
    refreshed = importer.refresh(runtime=runtime)
    assert ledger_dump(runtime.sessions) == first and refreshed.new_grants == 0


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_enrolment_is_audited(runtime: Runtime) -> None:
    enrol(runtime)
    actions = audit_actions(runtime.sessions)
    assert actions.count("access_list.imported") == 3 and actions.count("grant.imported") == 8
    assert actions[-2:] == ["import.enrolled", "import.run"]


def test_the_first_import_needs_owners_and_they_must_exist(runtime: Runtime) -> None:
    with pytest.raises(InputError, match="needs default owners"):
        importer.run_import(runtime=runtime, default_owners=[], actor="tester")
    with pytest.raises(InputError, match="mallory"):
        enrol(runtime, owners=("alice", "mallory"))
    assert rows(runtime, tables.Account) == [] and rows(runtime, tables.AccessList) == []


@pytest.mark.parametrize("ledger_url", ["postgres"], indirect=True)
def test_refresh_makes_new_accounts_and_permission_sets_known(runtime: Runtime,
                                                              sandbox: Sandbox) -> None:
    enrol(runtime)
    sandbox.seed({"accounts": [{"id": "444444444444", "name": "Analytics", "ou": "/Data"}],
                  "permission_sets": [{"name": "DataScientist"}]})
    summary = importer.refresh(runtime=runtime)
    assert summary.new["accounts"] == ["444444444444 (Analytics)"]
    assert summary.new["permission_sets"] == ["DataScientist"]
    accounts = {a.id: a for a in rows(runtime, tables.Account)}
    assert (accounts["444444444444"].present, accounts["444444444444"].ou_path) == (
        True, "/Root/Data")
    assert "DataScientist" in {p.name for p in rows(runtime, tables.PermissionSet) if p.present}


@pytest.mark.parametrize("ledger_url", ["postgres"], indirect=True)
def test_a_vanished_account_turns_its_grants_failed(runtime: Runtime, sandbox: Sandbox) -> None:
    enrol(runtime)
    sandbox.client("organizations").remove_account_from_organization(AccountId="333333333333")
    summary = importer.refresh(runtime=runtime)
    assert summary.vanished["accounts"] == ["333333333333"] and summary.failed_grants == 2
    account = next(a for a in rows(runtime, tables.Account) if a.id == "333333333333")
    assert account.present is False
    failed = [g for g in rows(runtime, tables.Grant) if g.account_id == "333333333333"]
    assert {(g.state, g.failed_from) for g in failed} == {(GrantState.FAILED, GrantState.ACTIVE)}
    assert {g.failure_reason for g in failed} == {
        "account 333333333333 (Sandbox) no longer exists in the Organization"}
    assert "account.vanished" in audit_actions(runtime.sessions)
    assert importer.refresh(runtime=runtime).failed_grants == 0  # once, not every run


@pytest.mark.parametrize("ledger_url", ["postgres"], indirect=True)
def test_a_renamed_account_renames_its_system_roles_and_the_lists_granting_them(
        runtime: Runtime, sandbox: Sandbox) -> None:
    enrol(runtime)
    sandbox.world.organizations.get_account_by_id("333333333333").name = "Playground"
    summary = importer.refresh(runtime=runtime)
    assert summary.renamed_roles == {
        "AdministratorAccess-on-Sandbox-333333333333":
            "AdministratorAccess-on-Playground-333333333333",
        "PowerUserAccess-on-Sandbox-333333333333": "PowerUserAccess-on-Playground-333333333333"}
    admins = next(a for a in rows(runtime, tables.AccessList) if a.name == "platform-admins")
    assert "AdministratorAccess-on-Playground-333333333333" in admins.granted_roles
    names = {r.name for r in rows(runtime, tables.Role)}
    assert "AdministratorAccess-on-Sandbox-333333333333" not in names
    grants = [g for g in rows(runtime, tables.Grant) if g.account_id == "333333333333"]
    assert grants and all(g.state is GrantState.ACTIVE for g in grants)  # keyed by id + ARN


@pytest.mark.parametrize("ledger_url", ["postgres"], indirect=True)
def test_a_group_created_behind_our_back_is_reported_not_adopted(runtime: Runtime,
                                                                 sandbox: Sandbox) -> None:
    enrol(runtime)
    store = sandbox.client("identitystore")
    group_id = store.create_group(IdentityStoreId=sandbox.identity_store_id,
                                  DisplayName="Shadow Admins")["GroupId"]
    summary = importer.refresh(runtime=runtime)
    assert summary.drift_groups == [{"group_id": group_id, "display_name": "Shadow Admins"}]
    assert "shadow-admins" not in {a.name for a in rows(runtime, tables.AccessList)}
    importer.refresh(runtime=runtime)
    assert audit_actions(runtime.sessions).count("import.drift") == 1  # reported once
    adopted = importer.run_import(runtime=runtime, default_owners=[], actor="tester",
                                  adopt_new_groups=True)
    assert adopted.new["access_lists"] == ["shadow-admins"]
    shadow = next(a for a in rows(runtime, tables.AccessList) if a.name == "shadow-admins")
    assert (shadow.group_id, shadow.owners) == (group_id, ["alice"])
    assert importer.refresh(runtime=runtime).drift_groups == []


@pytest.mark.parametrize("ledger_url", ["postgres"], indirect=True)
def test_an_aws_failure_midway_imports_nothing(runtime: Runtime, sandbox: Sandbox) -> None:
    enrol(runtime)
    sandbox.seed({"accounts": [{"id": "444444444444", "name": "Analytics"}]})
    before = ledger_dump(runtime.sessions)
    broken = Runtime(runtime.settings.model_copy(
        update={"instance_arn": "arn:aws:sso:::instance/ssoins-0000000000000000"}))
    try:
        with pytest.raises(AwsNotFound, match="ListPermissionSets"):
            importer.refresh(runtime=broken)  # after the Organizations calls succeeded
    finally:
        broken.close()
    assert ledger_dump(runtime.sessions) == before


@pytest.mark.parametrize("ledger_url", ["postgres", "sqlite"], indirect=True)
def test_refresh_skips_while_another_import_runs(runtime: Runtime) -> None:
    with named_lock(runtime.engine, IMPORT_LOCK) as held:
        assert held
        summary = importer.refresh(runtime=runtime)
    assert summary.not_run == "another import is running"
    assert rows(runtime, tables.Account) == []
    assert importer.refresh(runtime=runtime).not_run is None


def test_refresh_before_enrolment_only_learns_the_catalog(sandbox: Sandbox,
                                                         sqlite_ledger: str) -> None:
    runtime = Runtime(sandbox_settings(sandbox, sqlite_ledger))
    try:
        summary = importer.refresh(runtime=runtime)
        assert not summary.enrolled and len(rows(runtime, tables.Account)) == 4
        assert rows(runtime, tables.AccessList) == rows(runtime, tables.User) == []
    finally:
        runtime.close()


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_preview_writes_nothing_and_proposes_list_names(runtime: Runtime) -> None:
    shown = importer.preview(runtime=runtime)
    assert {g["display_name"]: (g["access_list"], g["members"], g["assignments"], g["status"])
            for g in shown.groups} == {
        "Developers": ("developers", 3, 3, "import"), "Finance": ("finance", 1, 1, "import"),
        "Platform Admins": ("platform-admins", 2, 3, "import")}
    assert len(shown.accounts) == 4 and len(shown.users) == 6
    assert rows(runtime, tables.Account) == []


@pytest.mark.parametrize("ledger_url", ["postgres"], indirect=True)
def test_refresh_restores_an_edited_system_role_to_what_identity_center_has(
        runtime: Runtime) -> None:
    enrol(runtime)
    name = "AdministratorAccess-on-Sandbox-333333333333"
    with runtime.sessions.begin() as session:
        role = session.get(tables.Role, name)
        imported, imported_hash = dict(role.spec), role.spec_hash
        role.spec, role.spec_hash = {"allow": [{"account": "*", "permission_set": "*"}]}, "x"
    importer.refresh(runtime=runtime)
    with runtime.sessions() as session:
        role = session.get(tables.Role, name)
        assert (role.spec, role.spec_hash) == (imported, imported_hash)
        restored = session.scalars(select(tables.AuditEvent).where(
            tables.AuditEvent.action == "role.restored")).all()
    assert [event.target for event in restored] == [name]
    assert restored[0].before == {"allow": [{"account": "*", "permission_set": "*"}]}

"""Full and targeted syncs against real PostgreSQL and an in-process Sandbox.

Policy rows are written straight into the ledger; each test then runs the sync engine's
plain functions (and their follow-up work) and reads AWS back through boto3.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from models.ledger import tables
from models.ledger.kv import read_state
from tasks.sync.engine import full_sync, reprovision_user
from tests.integration.sync_support import World

pytest_plugins = ["tests.integration.sync_fixtures"]


def build_policy(world: World) -> None:
    world.add_role("prod-admin", allow=[("Production", "AdministratorAccess")])
    world.add_role("stage-power", allow=[("Staging", "PowerUserAccess")])
    world.add_role("read-all", allow=[("*", "ReadOnlyAccess")], deny=[("Staging", "*")])
    world.add_user("alice", roles=["read-all"])
    world.add_user("bob")
    world.add_user("carol")
    world.add_list("oncall", users=["carol"])
    world.add_list("admins", roles=["prod-admin", "stage-power"], users=["bob"],
                   lists=["oncall"])


def test_full_sync_makes_aws_equal_to_desired_state(sync_world: World):
    build_policy(sync_world)
    report = sync_world.sync()
    assert sync_world.aws_assignments() == {
        sync_world.key("user:alice", "Production", "ReadOnlyAccess"),
        sync_world.key("group:admins", "Production", "AdministratorAccess"),
        sync_world.key("group:admins", "Staging", "PowerUserAccess"),
    }
    assert sync_world.group_members("admins") == {"bob", "carol"}  # oncall is nested
    assert {g.state for g in sync_world.grants()} == {"ACTIVE"}
    assert {o.state for o in sync_world.operations()} == {"SUCCEEDED"}
    assert (report.counts["created"], report.counts["users_created"],
            report.counts["groups_created"]) == (3, 3, 1)
    with sync_world.runtime.sessions() as session:
        last = read_state(session, "last_full_sync")
        audited = session.scalars(select(tables.AuditEvent.details).where(
            tables.AuditEvent.action == "sync.full")).all()
    assert last["counts"]["created"] == 3 and audited[-1]["counts"]["created"] == 3


def test_second_sync_changes_nothing(sync_world: World):
    build_policy(sync_world)
    sync_world.sync()
    calls = sync_world.sandbox.calls()
    again = sync_world.sync()
    assert again.changes == []
    after = sync_world.sandbox.calls()
    assert after.get("sso-admin:CreateAccountAssignment") == \
        calls.get("sso-admin:CreateAccountAssignment")


def test_adding_a_member_adds_the_group_membership(sync_world: World):
    build_policy(sync_world)
    sync_world.sync()
    sync_world.add_user("dave")
    sync_world.add_member("admins", "dave")
    report = sync_world.sync(lists=["admins"])
    assert sync_world.group_members("admins") == {"bob", "carol", "dave"}
    assert report.counts["members_added"] == 1 and report.changes == []


def test_nested_list_change_reaches_the_parent_group(sync_world: World):
    build_policy(sync_world)
    sync_world.sync()
    sync_world.add_user("erin")
    sync_world.add_member("oncall", "erin")
    sync_world.remove_member("oncall", "carol")
    sync_world.sync(lists=["oncall"])
    assert sync_world.group_members("admins") == {"bob", "erin"}


def test_removing_a_role_from_a_list_deletes_exactly_its_assignments(sync_world: World):
    build_policy(sync_world)
    sync_world.sync()
    before = sync_world.aws_assignments()
    sync_world.set_list_roles("admins", ["prod-admin"])
    report = sync_world.sync(lists=["admins"])
    gone = sync_world.key("group:admins", "Staging", "PowerUserAccess")
    assert sync_world.aws_assignments() == before - {gone}
    assert report.counts["deleted"] == 1
    revoked = sync_world.grants(state="REVOKED")
    assert [(g.principal_name, g.account_id) for g in revoked] == [("admins", "222222222222")]


def test_suspended_user_leaves_groups_and_loses_direct_grants(sync_world: World):
    build_policy(sync_world)
    sync_world.sync()
    with sync_world.runtime.sessions.begin() as session:
        session.get(tables.User, "bob").suspended = True
        session.get(tables.User, "alice").suspended = True
    sync_world.sync(users=["alice", "bob"])
    assert sync_world.group_members("admins") == {"carol"}
    assert sync_world.key("user:alice", "Production", "ReadOnlyAccess") \
        not in sync_world.aws_assignments()


def test_dry_run_plans_without_writing_anything(sync_world: World):
    build_policy(sync_world)
    report = full_sync(runtime=sync_world.runtime, dry_run=True)
    rows = report.plan_rows()
    assert {(r["change"], r["principal"], r["permission_set"]) for r in rows} == {
        ("scim_create_user", "USER:alice", None), ("scim_create_user", "USER:bob", None),
        ("scim_create_user", "USER:carol", None), ("scim_create_group", "GROUP:admins", None),
        ("member_add", "USER:bob", None), ("member_add", "USER:carol", None),
        ("create", "USER:alice", "ReadOnlyAccess"),
        ("create", "GROUP:admins", "AdministratorAccess"),
        ("create", "GROUP:admins", "PowerUserAccess")}
    assert report.counts["users_to_push"] == 3 and report.counts["groups_to_push"] == 1
    assert sync_world.grants() == [] and sync_world.operations() == []
    assert sync_world.aws_assignments() == set() and sync_world.user_id("alice") is None


@pytest.mark.parametrize("mode", ["report", "quarantine", "remove"])
def test_foreign_assignment_is_handled_by_drift_mode(sync_world: World, mode: str):
    build_policy(sync_world)
    stranger = ("USER", sync_world.sandbox.world.add_user(
        user_name="mallory", given_name="M", family_name="X", email="m@example.com",
        display_name="M X"), "222222222222", sync_world.arn("AdministratorAccess"))
    sync_world.sandbox.center.seed_assignment(stranger)
    with sync_world.reconfigured(drift_mode=mode) as world:
        report = world.sync()
        report_again = world.sync()
    with sync_world.runtime.sessions() as session:
        recorded = read_state(session, "drift.foreign", {}).get("assignments", [])
        audited = session.scalars(select(tables.AuditEvent.action).where(
            tables.AuditEvent.action.like("assignment.%"))).all()
    assert report.counts["foreign"] == 1
    if mode == "remove":
        assert stranger not in sync_world.aws_assignments()
        assert "assignment.foreign_removed" in audited and recorded == []
        assert report_again.counts["foreign"] == 0
    else:
        assert stranger in sync_world.aws_assignments()
        assert [(e["principal_id"], e["quarantined"]) for e in recorded] == [
            (stranger[1], mode == "quarantine")]
        assert report_again.counts["foreign_new"] == 0  # audited the first time only
        assert audited.count("assignment.quarantined" if mode == "quarantine"
                             else "assignment.foreign") == 1


def test_vanished_account_fails_its_grants_with_the_reason(sync_world: World):
    build_policy(sync_world)
    sync_world.sync()
    with sync_world.runtime.sessions.begin() as session:
        session.get(tables.Account, "222222222222").present = False
    sync_world.sync()
    failed = sync_world.grants(account_id="222222222222")
    assert [(g.state, g.failure_reason) for g in failed] == [
        ("FAILED", "account 222222222222 (Staging) no longer exists in the Organization")]
    assert sync_world.sync().changes == []  # not retried while the account is gone


def test_reprovision_recreates_a_user_deleted_out_of_band(sync_world: World):
    build_policy(sync_world)
    sync_world.sync()
    old_id = sync_world.user_id("alice")
    sync_world.runtime.directory.delete_user(user_id=old_id)
    report = reprovision_user(runtime=sync_world.runtime, user="alice")
    sync_world.drain(report.next_work())
    new_id = sync_world.user_id("alice")
    assert new_id != old_id
    assert sync_world.key("user:alice", "Production", "ReadOnlyAccess") \
        in sync_world.aws_assignments()
    assert {g.principal_id for g in sync_world.grants(principal_name="alice")} == {new_id}

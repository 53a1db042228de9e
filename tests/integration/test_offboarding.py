"""Emergency revocation and restore on PostgreSQL + an in-process Sandbox: the user keeps no
assignment and no group membership (read back through boto3), no sync gives anything back
until restore, restore does; requests are closed and everything is audited; the CLI in the
embedded mode; an unknown user changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from models.domain import RequestState
from models.errors import GrantledgerError, NotFound
from models.ledger import tables
from models.ledger.db import transaction
from tasks.access.offboarding import remove_unexplained_assignments, restore_user, revoke_user
from tasks.events import submit
from tasks.sync.applier import apply_changes
from tasks.sync.engine import fetch_actual, full_sync
from tasks.sync.planner import ChangeKind, plan
from tasks.sync.snapshot import Scope, load_plan_inputs
from tests.integration.sync_support import ACCOUNTS, World
from workers.celery.app import celery_app
from workers.cli.main import app, register_commands
from workers.runtime import set_runtime

pytest_plugins = ["tests.integration.sync_fixtures"]
register_commands()

PROD, STAGING = ACCOUNTS["Production"], ACCOUNTS["Staging"]


def policy(world: World) -> None:
    """alice: two direct roles and the admins list; bob: the same list and one role."""
    world.add_role("prod-read", allow=[("Production", "ReadOnlyAccess")])
    world.add_role("staging-admin", allow=[("Staging", "AdministratorAccess")])
    world.add_role("prod-admin", allow=[("Production", "AdministratorAccess")])
    world.add_user("alice", roles=["prod-read", "staging-admin"])
    world.add_user("bob", roles=["prod-read"])
    world.add_list("admins", roles=["prod-admin"], users=["alice", "bob"])
    world.sync()


def direct(world: World, user: str) -> set[tuple[str, str]]:
    """(account, permission set name) the user holds directly, listed through boto3."""
    names = {arn: name for name, arn in world.seeded.permission_sets.items()}
    pages = world.sandbox.client("sso-admin").get_paginator(
        "list_account_assignments_for_principal").paginate(
        InstanceArn=world.sandbox.instance_arn, PrincipalType="USER",
        PrincipalId=world.user_id(user))
    return {(row["AccountId"], names[row["PermissionSetArn"]]) for page in pages
            for row in page["AccountAssignments"]}


def groups_of(world: World, user: str) -> set[str]:
    """Group ids the user is a member of, listed through boto3 (identitystore)."""
    answer = world.sandbox.client("identitystore").list_group_memberships_for_member(
        IdentityStoreId=world.sandbox.identity_store_id,
        MemberId={"UserId": world.user_id(user)})
    return {m["GroupId"] for m in answer["GroupMemberships"]}


def revoke(world: World, user: str = "alice", reason: str = "left the company") -> object:
    """What `grantledger revoke` does, with the engine's follow-up work run here."""
    revocation = revoke_user(sessions=world.runtime.sessions, user=user, reason=reason,
                             actor="hr-bot")
    world.drain(revocation.next_work())
    world.drain([submit(i) for i in remove_unexplained_assignments(
        runtime=world.runtime, revocation=revocation, actor="hr-bot")])
    return revocation


def add_pending_request(world: World, user: str) -> str:
    with world.runtime.sessions.begin() as session:
        user_id = session.get(tables.User, user).id
        request = tables.AccessRequest(user_name=user, user_id=user_id,
                                       resources=[f"{PROD}/PowerUserAccess"],
                                       reason="please", duration_seconds=3600)
        session.add(request)
        session.flush()
        return request.id


def high_marks(world: World) -> tuple[int, int]:
    """The last audit event and notification ids so far."""
    with world.runtime.sessions() as session:
        return (session.scalar(select(func.max(tables.AuditEvent.id))) or 0,
                session.scalar(select(func.max(tables.NotificationOutbox.id))) or 0)


def test_revoke_removes_everything_and_no_sync_gives_it_back_until_restore(sync_world: World):
    policy(sync_world)
    request = sync_world.add_request("alice", resources=[f"{STAGING}/PowerUserAccess"])
    sync_world.sync(users=["alice"])
    admins = sync_world.group_id("admins")
    stray = ("USER", sync_world.user_id("alice"), STAGING, sync_world.arn("ReadOnlyAccess"))
    sync_world.sandbox.center.seed_assignment(stray)  # made outside grantledger
    assert direct(sync_world, "alice") == {(PROD, "ReadOnlyAccess"), (STAGING, "PowerUserAccess"),
                                           (STAGING, "AdministratorAccess"),
                                           (STAGING, "ReadOnlyAccess")}
    assert groups_of(sync_world, "alice") == {admins}
    bob_before = direct(sync_world, "bob")

    revoke(sync_world)
    assert direct(sync_world, "alice") == set() and groups_of(sync_world, "alice") == set()
    assert sync_world.group_members("admins") == {"bob"}
    assert direct(sync_world, "bob") == bob_before
    sync_world.sync()
    sync_world.sync(users=["alice"])
    assert direct(sync_world, "alice") == set() and groups_of(sync_world, "alice") == set()
    assert [g.state for g in sync_world.grants(principal_name="alice")] == ["REVOKED"] * 3

    restore_user(sessions=sync_world.runtime.sessions, user="alice", reason="rehired",
                 actor="hr-bot")
    sync_world.sync(users=["alice"])
    assert direct(sync_world, "alice") == {(PROD, "ReadOnlyAccess"),
                                           (STAGING, "AdministratorAccess")}
    assert groups_of(sync_world, "alice") == {admins}
    with sync_world.runtime.sessions() as session:
        assert session.get(tables.AccessRequest, request).state == RequestState.EXPIRED


def test_revoke_closes_requests_and_audits_with_a_notification(sync_world: World):
    policy(sync_world)
    approved = sync_world.add_request("alice", resources=[f"{STAGING}/PowerUserAccess"])
    pending = add_pending_request(sync_world, "alice")
    events, notified = high_marks(sync_world)  # the trail and the outbox outlive a reset
    revocation = revoke(sync_world, reason="incident INC-42")
    assert (revocation.denied_requests, revocation.ended_requests) == ((pending,), (approved,))
    assert revocation.groups == ("admins",)
    with sync_world.runtime.sessions() as session:
        states = {r.id: r.state for r in session.scalars(select(tables.AccessRequest))}
        [event] = session.scalars(select(tables.AuditEvent).where(
            tables.AuditEvent.id > events, tables.AuditEvent.action == "user.revoked")).all()
        notices = session.scalars(select(tables.NotificationOutbox.event).where(
            tables.NotificationOutbox.id > notified)).all()
        user = session.get(tables.User, "alice")
    assert states == {pending: RequestState.DENIED, approved: RequestState.EXPIRED}
    assert (event.actor, event.target, event.reason) == ("hr-bot", "alice", "incident INC-42")
    assert event.details["resources"] == [f"{PROD}/ReadOnlyAccess",
                                          f"{STAGING}/AdministratorAccess"]
    assert notices.count("user.revoked") == 1 and notices.count("request.denied") == 1
    assert (user.suspended, user.suspended_reason) == (True, "incident INC-42")


def test_unknown_user_changes_nothing(sync_world: World):
    policy(sync_world)
    before = high_marks(sync_world)
    with pytest.raises(NotFound, match="user 'nobody' not found"):
        revoke_user(sessions=sync_world.runtime.sessions, user="nobody", reason="x",
                    actor="hr-bot")
    assert high_marks(sync_world) == before
    assert {g.state for g in sync_world.grants()} == {"ACTIVE"}


# --- the CLI, embedded (in-process worker) on the same PostgreSQL ledger ------------------------


@pytest.fixture
def cli_world(sync_world: World) -> Iterator[World]:
    celery_app.control.purge()
    policy(sync_world)
    previous = set_runtime(sync_world.runtime)
    yield sync_world
    set_runtime(previous)


def run(*args: str, code: int = 0) -> str:
    """The command's output; a GrantledgerError is mapped to its exit code as main() does."""
    result = CliRunner().invoke(app, list(args))
    error = result.exception if isinstance(result.exception, GrantledgerError) else None
    exit_code = error.exit_code if error else result.exit_code
    assert exit_code == code, (result.output, result.exception)
    return result.output + (error.render() if error else "")


def test_cli_revoke_deactivate_then_restore(cli_world: World):
    summary = json.loads(run("revoke", "--user", "alice", "--reason", "left", "--deactivate",
                             "--wait", "-o", "json"))
    assert summary["finished"] is True and summary["problems"] == []
    assert sorted((r["account"], r["permission_set"], r["state"]) for r in summary["removed"]) \
        == [(f"{PROD} (Production)", "ReadOnlyAccess", "REVOKED"),
            (f"{STAGING} (Staging)", "AdministratorAccess", "REVOKED")]
    assert summary["members_removed"] == 1
    assert direct(cli_world, "alice") == set() and groups_of(cli_world, "alice") == set()
    directory = cli_world.runtime.directory
    assert directory.get_user(user_id=cli_world.user_id("alice")).active is False

    restored = json.loads(run("restore", "--user", "alice", "--reason", "back", "-o", "json"))
    assert restored["unsuspended"] and restored["sign_in_enabled"] and restored["finished"]
    assert directory.get_user(user_id=cli_world.user_id("alice")).active is True
    assert direct(cli_world, "alice") == {(PROD, "ReadOnlyAccess"),
                                          (STAGING, "AdministratorAccess")}
    assert groups_of(cli_world, "alice") == {cli_world.group_id("admins")}


def test_cli_unknown_user_exits_2_and_restore_of_an_active_user_too(cli_world: World):
    assert "user 'nobody' not found" in run("revoke", "--user", "nobody", "--reason", "x",
                                            code=2)
    assert "not suspended" in run("restore", "--user", "alice", "--reason", "x", code=2)
    assert all(g.state == "ACTIVE" for g in cli_world.grants())
    assert cli_world.operations()[-1].kind == "create_assignment"  # no delete was recorded


def test_a_sync_planned_before_the_revoke_does_not_create_the_assignment_again(
        sync_world: World):
    """A sync reads its grants, then lists AWS while the revoke commits and its deletes land:
    the assignment is missing and its (stale) grant ACTIVE, which plans a re-create."""
    sync_world.add_role("prod-read", allow=[("Production", "ReadOnlyAccess")])
    sync_world.add_user("alice", roles=["prod-read"])
    sync_world.sync()
    scope = Scope.of(users=["alice"])
    with sync_world.runtime.sessions() as session:
        inputs = load_plan_inputs(session, scope=scope)  # before the revoke
    revoke(sync_world)
    actual = fetch_actual(sync_world.runtime.identity_center, scope=scope, inputs=inputs)
    changes = plan(grants=inputs.grants, actual=actual, principal_ids=inputs.principal_ids,
                   in_flight=inputs.in_flight, history=inputs.history, now=inputs.now)
    assert [c.kind for c in changes] == [ChangeKind.CREATE]  # what the stale plan says
    with transaction(sync_world.runtime.sessions) as session:
        applied = apply_changes(session, changes, actor="system:sync")
    assert applied.submit == [] and direct(sync_world, "alice") == set()
    assert [o.kind for o in sync_world.operations()][-1] == "delete_assignment"


def test_a_create_still_queued_when_the_revoke_commits_is_never_sent(sync_world: World):
    sync_world.add_role("prod-read", allow=[("Production", "ReadOnlyAccess")])
    sync_world.add_user("alice", roles=["prod-read"])
    report = full_sync(runtime=sync_world.runtime)  # the create is recorded, not sent yet
    revoke(sync_world)  # its delete finds nothing to delete: done
    sync_world.drain(report.next_work())  # now the create's submit arrives
    assert direct(sync_world, "alice") == set()
    create = next(o for o in sync_world.operations() if o.kind == "create_assignment")
    assert create.state == "FAILED" and "no live grant" in create.failure_reason
    assert sync_world.sandbox.calls().get("sso-admin:CreateAccountAssignment", 0) == 0

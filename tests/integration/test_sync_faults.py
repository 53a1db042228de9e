"""The sync engine when things go wrong, and on time: AWS failures, a crash between the AWS
call and the ledger write, deletes of what is already gone, stuck revocations, lost work,
expiry with reference counting. Real PostgreSQL and an in-process Sandbox."""

from __future__ import annotations

import time

from sqlalchemy import select

from models.ledger import tables
from tasks import events, expiry
from tasks.polling import submit_operation, sweep_operations
from tasks.sync import FULL_SYNC_LOCK, full_sync, single_flight
from tests.integration.sync_support import ACCOUNTS, World

pytest_plugins = ["tests.integration.sync_fixtures"]

PROD, STAGING = ACCOUNTS["Production"], ACCOUNTS["Staging"]
AWS_REASON = "An unexpected internal service exception was encountered"


def reader(world: World) -> None:
    world.add_role("prod-read", allow=[("Production", "ReadOnlyAccess")])
    world.add_user("alice", roles=["prod-read"])


def actions(world: World, prefix: str) -> list[str]:
    with world.runtime.sessions() as session:
        return list(session.scalars(select(tables.AuditEvent.action).where(
            tables.AuditEvent.action.like(prefix + "%")).order_by(tables.AuditEvent.id)))


def wait_until(condition, *, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_failed_create_shows_aws_reason_and_the_next_sync_retries_it(sync_world: World):
    reader(sync_world)
    sync_world.sandbox.faults.fail_next(1, reason=AWS_REASON)
    sync_world.sync()
    [grant] = sync_world.grants()
    [operation] = sync_world.operations()
    assert (grant.state, grant.failure_reason) == ("FAILED", AWS_REASON)
    assert (operation.state, operation.failure_reason) == ("FAILED", AWS_REASON)
    sync_world.sync()
    [grant] = sync_world.grants()
    assert grant.state == "ACTIVE" and grant.attempts == 2
    assert [o.state for o in sync_world.operations()] == ["FAILED", "SUCCEEDED"]
    assert sync_world.key("user:alice", "Production", "ReadOnlyAccess") \
        in sync_world.aws_assignments()


def test_crash_between_aws_call_and_saving_its_request_id_is_healed(sync_world: World):
    reader(sync_world)
    report = full_sync(runtime=sync_world.runtime)  # recorded, never submitted: the "crash"
    [operation] = sync_world.operations()
    assert operation.state == "QUEUED" and sync_world.grants()[0].state == "PROVISIONING"
    key = sync_world.key("user:alice", "Production", "ReadOnlyAccess")
    sync_world.sandbox.client("sso-admin").create_account_assignment(
        InstanceArn=sync_world.sandbox.instance_arn, TargetId=PROD, TargetType="AWS_ACCOUNT",
        PermissionSetArn=key.permission_set_arn, PrincipalType="USER",
        PrincipalId=key.principal_id)  # the call that landed before the crash
    wait_until(lambda: key in sync_world.aws_assignments())
    sync_world.sync()
    assert [g.state for g in sync_world.grants()] == ["ACTIVE"]
    # the lost submit, redelivered (or resubmitted by the sweep), creates nothing twice
    sync_world.drain(report.next_work() * 2)
    assert [o.state for o in sync_world.operations()] == ["SUCCEEDED"]
    assert sync_world.sandbox.calls()["sso-admin:CreateAccountAssignment"] == 1


def test_delete_of_an_assignment_already_gone_counts_as_done(sync_world: World):
    sync_world.add_user("alice")
    sync_world.add_request("alice", resources=[f"{PROD}/ReadOnlyAccess"])
    sync_world.sync()
    key = sync_world.key("user:alice", "Production", "ReadOnlyAccess")
    sync_world.sandbox.client("sso-admin").delete_account_assignment(
        InstanceArn=sync_world.sandbox.instance_arn, TargetId=PROD, TargetType="AWS_ACCOUNT",
        PermissionSetArn=key.permission_set_arn, PrincipalType="USER",
        PrincipalId=key.principal_id)
    wait_until(lambda: key not in sync_world.aws_assignments())
    sync_world.expire_now(tables.Grant)
    report = expiry.sweep(runtime=sync_world.runtime)
    sync_world.drain(report.next_work())
    assert [g.state for g in sync_world.grants()] == ["REVOKED"]
    delete = sync_world.operations()[-1]
    assert (delete.kind, delete.state) == ("delete_assignment", "SUCCEEDED")
    assert sync_world.sandbox.calls()["sso-admin:DeleteAccountAssignment"] == 2
    assert actions(sync_world, "grant.revoked") == ["grant.revoked"]


def test_expiry_revokes_on_time_and_keeps_what_another_grant_backs(sync_world: World):
    reader(sync_world)
    request = sync_world.add_request("alice", resources=[f"{PROD}/ReadOnlyAccess",
                                                         f"{STAGING}/ReadOnlyAccess"])
    sync_world.sync()
    prod = sync_world.key("user:alice", "Production", "ReadOnlyAccess")
    staging = sync_world.key("user:alice", "Staging", "ReadOnlyAccess")
    assert {prod, staging} <= sync_world.aws_assignments()
    sync_world.expire_now(tables.AccessRequest)
    sync_world.expire_now(tables.Grant, tables.Grant.source_kind == "request")
    report = expiry.sweep(runtime=sync_world.runtime)
    sync_world.drain(report.next_work())
    assert report.counts["grants_expired"] == 2 and report.counts["requests_expired"] == 1
    assert (report.counts["retired"], report.counts["deleted"]) == (1, 1)
    assert prod in sync_world.aws_assignments() and staging not in sync_world.aws_assignments()
    with sync_world.runtime.sessions() as session:
        assert session.get(tables.AccessRequest, request).state == "EXPIRED"
    assert expiry.sweep(runtime=sync_world.runtime).counts["grants_expired"] == 0


def test_expired_membership_leaves_the_group(sync_world: World):
    sync_world.add_role("prod-admin", allow=[("Production", "AdministratorAccess")])
    sync_world.add_user("bob")
    sync_world.add_user("carol")
    sync_world.add_list("admins", roles=["prod-admin"], users=["bob", "carol"])
    sync_world.sync()
    sync_world.expire_now(tables.Membership, tables.Membership.member_name == "bob")
    report = expiry.sweep(runtime=sync_world.runtime)
    assert report.lists == {"admins"}
    sync_world.drain(report.next_work())
    assert sync_world.group_members("admins") == {"carol"}
    assert actions(sync_world, "membership.") == ["membership.expired"]


def test_failing_revocation_backs_off_is_marked_stuck_and_finally_succeeds(sync_world: World):
    reader(sync_world)
    with sync_world.reconfigured(revoke_stuck_after_attempts=2) as world:
        world.sync()
        world.sandbox.faults.fail_next(2, reason=AWS_REASON)
        with world.runtime.sessions.begin() as session:
            session.get(tables.User, "alice").roles = []
        world.sync(users=["alice"])
        [grant] = world.grants()
        assert (grant.state, grant.failed_from, grant.attempts, grant.stuck) == (
            "FAILED", "REVOKING", 1, False)
        assert expiry.sweep(runtime=world.runtime).submit == []  # within its backoff
        for expected_stuck in (True, False):
            world.age(tables.Grant, "updated_at", 3600)
            world.drain(expiry.sweep(runtime=world.runtime).next_work())
            [grant] = world.grants()
            assert grant.stuck is expected_stuck
        assert grant.state == "REVOKED" and grant.attempts == 3
    assert actions(sync_world, "grant.stuck") == ["grant.stuck"]
    assert sync_world.key("user:alice", "Production", "ReadOnlyAccess") \
        not in sync_world.aws_assignments()


def test_an_operation_aws_never_settles_is_given_up_then_healed(sync_world: World):
    reader(sync_world)
    sync_world.sandbox.faults.stalled = True
    with sync_world.reconfigured(poll_give_up_after=0.3) as world:
        world.sync()
    [operation] = sync_world.operations()
    [grant] = sync_world.grants()
    assert operation.state == "FAILED" and "no result from AWS" in operation.failure_reason
    assert grant.state == "FAILED"
    sync_world.sandbox.faults.stalled = False
    key = sync_world.key("user:alice", "Production", "ReadOnlyAccess")
    wait_until(lambda: key in sync_world.aws_assignments())
    report = sync_world.sync()
    assert [g.state for g in sync_world.grants()] == ["ACTIVE"] and report.submit == []


def test_sweep_resubmits_lost_submits_and_overdue_polls_once(sync_world: World):
    reader(sync_world)
    full_sync(runtime=sync_world.runtime)  # the submit message is "lost"
    assert sweep_operations(runtime=sync_world.runtime) == []  # too young to be lost
    sync_world.age(tables.Operation, "created_at", 60)
    [operation] = sync_world.operations()
    assert sweep_operations(runtime=sync_world.runtime) == [events.submit(operation.id)]
    assert sweep_operations(runtime=sync_world.runtime) == []  # not again at once
    next_work = submit_operation(runtime=sync_world.runtime, operation_id=operation.id)
    assert [w.task for w in next_work] == [events.POLL_OPERATION]  # this poll is "lost" too
    sync_world.age(tables.Operation, "next_poll_at", 60)
    resumed = sweep_operations(runtime=sync_world.runtime)
    assert [w.task for w in resumed] == [events.POLL_OPERATION]
    sync_world.drain(resumed)
    assert [o.state for o in sync_world.operations()] == ["SUCCEEDED"]


def test_creates_beyond_the_outstanding_cap_wait_and_are_handed_freed_slots(sync_world: World):
    sync_world.add_role("prod-read", allow=[("Production", "ReadOnlyAccess")])
    for name in ("alice", "bob", "carol", "dave"):
        sync_world.add_user(name, roles=["prod-read"])
    with sync_world.reconfigured(max_outstanding_creates=1) as world:
        report = full_sync(runtime=world.runtime)
        first = [world.run(item) for item in report.next_work()]
        assert sum(len(work) for work in first) == 1  # one poll; three wait without a retry
        ran = world.drain([item for work in first for item in work])
    assert [o.state for o in sync_world.operations()] == ["SUCCEEDED"] * 4
    assert len(sync_world.aws_assignments()) == 4
    assert ran < 40  # each settle wakes the next waiter: no spinning on a full cap


def test_a_poll_delivered_ten_times_polls_once(sync_world: World):
    reader(sync_world)
    sync_world.sandbox.faults.stalled = True  # stays IN_PROGRESS: every poll would go on
    [submitted] = full_sync(runtime=sync_world.runtime).next_work()
    [first_poll] = sync_world.run(submitted)
    follow_ups = [sync_world.run(first_poll) for _ in range(10)]
    assert [len(work) for work in follow_ups] == [1] + [0] * 9
    assert [o.poll_count for o in sync_world.operations()] == [1]
    sync_world.sandbox.faults.stalled = False
    sync_world.drain(follow_ups[0])
    assert [o.state for o in sync_world.operations()] == ["SUCCEEDED"]


def test_full_sync_is_single_flight(sync_world: World):
    with single_flight(sync_world.runtime, FULL_SYNC_LOCK) as held:
        assert held
        assert full_sync(runtime=sync_world.runtime).skipped
    assert not full_sync(runtime=sync_world.runtime).skipped

"""The sync engine when things go wrong, and on time: AWS failures, a crash between the AWS
call and the ledger write, deletes of what is already gone, stuck revocations, lost work,
expiry with reference counting. Real PostgreSQL and an in-process Sandbox."""

from __future__ import annotations

import time
from functools import partial

import pytest
from limits.storage import MemoryStorage
from sqlalchemy import select

from models.errors import AwsAccessDenied
from models.ledger import tables
from models.ledger.locks import FULL_SYNC_LOCK
from tasks import events
from tasks.provisioning import expiry
from tasks.provisioning.poll_round import round_interval
from tasks.provisioning.polling import submit_operation, sweep_operations
from tasks.sync.engine import full_sync, single_flight
from tests import waiting
from tests.integration.sync_support import ACCOUNTS, World
from workers.limiter import Limiter, MemoryCreateSlots

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


def listings(world: World) -> int:
    return world.sandbox.calls().get("sso-admin:ListAccountAssignmentCreationStatus", 0)


wait_until = partial(waiting.eventually, what="the sandbox settled", timeout=5.0, every=0.01)


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


@pytest.mark.parametrize("polling", ["list", "describe"])
def test_sweep_resubmits_lost_submits_and_overdue_polls_once(sync_world: World, polling: str):
    reader(sync_world)
    with sync_world.reconfigured(status_polling=polling) as world:
        full_sync(runtime=world.runtime)  # the submit message is "lost"
        assert sweep_operations(runtime=world.runtime) == []  # too young to be lost
        world.age(tables.Operation, "created_at", 60)
        [operation] = world.operations()
        assert sweep_operations(runtime=world.runtime) == [events.submit(operation.id)]
        assert sweep_operations(runtime=world.runtime) == []  # not again at once
        next_work = submit_operation(runtime=world.runtime, operation_id=operation.id)
        poll_task = events.POLL_ROUND if polling == "list" else events.POLL_OPERATION
        assert [w.task for w in next_work] == [poll_task]  # this poll is "lost" too
        world.age(tables.Operation, "next_poll_at", 60)
        resumed = sweep_operations(runtime=world.runtime)
        assert [w.task for w in resumed] == [poll_task]
        world.drain(resumed)
        assert [o.state for o in world.operations()] == ["SUCCEEDED"]


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
    with sync_world.reconfigured(status_polling="describe") as world:
        [submitted] = full_sync(runtime=world.runtime).next_work()
        [first_poll] = world.run(submitted)
        follow_ups = [world.run(first_poll) for _ in range(10)]
        assert [len(work) for work in follow_ups] == [1] + [0] * 9
        assert [o.poll_count for o in world.operations()] == [1]
        world.sandbox.faults.stalled = False
        world.drain(follow_ups[0])
    assert [o.state for o in sync_world.operations()] == ["SUCCEEDED"]


def test_a_poll_round_delivered_ten_times_lists_once(sync_world: World):
    reader(sync_world)
    sync_world.sandbox.faults.stalled = True
    [submitted] = full_sync(runtime=sync_world.runtime).next_work()
    [round_] = sync_world.run(submitted)
    assert round_ == events.poll_round(countdown=sync_world.runtime.settings.poll_first_delay)
    time.sleep(round_.countdown)  # the countdown a broker would wait
    calls = listings(sync_world)
    follow_ups = [sync_world.run(round_) for _ in range(10)]
    assert [len(work) for work in follow_ups] == [1] + [0] * 9  # one chain goes on
    assert listings(sync_world) == calls + 1
    assert [o.poll_count for o in sync_world.operations()] == [1]
    sync_world.sandbox.faults.stalled = False
    sync_world.drain(follow_ups[0])
    assert [o.state for o in sync_world.operations()] == ["SUCCEEDED"]


def test_full_sync_is_single_flight(sync_world: World):
    with single_flight(sync_world.runtime, FULL_SYNC_LOCK) as held:
        assert held
        assert full_sync(runtime=sync_world.runtime).skipped
    assert not full_sync(runtime=sync_world.runtime).skipped


def three_readers(world: World) -> None:
    world.add_role("prod-read", allow=[("Production", "ReadOnlyAccess")])
    for name in ("alice", "bob", "carol"):
        world.add_user(name, roles=["prod-read"])


def settle_then_round(world: World) -> list[events.Next]:
    """Submit every create while AWS holds them IN_PROGRESS, let them all settle, then run
    one poll round over all of them; the work it asks for next."""
    world.sandbox.faults.stalled = True
    rounds = [item for submitted in full_sync(runtime=world.runtime).next_work()
              for item in world.run(submitted)]
    assert {r.task for r in rounds} == {events.POLL_ROUND} and len(world.operations()) == 3
    world.sandbox.faults.stalled = False
    wait_until(lambda: not world.sandbox.center.operations("CREATE", status="IN_PROGRESS"))
    time.sleep(world.runtime.settings.poll_first_delay)  # the countdown a broker would wait
    return world.run(rounds[0])


def test_one_round_settles_many_and_describes_only_the_failed(sync_world: World):
    three_readers(sync_world)
    sync_world.sandbox.faults.fail_next(1, reason=AWS_REASON)
    before = sync_world.sandbox.calls()
    assert settle_then_round(sync_world) == []  # nothing left to poll, no waiting create
    spent = {api.split(":")[1]: count - before.get(api, 0)
             for api, count in sync_world.sandbox.calls().items()
             if api.endswith("Status") and count > before.get(api, 0)}
    assert spent == {"ListAccountAssignmentCreationStatus": 2,  # IN_PROGRESS, then FAILED
                     "DescribeAccountAssignmentCreationStatus": 1}  # the failed one's reason
    states = sorted((o.state, o.failure_reason or "") for o in sync_world.operations())
    assert states == [("FAILED", AWS_REASON), ("SUCCEEDED", ""), ("SUCCEEDED", "")]
    assert sorted(g.state for g in sync_world.grants()) == ["ACTIVE", "ACTIVE", "FAILED"]


class DeniedListings:
    """An IdentityCenter whose role lacks the List*Status actions."""

    def __init__(self, inner: object) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def operation_statuses(self, kind: str, status: str, **_: object) -> object:
        raise AwsAccessDenied("not authorized to perform sso:ListAccountAssignmentCreation"
                              "Status", api="ListAccountAssignmentCreationStatus",
                              action="sso:ListAccountAssignmentCreationStatus")


def test_a_refused_status_listing_falls_back_to_describe_polls(sync_world: World):
    three_readers(sync_world)
    runtime = sync_world.runtime
    runtime.identity_center = DeniedListings(runtime.identity_center)
    try:
        polls = settle_then_round(sync_world)
        assert sorted(p.task for p in polls) == [events.POLL_OPERATION] * 3
        sync_world.drain(polls)
    finally:
        del runtime.identity_center  # the cached adapter is built again
    assert [o.state for o in sync_world.operations()] == ["SUCCEEDED"] * 3
    assert [g.state for g in sync_world.grants()] == ["ACTIVE"] * 3


def test_rounds_come_faster_while_creates_wait_for_a_slot(sync_world: World):
    sync_world.add_role("prod-read", allow=[("Production", "ReadOnlyAccess")])
    for name in ("alice", "bob"):
        sync_world.add_user(name, roles=["prod-read"])
    sync_world.sandbox.faults.stalled = True
    with sync_world.reconfigured(max_outstanding_creates=1, status_poll_interval=2.0) as world:
        first = [item for submitted in full_sync(runtime=world.runtime).next_work()
                 for item in world.run(submitted)]
        assert [item.task for item in first] == [events.POLL_ROUND]  # bob waits for the slot
        time.sleep(first[0].countdown)
        fast = world.runtime.settings.status_poll_fast_interval
        assert world.run(first[0]) == [events.poll_round(countdown=fast)]
        world.sandbox.faults.stalled = False
        world.drain([events.poll_round(countdown=fast)])
    assert [o.state for o in sync_world.operations()] == ["SUCCEEDED"] * 2


def test_rounds_slow_down_only_when_the_budget_is_busy_and_no_create_waits(sync_world: World):
    sync_world.add_role("prod-read", allow=[("Production", "ReadOnlyAccess")])
    for name in ("alice", "bob"):
        sync_world.add_user(name, roles=["prod-read"])
    sync_world.sandbox.faults.stalled = True
    # one request per 10 s: a single call leaves none of the window spare
    limiter = Limiter(rates={"sso-admin": 0.1}, storage=MemoryStorage(),
                      slots=MemoryCreateSlots(), max_outstanding_creates=15, backend="memory")
    with sync_world.reconfigured(max_outstanding_creates=1, status_poll_interval=2.0) as world:
        settings = world.runtime.settings
        with world.runtime.sessions() as session:
            assert round_interval(session, settings, limiter) == settings.status_poll_fast_interval
            limiter.acquire("sso-admin", timeout=1.0)
            assert round_interval(session, settings, limiter) == 2.0
        for submitted in full_sync(runtime=world.runtime).next_work():
            world.run(submitted)  # bob's create waits for alice's slot
        with world.runtime.sessions() as session:
            assert round_interval(session, settings, limiter) == settings.status_poll_fast_interval
        world.sandbox.faults.stalled = False

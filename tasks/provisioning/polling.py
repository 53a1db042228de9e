"""Operations after they are recorded: submit to AWS, poll the status, settle the grants.

``submit_operation``: a QUEUED operation (row-locked, skipped if another worker holds it).
A create whose grants were revoked meanwhile is not sent (FAILED, ``NOT_WANTED``); else it
takes one of the 15 outstanding-create slots (none free: it waits, and the next create to
settle hands it its slot; the sweep is the safety net) and checks
whether the assignment already exists (then it is done without a create). The
AWS request id is stored by the same UPDATE that makes the operation SUBMITTED.

Status: by default a poll round (``tasks.provisioning.poll_round``) answers for every
operation in flight with one listing and settles them here (``settle``); with
``status_polling = "describe"``:

``poll_operation``: asks AWS where a SUBMITTED operation stands. IN_PROGRESS: poll again
after a growing delay (``poll_first_delay`` x1.6 per poll, at most ``poll_max_delay``);
no result after ``poll_give_up_after``: FAILED. Settling moves the operation's grants
(those of its assignment in PROVISIONING for a create, REVOKING for a delete) in the same
transaction. A delete that fails with AWS's "Received a 404 status error" found nothing to
delete: that is success. A delete that fails otherwise leaves its grants FAILED (the sync and
the expiry sweep retry it with backoff) and marks them stuck after
``revoke_stuck_after_attempts`` tries.

``sweep_operations`` (beat): re-enqueues polls that are overdue and submits that were lost
(QUEUED for more than ``LOST_SUBMIT_AFTER`` seconds: a flushed Redis, a killed worker).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from models.domain import PrincipalType
from models.errors import AwsError
from models.ledger import audit
from models.ledger import operations as ops
from models.ledger.audit import record_many
from models.ledger.base import database_time, db_now
from models.ledger.db import transaction
from models.ledger.enums import GrantState, OperationKind, OperationState
from models.ledger.grants import lock_assignment, mark_stuck
from models.ledger.tables import Operation
from models.ports.identity_center import SUCCEEDED, IdentityCenter, OperationStatus
from models.ports.priority import revocation_priority
from models.ports.runtime import Runtime
from tasks.events import Next, poll, poll_round, submit
from tasks.sync.applier import grant_event, move_grants
from tasks.sync.planner import GrantView
from tasks.sync.snapshot import load_live_grants, operation_key

QUEUED, SUBMITTED = OperationState.QUEUED, OperationState.SUBMITTED
CREATE = OperationKind.CREATE_ASSIGNMENT.value
ACTOR = "system:provision"
ALREADY_GONE = "Received a 404 status error"
MAX_SUBMIT_ATTEMPTS = 8  # throttled / conflicting submits before the operation FAILS
POLL_BACKOFF = 1.6
LOST_SUBMIT_AFTER = 30.0
NOT_WANTED = "no live grant wants this assignment any more (revoked before its create was sent)"
LATE_POLL_GRACE = 5.0  # a poll this late is taken as lost and enqueued again
SWEEP_LIMIT = 500

STUCK_REVOCATIONS = Counter("grantledger_stuck_revocations_total",
                            "Grants whose revocation kept failing (marked stuck)")
SETTLED = Counter("grantledger_operations_settled_total", "Operations settled",
                  ["kind", "outcome"])


def poll_delay(poll_count: int, settings: Any) -> float:
    """Delay before the next status poll: first delay x1.6 per poll so far, capped."""
    return min(settings.poll_first_delay * POLL_BACKOFF ** (poll_count + 1),
               settings.poll_max_delay)


def submit_retry_delay(attempts: int) -> float:
    return min(0.5 * 2 ** attempts, 30.0)


def slot_ttl(settings: Any) -> float:
    """A create slot outlives the longest poll (so only a lost worker can leak one)."""
    return settings.poll_give_up_after + 120.0


def claim_operation(session: Session, operation_id: int, state: OperationState) -> Operation | None:
    statement = (select(Operation).where(Operation.id == operation_id, Operation.state == state)
                 .with_for_update(skip_locked=True)
                 .execution_options(populate_existing=True))
    return session.scalars(statement).one_or_none()


def submit_operation(*, runtime: Runtime, operation_id: int) -> list[Next]:
    """Send one QUEUED operation to AWS; what to enqueue next (its first poll, or a retry)."""
    settings, limiter = runtime.settings, runtime.limiter
    with transaction(runtime.sessions) as session:
        operation = claim_operation(session, operation_id, QUEUED)
        if operation is None:
            return []  # done already, or another worker holds it: a duplicate delivery
        create = operation.kind == CREATE
        if create and not _still_wanted(session, operation):
            return settle(session, operation, succeeded=False, runtime=runtime,
                          reason=NOT_WANTED)
        if create and not limiter.try_acquire_create_slot(str(operation.id),
                                                          ttl=slot_ttl(settings)):
            _wait_for_slot(session, operation)
            return []
        try:
            with revocation_priority(not create):
                status = _send(runtime.identity_center, operation)
        except AwsError as err:
            return _submit_failed(session, operation, err, runtime)
        if status is None:  # a create of an assignment that already exists
            return settle(session, operation, succeeded=True, runtime=runtime,
                          note="assignment already existed; no create needed")
        ops.transition(session, operation_id=operation.id, expected=QUEUED, to=SUBMITTED,
                       request_id=status.request_id, poll_in_seconds=settings.poll_first_delay)
        operation.state, operation.request_id = SUBMITTED, status.request_id
        if status.settled:
            return settle_status(session, operation, status, runtime)
    return [first_poll(operation.id, settings)]


def first_poll(operation_id: int, settings: Any) -> Next:
    """A submitted operation's first status poll: a poll round
    (``tasks.provisioning.poll_round``), or with ``status_polling = "describe"`` its own
    Describe poll chain."""
    if settings.status_polling == "list":
        return poll_round(countdown=settings.poll_first_delay)
    return poll(operation_id, countdown=settings.poll_first_delay, polls=0)


def _wait_for_slot(session: Session, operation: Operation) -> None:
    """All 15 create slots are taken: wait, without spinning, to be handed one.

    The next create that settles hands its slot over (``_release_slot``); the sweep
    resubmits a waiter it finds still queued ``LOST_SUBMIT_AFTER`` seconds later.
    """
    session.execute(update(Operation).where(Operation.id == operation.id)
                    .values(next_poll_at=db_now(LOST_SUBMIT_AFTER))
                    .execution_options(synchronize_session=False))


def _release_slot(session: Session, operation: Operation, runtime: Runtime) -> list[Next]:
    """Give a create's slot back, and wake the oldest create waiting for one."""
    runtime.limiter.release_create_slot(str(operation.id))
    waiting = session.scalars(
        select(Operation.id).where(Operation.state == QUEUED, Operation.kind == CREATE,
                                   Operation.next_poll_at.is_not(None),
                                   Operation.id != operation.id)
        .order_by(Operation.id).limit(1).with_for_update(skip_locked=True)).first()
    if waiting is None:
        return []
    session.execute(update(Operation).where(Operation.id == waiting).values(next_poll_at=None)
                    .execution_options(synchronize_session=False))
    return [submit(waiting)]


def _still_wanted(session: Session, operation: Operation) -> bool:
    """Whether a live grant still wants a create's assignment (expired or not: the expiry
    sweep deals with those). Checked under the assignment lock, which a revocation holds
    until it commits: a create recorded before its grants were revoked is never sent after."""
    name = (operation.payload or {}).get("principal_name")
    if not name:
        return True  # nothing to check it against: send it, the next sync judges
    key = operation_key(operation)
    lock_assignment(session, principal_type=PrincipalType(str(key.principal_type)),
                    principal_name=name, account_id=key.account_id,
                    permission_set_arn=key.permission_set_arn)
    grants = load_live_grants(session, keys=[(str(key.principal_type), name, key.account_id,
                                              key.permission_set_arn)])
    return any(grant.backs(None) for grant in grants)


def _send(identity_center: IdentityCenter, operation: Operation) -> OperationStatus | None:
    key = operation_key(operation)
    if operation.kind != CREATE:
        # No existence check for deletes: a create of the same assignment may still be in
        # flight, and skipping the delete would let it land for good.
        return identity_center.delete_assignment(key)
    held = identity_center.list_assignments_for_principal(
        principal_type=str(key.principal_type), principal_id=key.principal_id,
        account_id=key.account_id)
    if any(record.permission_set_arn == key.permission_set_arn for record in held):
        return None
    return identity_center.create_assignment(key)


def _submit_failed(session: Session, operation: Operation, err: AwsError,
                   runtime: Runtime) -> list[Next]:
    if err.retryable:
        attempts = ops.record_retry(session, operation_id=operation.id, reason=str(err))
        if attempts is not None and attempts < MAX_SUBMIT_ATTEMPTS:
            woken = _release_slot(session, operation, runtime) \
                if operation.kind == CREATE else []
            return [*woken, submit(operation.id, countdown=submit_retry_delay(attempts))]
    return settle(session, operation, succeeded=False, runtime=runtime, reason=str(err))


def poll_operation(*, runtime: Runtime, operation_id: int,
                   polls: int | None = None) -> list[Next]:
    """Ask AWS where a SUBMITTED operation stands; settle it, or poll again later.

    ``polls``: the poll count this poll was scheduled for; a poll whose operation has been
    polled since (a duplicate delivery, a chain the sweep replaced) does nothing.
    """
    settings = runtime.settings
    with transaction(runtime.sessions) as session:
        operation = claim_operation(session, operation_id, SUBMITTED)
        if operation is None or (polls is not None and operation.poll_count != polls):
            return []
        try:
            status = describe_status(runtime.identity_center, operation.kind,
                                     operation.request_id or "")
        except AwsError as err:
            if not err.retryable:
                return settle(session, operation, succeeded=False, runtime=runtime,
                              reason=str(err))
            status = None
        if status is not None and status.settled:
            return settle_status(session, operation, status, runtime)
        waited = (database_time(session) - operation.submitted_at).total_seconds() \
            if operation.submitted_at else 0.0
        if waited >= settings.poll_give_up_after:
            return settle(session, operation, succeeded=False, runtime=runtime,
                          reason=gave_up_reason(waited))
        polled = operation.poll_count
        delay = poll_delay(polled, settings)
        ops.reschedule_poll(session, operation_id=operation.id, delay_seconds=delay)
    return [poll(operation_id, countdown=delay, polls=polled + 1)]


def describe_status(identity_center: IdentityCenter, kind: str,
                    request_id: str) -> OperationStatus:
    """Where one create or delete (``kind``: the operation's kind) stands, by its request id."""
    if kind == CREATE:
        return identity_center.creation_status(request_id)
    return identity_center.deletion_status(request_id)


def gave_up_reason(waited: float) -> str:
    return (f"no result from AWS after {waited:.0f}s (still IN_PROGRESS); the next sync "
            "checks the assignment again")


def settle_status(session: Session, operation: Operation, status: OperationStatus,
                  runtime: Runtime) -> list[Next]:
    """Settle an operation as AWS's final ``status`` says (its FailureReason kept)."""
    return settle(session, operation, succeeded=status.status == SUCCEEDED, runtime=runtime,
           reason=status.failure_reason or (None if status.status == SUCCEEDED
                                            else f"AWS status {status.status}"))


def settle(session: Session, operation: Operation, *, succeeded: bool, runtime: Runtime,
           reason: str | None = None, note: str | None = None) -> list[Next]:
    """Finish an operation and move the grants of its assignment, in one transaction; the
    work that follows (a create waiting for the slot this one frees)."""
    create = operation.kind == CREATE
    if not create and not succeeded and (reason or "").startswith(ALREADY_GONE):
        succeeded, note = True, f"already gone: {reason}"
    to = OperationState.SUCCEEDED if succeeded else OperationState.FAILED
    if not ops.transition(session, operation_id=operation.id, expected=operation.state, to=to,
                          reason=None if succeeded else reason):
        return []
    woken = _release_slot(session, operation, runtime) if create else []
    SETTLED.labels(kind=operation.kind, outcome=to.value).inc()
    grants = _grants_of(session, operation, GrantState.PROVISIONING if create
                        else GrantState.REVOKING)
    if create:
        _settle_create(session, operation, grants, succeeded, reason or note)
    else:
        _settle_delete(session, operation, grants, succeeded, reason, note, runtime.settings)
    return woken


def _grants_of(session: Session, operation: Operation, state: GrantState) -> list[GrantView]:
    name = (operation.payload or {}).get("principal_name")
    if not name:
        return []
    key = operation_key(operation)
    grants = load_live_grants(session, keys=[(str(key.principal_type), name, key.account_id,
                                              key.permission_set_arn)])
    return [g for g in grants if g.state is state]


def _settle_create(session: Session, operation: Operation, grants: list[GrantView],
                   succeeded: bool, reason: str | None) -> None:
    to = GrantState.ACTIVE if succeeded else GrantState.FAILED
    moved = set(move_grants(session, [g.id for g in grants], expected=GrantState.PROVISIONING,
                            to=to, reason=None if succeeded else reason))
    action = "grant.activated" if succeeded else "grant.failed"
    record_many(session, [grant_event(g, actor=ACTOR, action=action, reason=reason,
                                      request_id=operation.request_id)
                          for g in grants if g.id in moved])


def _settle_delete(session: Session, operation: Operation, grants: list[GrantView],
                   succeeded: bool, reason: str | None, note: str | None,
                   settings: Any) -> None:
    if not grants and (operation.payload or {}).get("change") == "foreign_remove":
        _audit_foreign_removal(session, operation, succeeded, reason or note)
    to = GrantState.REVOKED if succeeded else GrantState.FAILED
    moved = set(move_grants(session, [g.id for g in grants], expected=GrantState.REVOKING,
                            to=to, reason=None if succeeded else reason))
    done = [g for g in grants if g.id in moved]
    action = "grant.revoked" if succeeded else "grant.revoke_failed"
    record_many(session, [grant_event(g, actor=ACTOR, action=action, reason=note or reason,
                                      request_id=operation.request_id) for g in done])
    if not succeeded:
        stuck = []
        for grant in done:
            if grant.attempts >= settings.revoke_stuck_after_attempts and mark_stuck(
                    session, grant_id=grant.id):
                STUCK_REVOCATIONS.inc()
                stuck.append(grant_event(grant, actor=ACTOR, action="grant.stuck", reason=(
                    f"revocation failed {grant.attempts} times; still retried: {reason}")))
        audit.record_many(session, stuck)  # the audit module's: grant.stuck notifies


def _audit_foreign_removal(session: Session, operation: Operation, succeeded: bool,
                           reason: str | None) -> None:
    key = operation_key(operation)
    record_many(session, [{
        "actor": ACTOR, "action": "assignment.foreign_removed" if succeeded
        else "assignment.foreign_remove_failed", "target_kind": "assignment",
        "target": f"{key.principal_type}:{key.principal_id}@{key.account_id}/"
                  f"{key.permission_set_arn}", "reason": reason,
        "request_id": operation.request_id, "account_id": key.account_id}])


def give_up(*, runtime: Runtime, operation_id: int, reason: str) -> list[Next]:
    """Poison work: end an unsettled operation FAILED with ``reason`` (bounded attempts);
    what to enqueue next."""
    with transaction(runtime.sessions) as session:
        for state in (QUEUED, SUBMITTED):
            operation = claim_operation(session, operation_id, state)
            if operation is not None:
                return settle(session, operation, succeeded=False, runtime=runtime,
                              reason=reason)
    return []


def sweep_operations(*, runtime: Runtime) -> list[Next]:
    """Re-enqueue overdue polls and lost submits (each at most once per grace period).

    Overdue polls: with poll rounds, one round (it leases every overdue operation); with
    Describe polls, a new chain for each (the lost one is void: its poll count has passed).
    """
    rounds = runtime.settings.status_polling == "list"
    with transaction(runtime.sessions) as session:
        late = session.execute(
            select(Operation.id, Operation.poll_count).where(
                Operation.state == SUBMITTED, Operation.next_poll_at <= db_now(-LATE_POLL_GRACE))
            .order_by(Operation.next_poll_at).limit(1 if rounds else SWEEP_LIMIT)
            .with_for_update(skip_locked=True)).all()
        if not rounds:
            for operation_id, _ in late:
                ops.reschedule_poll(session, operation_id=operation_id,
                                    delay_seconds=runtime.settings.poll_max_delay)
        lost = list(session.scalars(
            select(Operation.id).where(
                Operation.state == QUEUED, Operation.created_at <= db_now(-LOST_SUBMIT_AFTER),
                or_(Operation.next_poll_at.is_(None), Operation.next_poll_at <= db_now()))
            .order_by(Operation.id).limit(SWEEP_LIMIT).with_for_update(skip_locked=True)))
        if lost:
            # next_poll_at of a QUEUED operation = when the sweep may resubmit it again
            session.execute(update(Operation).where(Operation.id.in_(lost),
                                                    Operation.state == QUEUED)
                            .values(next_poll_at=db_now(LOST_SUBMIT_AFTER))
                            .execution_options(synchronize_session=False))
    if rounds:
        resumed = [poll_round()] if late else []
    else:
        resumed = [poll(i, countdown=0, polls=count + 1) for i, count in late]
    return resumed + [submit(i) for i in lost]

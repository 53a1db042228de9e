"""Operations: each state-changing AWS or SCIM call, recorded before it is made.

::

    QUEUED -> SUBMITTED(request_id) -> SUCCEEDED | FAILED(reason)
       \\-> SUCCEEDED | FAILED         (synchronous calls such as SCIM; or given up)

The idempotency key makes a redelivered task find the operation it already recorded, and
the AWS request id is stored by the same UPDATE that moves the operation to SUBMITTED.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models.domain import PrincipalType
from models.errors import LedgerError
from models.ledger.base import db_now
from models.ledger.enums import OperationKind, OperationState
from models.ledger.tables import Operation
from models.ledger.upsert import dialect_insert

QUEUED, SUBMITTED = OperationState.QUEUED, OperationState.SUBMITTED
SUCCEEDED, FAILED = OperationState.SUCCEEDED, OperationState.FAILED

LEGAL_TRANSITIONS: frozenset[tuple[OperationState, OperationState]] = frozenset({
    (QUEUED, SUBMITTED), (QUEUED, SUCCEEDED), (QUEUED, FAILED),
    (SUBMITTED, SUCCEEDED), (SUBMITTED, FAILED),
})


def check_transition(expected: OperationState, to: OperationState) -> None:
    """Raise ``LedgerError`` for a move the operation state machine does not allow."""
    if (expected, to) not in LEGAL_TRANSITIONS:
        raise LedgerError(f"illegal operation transition {expected} -> {to}",
                          hint="this is a bug in the caller: see models/ledger/operations.py")


def transition_values(
    expected: OperationState, to: OperationState, *, request_id: str | None = None,
    reason: str | None = None, poll_in_seconds: float = 0.0,
) -> dict[str, Any]:
    """The columns one (legal) transition sets, as SQL values."""
    if to is SUBMITTED and not request_id:
        raise LedgerError("an operation becomes SUBMITTED only with AWS's request id")
    values: dict[str, Any] = {"state": to}
    if to is SUBMITTED:
        values |= {"request_id": request_id, "submitted_at": db_now(),
                   "attempts": Operation.attempts + 1,
                   "next_poll_at": db_now(poll_in_seconds)}
        return values
    values |= {"finished_at": db_now(), "next_poll_at": None}
    if expected is QUEUED:  # a synchronous call (or giving up) counts as one attempt
        values["attempts"] = Operation.attempts + 1
    if to is FAILED:
        values["failure_reason"] = reason
    return values


def transition(
    session: Session, *, operation_id: int, expected: OperationState, to: OperationState,
    request_id: str | None = None, reason: str | None = None, poll_in_seconds: float = 0.0,
) -> bool:
    """Move an operation from ``expected`` to ``to``; False (no change) if it is not there.

    To SUBMITTED: ``request_id`` is required and the first status poll is due after
    ``poll_in_seconds`` by the database clock. To FAILED: ``reason`` is kept.
    """
    check_transition(expected, to)
    values = transition_values(expected, to, request_id=request_id, reason=reason,
                               poll_in_seconds=poll_in_seconds)
    statement = (
        update(Operation)
        .where(Operation.id == operation_id, Operation.state == expected)
        .values(values)
        .returning(Operation.id)
        .execution_options(synchronize_session="fetch")
    )
    return session.execute(statement).first() is not None


def get_or_create_operation(
    session: Session, *, idempotency_key: str, kind: OperationKind | str,
    principal_type: PrincipalType | None = None, principal_id: str | None = None,
    account_id: str | None = None, permission_set_arn: str | None = None,
    payload: dict[str, Any] | None = None, grant_id: int | None = None,
) -> tuple[Operation, bool]:
    """The operation with this idempotency key, recorded as QUEUED if new: (operation, created).

    Race-safe: two deliveries of one task both get the single row.
    """
    values = {
        "idempotency_key": idempotency_key, "kind": str(kind), "principal_type": principal_type,
        "principal_id": principal_id, "account_id": account_id,
        "permission_set_arn": permission_set_arn, "payload": payload or {},
        "grant_id": grant_id, "state": QUEUED,
    }
    statement = (
        dialect_insert(session, Operation).values(values)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(Operation)
    )
    created = session.scalars(statement, execution_options={"populate_existing": True})
    operation = created.one_or_none()
    if operation is not None:
        return operation, True
    existing = select(Operation).where(Operation.idempotency_key == idempotency_key)
    return session.scalars(existing.execution_options(populate_existing=True)).one(), False


def record_retry(session: Session, *, operation_id: int, reason: str) -> int | None:
    """Count a failed try of a QUEUED operation (throttled, conflict); its attempts, or None.

    The caller compares the count with its bound and gives up (-> FAILED) when it is reached.
    """
    statement = (
        update(Operation)
        .where(Operation.id == operation_id, Operation.state == QUEUED)
        .values(attempts=Operation.attempts + 1, failure_reason=reason)
        .returning(Operation.attempts)
        .execution_options(synchronize_session="fetch")
    )
    return session.execute(statement).scalar_one_or_none()


def reschedule_poll(session: Session, *, operation_id: int, delay_seconds: float) -> bool:
    """After a poll found the operation still IN_PROGRESS: poll again after a delay."""
    statement = (
        update(Operation)
        .where(Operation.id == operation_id, Operation.state == SUBMITTED)
        .values(poll_count=Operation.poll_count + 1, next_poll_at=db_now(delay_seconds))
        .returning(Operation.id)
        .execution_options(synchronize_session="fetch")
    )
    return session.execute(statement).first() is not None


def claim_due_polls(session: Session, *, limit: int = 100) -> list[Operation]:
    """SUBMITTED operations whose next status poll is due by the database clock.

    Locked ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (see ``grants.claim_due_expiries``); the
    caller reschedules or finishes each one before committing.
    """
    statement = (
        select(Operation)
        .where(Operation.state == SUBMITTED, Operation.next_poll_at <= db_now())
        .order_by(Operation.next_poll_at, Operation.id).limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return list(session.scalars(statement))

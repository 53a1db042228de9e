"""The grant state machine, reference counting, and the expiry claim.

::

    PENDING -> PROVISIONING -> ACTIVE -> REVOKING -> REVOKED
       |            |                       |
       +------------+-----> FAILED <--------+      FAILED -> PROVISIONING (retry the create)
       +-> REVOKED (never provisioned)             FAILED -> REVOKING     (retry the delete)

Every transition is one conditional ``UPDATE ... WHERE id = :id AND state = :expected``: a
duplicate task delivery finds the row already moved on and changes nothing. Times are set
from the database clock (``db_now()``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, and_, case, func, or_, select, update
from sqlalchemy.orm import Session

from models.domain import PrincipalType
from models.errors import LedgerError
from models.ledger.base import db_now
from models.ledger.enums import GrantState, SourceKind
from models.ledger.tables import LIVE_GRANT, Grant
from models.ledger.upsert import dialect_insert, dialect_name

PENDING, PROVISIONING, ACTIVE = GrantState.PENDING, GrantState.PROVISIONING, GrantState.ACTIVE
REVOKING, REVOKED, FAILED = GrantState.REVOKING, GrantState.REVOKED, GrantState.FAILED

LEGAL_TRANSITIONS: frozenset[tuple[GrantState, GrantState]] = frozenset({
    (PENDING, PROVISIONING), (PROVISIONING, ACTIVE), (ACTIVE, REVOKING), (REVOKING, REVOKED),
    (PENDING, REVOKED),
    (PENDING, FAILED), (PROVISIONING, FAILED), (REVOKING, FAILED),
    (FAILED, PROVISIONING), (FAILED, REVOKING),
    # The account or permission set vanished from AWS (import refresh): no AWS operation
    # failed, the target is gone; failed_from = ACTIVE says so.
    (ACTIVE, FAILED),
})
CREATE_STATES = (PENDING, PROVISIONING)  # a FAILED grant with these failed_from: create
BACKING_STATES = (PENDING, PROVISIONING, ACTIVE)
KEY_COLUMNS = ("principal_type", "principal_name", "account_id", "permission_set_arn",
               "source_kind", "source_id")


class BackedAssignment(NamedTuple):
    """An AWS assignment some live grant wants, named by our principal name."""

    principal_type: str
    principal_name: str
    account_id: str
    permission_set_arn: str


def check_transition(expected: GrantState, to: GrantState) -> None:
    """Raise ``LedgerError`` for a move the state machine does not allow."""
    if (expected, to) not in LEGAL_TRANSITIONS:
        raise LedgerError(f"illegal grant transition {expected} -> {to}",
                          hint="this is a bug in the caller: see models/ledger/grants.py")


def transition_values(expected: GrantState, to: GrantState,
                      reason: str | None = None) -> dict[str, Any]:
    """The columns one (legal) transition sets, as SQL values."""
    values: dict[str, Any] = {"state": to, "updated_at": db_now(),
                              "failed_from": expected if to is FAILED else None}
    if to is FAILED:
        values["failure_reason"] = reason
    if to is ACTIVE:
        # Keep the first activation: a failed delete followed by a re-create held throughout.
        values |= {"activated_at": func.coalesce(Grant.activated_at, db_now()),
                   "failure_reason": None}
    if to is REVOKED:
        values |= {"revoked_at": db_now(), "stuck": False, "failure_reason": None}
    if to in (PROVISIONING, REVOKING):
        values["attempts"] = _next_attempt(expected, to)
    return values


def _next_attempt(expected: GrantState, to: GrantState) -> Any:
    # attempts counts tries in the current direction (create or delete), so a revocation's
    # count starts at 1 even after a grant that needed five tries to be created.
    if expected is not FAILED:
        return 1
    same_direction = CREATE_STATES if to is PROVISIONING else (REVOKING,)
    return case((Grant.failed_from.in_(same_direction), Grant.attempts + 1), else_=1)


def transition(session: Session, *, grant_id: int, expected: GrantState, to: GrantState,
               reason: str | None = None) -> bool:
    """Move a grant from ``expected`` to ``to``; False (and no change) if it is not there."""
    check_transition(expected, to)
    statement = (
        update(Grant)
        .where(Grant.id == grant_id, Grant.state == expected)
        .values(transition_values(expected, to, reason))
        .returning(Grant.id)
        .execution_options(synchronize_session="fetch")
    )
    return session.execute(statement).first() is not None


def upsert_grant(
    session: Session, *, principal_type: PrincipalType, principal_name: str, account_id: str,
    permission_set_arn: str, source_kind: SourceKind, source_id: str,
    principal_id: str | None = None, expires_at: datetime | None = None,
    starts_at: datetime | None = None,
) -> tuple[Grant, bool]:
    """The live grant for this key, inserted as PENDING if there was none: (grant, created).

    Race-safe: concurrent callers all get the one row the partial unique index lets in.
    An existing grant is returned as it is (its expiry is not changed).
    """
    key = {"principal_type": principal_type, "principal_name": principal_name,
           "account_id": account_id, "permission_set_arn": permission_set_arn,
           "source_kind": source_kind, "source_id": source_id}
    values = {**key, "principal_id": principal_id, "expires_at": expires_at,
              "state": PENDING}
    if starts_at is not None:
        values["starts_at"] = starts_at
    statement = (
        dialect_insert(session, Grant).values(values)
        .on_conflict_do_nothing(index_elements=list(KEY_COLUMNS), index_where=LIVE_GRANT)
        .returning(Grant)
    )
    # Between our DO NOTHING and our read the winner could (very rarely) be revoked: retry.
    for _ in range(3):
        created = session.scalars(statement, execution_options={"populate_existing": True})
        grant = created.one_or_none()
        if grant is not None:
            return grant, True
        existing = session.scalars(_live_grant(key)).one_or_none()
        if existing is not None:
            return existing, False
    raise LedgerError(f"could not record a grant for {key}: it kept changing under us")


def _live_grant(key: dict[str, Any]) -> Any:
    matches = [getattr(Grant, column) == value for column, value in key.items()]
    return (select(Grant).where(*matches, Grant.state != REVOKED)
            .execution_options(populate_existing=True))


def _wants_assignment() -> ColumnElement[bool]:
    # Created, being created, or failed while being created (it may half exist).
    return or_(Grant.state.in_(BACKING_STATES),
               and_(Grant.state == FAILED, Grant.failed_from.in_(CREATE_STATES)))


def _backs_assignment() -> ColumnElement[bool]:
    # An expired grant is on its way out: two expired grants for one assignment must not
    # each keep the other's access alive.
    not_expired = or_(Grant.expires_at.is_(None), Grant.expires_at > db_now())
    return and_(_wants_assignment(), not_expired)


def is_backed(
    session: Session, *, principal_type: PrincipalType, principal_name: str, account_id: str,
    permission_set_arn: str, excluding_grant_id: int | None = None,
) -> bool:
    """True when another live, unexpired grant still needs this AWS assignment."""
    statement = select(Grant.id).where(
        Grant.principal_type == principal_type, Grant.principal_name == principal_name,
        Grant.account_id == account_id, Grant.permission_set_arn == permission_set_arn,
        _backs_assignment(),
    ).limit(1)
    if excluding_grant_id is not None:
        statement = statement.where(Grant.id != excluding_grant_id)
    return session.execute(statement).first() is not None


def backed_keys(session: Session) -> set[BackedAssignment]:
    """Every assignment at least one live, unexpired grant needs (one query, for sync)."""
    statement = select(
        Grant.principal_type, Grant.principal_name, Grant.account_id, Grant.permission_set_arn,
    ).where(_backs_assignment()).distinct()
    return {BackedAssignment(str(row[0]), row[1], row[2], row[3])
            for row in session.execute(statement)}


def lock_assignment(session: Session, *, principal_type: PrincipalType, principal_name: str,
                    account_id: str, permission_set_arn: str) -> None:
    """Serialize decisions about one AWS assignment until the transaction ends.

    Take it before ``is_backed`` when revoking: otherwise two grants for the same
    assignment revoked at once each see the other still live and neither deletes it.
    SQLite needs nothing: ``BEGIN IMMEDIATE`` already admits one writer at a time.
    """
    if dialect_name(session) != "postgresql":
        return
    name = "\x1f".join(("assignment", str(principal_type), principal_name, account_id,
                        permission_set_arn))
    session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(name, 0))))


def claim_due_expiries(session: Session, *, limit: int = 500) -> list[Grant]:
    """Grants whose ``expires_at`` has passed by the database clock, locked for this caller.

    On PostgreSQL the rows are locked ``FOR UPDATE SKIP LOCKED`` until the transaction ends,
    so concurrent sweepers share the work instead of waiting or doing it twice. SQLite
    ignores the clause: its one writer at a time already gives the same guarantee.
    Includes grants that failed to be created: they may half exist and must go too.
    """
    statement = (
        select(Grant).where(_wants_assignment(), Grant.expires_at <= db_now())
        .order_by(Grant.expires_at, Grant.id).limit(limit).with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return list(session.scalars(statement))


def mark_stuck(session: Session, *, grant_id: int) -> bool:
    """Flag a revocation that keeps failing; True only the first time (audit it then)."""
    statement = (
        update(Grant)
        .where(Grant.id == grant_id, Grant.state.in_((REVOKING, FAILED)),
               Grant.stuck.is_(False))
        .values(stuck=True, updated_at=db_now())
        .returning(Grant.id)
        .execution_options(synchronize_session="fetch")
    )
    return session.execute(statement).first() is not None


def extend_grant(session: Session, *, grant_id: int, expires_at: datetime | None) -> bool:
    """Move a live grant's expiry (``None``: long-term); False once it is being revoked.

    The same row keeps the assignment, so an extension never leaves a gap in access. A grant
    whose create failed moves too: sync retries it, and the expiry sweep must not revoke it
    at the expiry its source no longer has. One failed for good (its target vanished) or
    being revoked keeps its expiry.
    """
    statement = (
        update(Grant)
        .where(Grant.id == grant_id, _wants_assignment())
        .values(expires_at=expires_at, updated_at=db_now())
        .returning(Grant.id)
        .execution_options(synchronize_session="fetch")
    )
    return session.execute(statement).first() is not None


def live_grants_of(session: Session, *, principal_type: PrincipalType,
                   principal_name: str) -> list[Grant]:
    """Everything a principal holds or is about to hold, locked: the emergency-revoke query."""
    statement = (
        select(Grant)
        .where(Grant.principal_type == principal_type, Grant.principal_name == principal_name,
               Grant.state != REVOKED)
        .order_by(Grant.id).with_for_update()
        .execution_options(populate_existing=True)
    )
    return list(session.scalars(statement))

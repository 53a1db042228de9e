"""Views of the sync engine's work for people: `get grants`, `get operations`, and what is
still unsettled (`sync --wait`, the embedded worker's ``run_until_idle``). Read-only."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from models.flatten import lists_containing
from models.ledger import tables
from models.ledger.base import database_time
from models.ledger.enums import GrantState, OperationState, SourceKind
from tasks.sync.snapshot import GROUP, IN_FLIGHT_STATES, USER, load_memberships

UNSETTLED_GRANTS = (GrantState.PENDING, GrantState.PROVISIONING, GrantState.REVOKING)
GRANT_STATES = tuple(s.value for s in GrantState)
OPERATION_STATES = tuple(s.value for s in OperationState)


def unsettled(session: Session) -> dict[str, int]:
    """Work not finished: operations QUEUED/SUBMITTED, grants PENDING/PROVISIONING/REVOKING."""
    operations = session.scalar(select(func.count()).select_from(tables.Operation).where(
        tables.Operation.state.in_(IN_FLIGHT_STATES)))
    grants = session.scalar(select(func.count()).select_from(tables.Grant).where(
        tables.Grant.state.in_(UNSETTLED_GRANTS)))
    return {"operations": operations or 0, "grants": grants or 0}


def failed_operations_since(session: Session, since: datetime) -> list[str]:
    """Operations recorded at or after ``since`` that ended FAILED, one line each with AWS's
    reason (what a `sync --wait` reports as its errors besides the sync's own)."""
    found = session.scalars(select(tables.Operation).where(
        tables.Operation.created_at >= since,
        tables.Operation.state == OperationState.FAILED).order_by(tables.Operation.id))
    return [f"operation {o.id} ({o.kind} {o.principal_type}:"
            f"{(o.payload or {}).get('principal_name') or o.principal_id} {o.account_id} "
            f"{o.permission_set_arn}) FAILED: {o.failure_reason}; the next sync retries it"
            for o in found]


def grant_rows(session: Session, *, user: str | None = None, state: str | None = None,
               stuck: bool = False, limit: int | None = None,
               source: tuple[str, str] | None = None) -> list[dict[str, Any]]:
    """Grants as people read them; ``user``: theirs and their access lists' groups' grants;
    ``source``: (kind, id), e.g. the grants of one request.

    Without ``state``, REVOKED history is left out.
    """
    statement = select(tables.Grant).order_by(tables.Grant.id)
    if state is not None:
        statement = statement.where(tables.Grant.state == GrantState(state))
    else:
        statement = statement.where(tables.Grant.state != GrantState.REVOKED)
    if stuck:
        statement = statement.where(tables.Grant.stuck.is_(True))
    if source is not None:
        statement = statement.where(tables.Grant.source_kind == SourceKind(source[0]),
                                    tables.Grant.source_id == source[1])
    if user is not None:
        groups = sorted(lists_containing(load_memberships(session), user=user,
                                         at=database_time(session)))
        statement = statement.where(or_(
            and_(tables.Grant.principal_type == USER, tables.Grant.principal_name == user),
            and_(tables.Grant.principal_type == GROUP, tables.Grant.principal_name.in_(groups))))
    names = _catalog_names(session)
    return [_grant_row(g, names) for g in session.scalars(statement.limit(limit))]


def _grant_row(grant: tables.Grant, names: Mapping[str, str]) -> dict[str, Any]:
    return {"id": grant.id, "principal": f"{grant.principal_type}:{grant.principal_name}",
            "account": _named(grant.account_id, names), "permission_set": names.get(
                grant.permission_set_arn, grant.permission_set_arn),
            "source": f"{grant.source_kind}:{grant.source_id}", "state": str(grant.state),
            "expires_at": grant.expires_at, "attempts": grant.attempts, "stuck": grant.stuck,
            "reason": grant.failure_reason}


def operation_rows(session: Session, *, state: str | None = None,
                   limit: int | None = 200) -> list[dict[str, Any]]:
    """The most recent operations (newest last), with AWS's request id and failure reason."""
    statement = select(tables.Operation).order_by(tables.Operation.id.desc())
    if state is not None:
        statement = statement.where(tables.Operation.state == OperationState(state))
    names = _catalog_names(session)
    rows = list(session.scalars(statement.limit(limit)))
    return [{"id": o.id, "kind": o.kind,
             "principal": f"{o.principal_type}:"
                          f"{(o.payload or {}).get('principal_name') or o.principal_id}",
             "account": _named(o.account_id or "", names),
             "permission_set": names.get(o.permission_set_arn or "", o.permission_set_arn),
             "state": str(o.state), "request_id": o.request_id, "attempts": o.attempts,
             "created_at": o.created_at, "finished_at": o.finished_at,
             "reason": o.failure_reason} for o in reversed(rows)]


def _catalog_names(session: Session) -> dict[str, str]:
    """Account id -> name and permission set ARN -> name, in one mapping."""
    names = dict(session.execute(select(tables.Account.id, tables.Account.name)).all())
    names.update(session.execute(select(tables.PermissionSet.arn,
                                        tables.PermissionSet.name)).all())
    return names


def _named(account_id: str, names: Mapping[str, str]) -> str:
    return f"{account_id} ({names[account_id]})" if account_id in names else account_id

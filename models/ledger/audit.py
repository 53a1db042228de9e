"""The audit trail: append-only events, and "who held what at time T".

Events are written in the same transaction as the change they describe, stamped by the
database clock, and can never be updated or deleted (database triggers refuse it). Secrets
never reach the trail: values under secret-looking keys are replaced before writing.
A notifiable event (``models.ledger.outbox.NOTIFIABLE_EVENTS``) also queues its notification
in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, or_, select
from sqlalchemy.orm import Session

from models.ledger.enums import SourceKind
from models.ledger.outbox import queue_for_audit
from models.ledger.tables import AuditEvent, Grant, PermissionSet

SECRET_MARKERS = ("token", "secret", "password", "authorization", "credential", "api_key",
                  "private_key", "cookie")
REDACTED = "[redacted]"
EVENT_COLUMNS = ("actor", "action", "target_kind", "target", "reason", "before", "after",
                 "request_id", "details", "principal_name", "account_id")
REDACTED_COLUMNS = ("before", "after", "details")


def redact(document: Any) -> Any:
    """A copy of ``document`` with the value of every secret-looking key replaced."""
    if isinstance(document, dict):
        return {key: REDACTED if _is_secret(key) else redact(value)
                for key, value in document.items()}
    if isinstance(document, list | tuple):
        return [redact(item) for item in document]
    return document


def _is_secret(key: Any) -> bool:
    lowered = str(key).lower()
    return any(marker in lowered for marker in SECRET_MARKERS)


def record(
    session: Session, *, actor: str, action: str, target_kind: str, target: str,
    reason: str | None = None, before: Any = None, after: Any = None,
    request_id: str | None = None, details: dict[str, Any] | None = None,
    principal_name: str | None = None, account_id: str | None = None,
) -> AuditEvent:
    """Append one event; ``principal_name``/``account_id`` say whose access it concerns.

    A notifiable ``action`` also queues its notification in this session (same transaction).
    """
    event = AuditEvent(
        actor=actor, action=action, target_kind=target_kind, target=target, reason=reason,
        request_id=request_id, principal_name=principal_name, account_id=account_id,
        before=redact(before), after=redact(after), details=redact(details),
    )
    session.add(event)
    session.flush()
    queue_for_audit(session, event)
    return event


def record_many(session: Session, events: Sequence[Mapping[str, Any]]) -> list[AuditEvent]:
    """Append several events in one INSERT; each mapping holds ``record``'s keyword arguments.

    Same redaction and same notifications as ``record``, for bulk writers (sync, expiry).
    """
    if not events:
        return []
    rows = [{column: redact(event.get(column)) if column in REDACTED_COLUMNS
             else event.get(column) for column in EVENT_COLUMNS} for event in events]
    written = list(session.scalars(insert(AuditEvent).returning(AuditEvent), rows))
    for event in written:
        queue_for_audit(session, event)
    return written


def events(
    session: Session, *, user: str | None = None, account_id: str | None = None,
    since: datetime | None = None, until: datetime | None = None, limit: int | None = None,
) -> list[AuditEvent]:
    """Events oldest first; with ``limit``, the most recent ``limit`` of them.

    ``user`` matches what the user did (actor: the bare name, or a surface's label such as
    ``api:alice (usr-...)`` / ``cli:alice (os: root)``), what happened to their access
    (principal_name) and changes to the user itself.
    """
    statement = select(AuditEvent)
    if user is not None:
        about_user = and_(AuditEvent.target_kind == "user", AuditEvent.target == user)
        labelled = AuditEvent.actor.like(f"%:{_like_literal(user)} (%", escape="\\")
        statement = statement.where(or_(AuditEvent.actor == user, labelled,
                                        AuditEvent.principal_name == user, about_user))
    if account_id is not None:
        statement = statement.where(AuditEvent.account_id == account_id)
    if since is not None:
        statement = statement.where(AuditEvent.at >= since)
    if until is not None:
        statement = statement.where(AuditEvent.at < until)
    newest_first = statement.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
    return list(reversed(session.scalars(newest_first).all()))


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class Holding:
    """One principal holding one assignment at a moment, and through which source."""

    principal_type: str
    principal_name: str
    principal_id: str | None
    account_id: str
    permission_set_arn: str
    permission_set_name: str
    source_kind: SourceKind
    source_id: str
    grant_id: int
    activated_at: datetime
    revoked_at: datetime | None


def holders_at(
    session: Session, *, at: datetime, account_id: str | None = None,
    permission_set_arn: str | None = None,
) -> list[Holding]:
    """Who held which assignment at ``at``, from the grants' activation and revocation times.

    A grant counts from ``activated_at`` (AWS confirmed it) until ``revoked_at`` (the delete
    was confirmed); a revocation still failing counts as held, because it was.
    """
    # Columns, not ORM entities: "who had access" over a whole ledger reads every grant.
    statement = (
        select(Grant.principal_type, Grant.principal_name, Grant.principal_id,
               Grant.account_id, Grant.permission_set_arn,
               PermissionSet.name.label("permission_set_name"), Grant.source_kind,
               Grant.source_id, Grant.id.label("grant_id"), Grant.activated_at,
               Grant.revoked_at)
        .join(PermissionSet, PermissionSet.arn == Grant.permission_set_arn)
        .where(Grant.activated_at <= at,
               or_(Grant.revoked_at.is_(None), Grant.revoked_at > at))
        .order_by(Grant.account_id, PermissionSet.name, Grant.principal_type,
                  Grant.principal_name, Grant.id)
    )
    if account_id is not None:
        statement = statement.where(Grant.account_id == account_id)
    if permission_set_arn is not None:
        statement = statement.where(Grant.permission_set_arn == permission_set_arn)
    return [Holding(**{**row._asdict(), "principal_type": str(row.principal_type)})
            for row in session.execute(statement)]

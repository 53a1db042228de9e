"""The notification outbox: which events notify, and queueing them with the change itself.

``audit.record`` calls ``queue_for_audit`` for every event it writes: a notifiable action
also inserts one ``notifications_outbox`` row in the same session, so the notice exists
exactly when the change committed (a rolled-back change leaves no notice). Delivery happens
later (``tasks.notify``). Each row carries a stable ``event_key``, unique in the table, so the
same event is never queued twice (``INSERT ... ON CONFLICT DO NOTHING``):

- one-shot events of a subject: ``<event>:<target>`` (``request.approved:req-1a2b3c4d``,
  ``grant.revoked:42``); producers must pass the grant id / request id as ``target``;
- ``grant.expiring:<grant id>:<expires_at>``: an extended grant gets a new notice;
- repeatable events (``user.revoked``: revoke, restore, revoke again; ``scim.stopped`` /
  ``scim.resumed``: each SCIM outage and its end): keyed by the audit event id, each
  occurrence notifies.

``ACTION_ALIASES`` maps other producers' names for the same event (``grant.activated``).

Payloads are plain JSON (``event``, ``id``, ``user``, ``resources``, ``reason``,
``expires_at``, ...), shaped by pure functions; they never hold a secret.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from models.ledger.enums import SourceKind
from models.ledger.tables import AccessRequest, AuditEvent, Grant, NotificationOutbox, PermissionSet
from models.ledger.upsert import dialect_insert

NOTIFIABLE_EVENTS = frozenset({
    "request.created", "request.approved", "request.denied", "grant.active",
    "grant.expiring", "grant.revoked", "grant.stuck", "breakglass.used", "user.revoked",
    "scim.stopped", "scim.resumed", "access_list.owner_joined",
})
# Queued by a periodic sweep, never by an audit action: an access list's review coming due.
SWEEP_EVENTS = frozenset({"review.due"})
NOTICE_EVENTS = NOTIFIABLE_EVENTS | SWEEP_EVENTS  # every event a channel may receive
# Audit actions other producers use for one of the events above.
ACTION_ALIASES = {"grant.activated": "grant.active"}
REPEATABLE_EVENTS = frozenset({"user.revoked", "scim.stopped", "scim.resumed",
                               "access_list.owner_joined"})
EVENT_KEY_LENGTH = 255  # the column's size


@dataclass(frozen=True)
class Subject:
    """Whose access a notice is about, and what access."""

    user: str | None
    principal_type: str = "USER"
    resources: Sequence[str] = ()
    roles: Sequence[str] = ()
    reason: str | None = None
    expires_at: datetime | str | None = None
    request_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def notice_key(*, event: str, target: str, audit_id: int | None = None,
               expires_at: datetime | str | None = None) -> str:
    """The stable, unique id of one event (see the module docstring)."""
    if event == "grant.expiring":
        key = f"{event}:{target}:{_iso(expires_at)}"
    elif event in REPEATABLE_EVENTS:
        key = f"{event}:{target}:{audit_id}"
    else:
        key = f"{event}:{target}"
    return _fit(key)


def _fit(key: str) -> str:
    # Targets are names of at most 255 characters; a key that would not fit keeps its readable
    # start and a digest of the whole, which stays unique and stable.
    if len(key) <= EVENT_KEY_LENGTH:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{key[:EVENT_KEY_LENGTH - len(digest) - 1]}:{digest}"


def notice_payload(*, event: str, event_key: str, subject: Subject,
                   actor: str | None = None) -> dict[str, Any]:
    """The JSON document receivers get (without delivery-time fields)."""
    return {
        "event": event, "id": event_key, "user": subject.user,
        "principal_type": subject.principal_type, "resources": list(subject.resources),
        "roles": list(subject.roles), "reason": subject.reason,
        "expires_at": _iso(subject.expires_at), "request_id": subject.request_id,
        "actor": actor, **subject.extra,
    }


def _iso(moment: datetime | str | None) -> str | None:
    return moment.isoformat() if isinstance(moment, datetime) else moment


def request_subject(request: AccessRequest, *, reason: str | None) -> Subject:
    """The subject of an access-request event."""
    return Subject(user=request.user_name, resources=list(request.resources),
                   roles=list(request.roles), reason=reason or request.reason or None,
                   expires_at=request.expires_at, request_id=request.id,
                   extra={"break_glass": bool(request.break_glass)})


def grant_subject(grant: Grant, *, permission_set_name: str, reason: str | None) -> Subject:
    """The subject of a grant event: one principal, one ``<account-id>/<ps-name>`` resource."""
    request_id = grant.source_id if grant.source_kind is SourceKind.REQUEST else None
    return Subject(user=grant.principal_name, principal_type=str(grant.principal_type),
                   resources=[f"{grant.account_id}/{permission_set_name}"], reason=reason,
                   expires_at=grant.expires_at, request_id=request_id,
                   extra={"grant_id": grant.id})


def fallback_subject(event: AuditEvent) -> Subject:
    """What the audit event itself says, for targets that are neither a request nor a grant."""
    details = event.details or {}
    user = event.principal_name or (event.target if event.target_kind == "user" else None)
    return Subject(user=user, resources=list(details.get("resources") or ()),
                   roles=list(details.get("roles") or ()), reason=event.reason,
                   expires_at=details.get("expires_at"), request_id=event.request_id)


def subject_of(session: Session, event: AuditEvent) -> Subject:
    """Load the request or grant an audit event is about (falls back to the event's fields)."""
    if event.target_kind in ("access_request", "request"):
        request = session.get(AccessRequest, event.target)
        if request is not None:
            return request_subject(request, reason=event.reason)
    if event.target_kind == "grant" and event.target.isdigit():
        grant = session.get(Grant, int(event.target))
        if grant is not None:
            permission_set = session.get(PermissionSet, grant.permission_set_arn)
            name = permission_set.name if permission_set else grant.permission_set_arn
            return grant_subject(grant, permission_set_name=name, reason=event.reason)
    return fallback_subject(event)


def queue_notice(session: Session, *, event: str, event_key: str,
                 payload: dict[str, Any]) -> bool:
    """Insert one outbox row unless its ``event_key`` is already queued; True if inserted."""
    statement = (
        dialect_insert(session, NotificationOutbox)
        .values(event_key=event_key, event=event, payload=payload, channels_done=[])
        .on_conflict_do_nothing(index_elements=["event_key"])
        .returning(NotificationOutbox.id)
    )
    return session.execute(statement).first() is not None


def notice_event(action: str) -> str | None:
    """The notification event an audit action stands for, or None when it notifies nobody."""
    event = ACTION_ALIASES.get(action, action)
    return event if event in NOTIFIABLE_EVENTS else None


def queue_for_audit(session: Session, audit_event: AuditEvent) -> bool:
    """Queue the notice a just-written audit event calls for; False when none (or a repeat)."""
    event = notice_event(audit_event.action)
    if event is None:
        return False
    subject = subject_of(session, audit_event)
    key = notice_key(event=event, target=audit_event.target, audit_id=audit_event.id,
                     expires_at=subject.expires_at)
    payload = notice_payload(event=event, event_key=key, subject=subject,
                             actor=audit_event.actor)
    return queue_notice(session, event=event, event_key=key, payload=payload)

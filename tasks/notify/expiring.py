"""``grant.expiring``: one notice per active grant that expires within the lead time;
``review.due``: one per access list whose periodic review comes due (to its owners).

Run by the notify sweep every few seconds; idempotent through the outbox's unique event key
(``grant.expiring:<grant id>:<expires_at>``), so a grant is announced once per expiry time and
again only if an extension moves it. Each new notice is also written to the audit trail.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.ledger import audit, outbox
from models.ledger.base import database_time, db_now
from models.ledger.enums import GrantState
from models.ledger.tables import AccessList, Grant, PermissionSet
from tasks.access.reviews import review_due_at

SWEEP_ACTOR = "system:notify"


def expiring_grants(session: Session, *, lead_seconds: float) -> list[tuple[Grant, str]]:
    """ACTIVE grants expiring between now and now + lead (database clock), with their PS name."""
    statement = (
        select(Grant, PermissionSet.name)
        .join(PermissionSet, PermissionSet.arn == Grant.permission_set_arn)
        .where(Grant.state == GrantState.ACTIVE, Grant.expires_at.is_not(None),
               Grant.expires_at > db_now(), Grant.expires_at <= db_now(lead_seconds))
        .order_by(Grant.expires_at, Grant.id)
    )
    return [(grant, name) for grant, name in session.execute(statement)]


def queue_expiring_notices(*, session: Session, lead_seconds: float) -> int:
    """Queue the ``grant.expiring`` notices not queued yet; returns how many were new."""
    queued = 0
    for grant, permission_set_name in expiring_grants(session, lead_seconds=lead_seconds):
        subject = outbox.grant_subject(grant, permission_set_name=permission_set_name,
                                       reason="expires soon")
        key = outbox.notice_key(event="grant.expiring", target=str(grant.id),
                                expires_at=grant.expires_at)
        payload = outbox.notice_payload(event="grant.expiring", event_key=key,
                                        subject=subject, actor=SWEEP_ACTOR)
        # Insert first: only the sweep that queued the notice audits it (the audit hook's own
        # insert of the same key is then a no-op).
        if outbox.queue_notice(session, event="grant.expiring", event_key=key, payload=payload):
            audit.record(session, actor=SWEEP_ACTOR, action="grant.expiring",
                         target_kind="grant", target=str(grant.id), reason="expires soon",
                         principal_name=grant.principal_name, account_id=grant.account_id,
                         details={"expires_at": grant.expires_at.isoformat()
                                  if grant.expires_at else None})
            queued += 1
    return queued


def queue_review_due_notices(*, session: Session, lead_seconds: float = 86400.0) -> int:
    """Queue one ``review.due`` notice per list whose review is due within ``lead_seconds``
    (key ``review.due:<list>:<due at>``: a completed review moves the date, a new notice)."""
    now, queued = database_time(session), 0
    lists = session.scalars(select(AccessList).where(AccessList.recurrence_seconds.is_not(None)))
    for access_list in lists:
        due = review_due_at(access_list)
        if due is None or (due - now).total_seconds() > lead_seconds:
            continue
        subject = outbox.Subject(user=None, reason="periodic access review", extra={
            "access_list": access_list.name, "owners": list(access_list.owners),
            "due_at": due.isoformat()})
        key = outbox.notice_key(event="review.due", target=f"{access_list.name}:{due.isoformat()}")
        payload = outbox.notice_payload(event="review.due", event_key=key, subject=subject,
                                        actor=SWEEP_ACTOR)
        queued += outbox.queue_notice(session, event="review.due", event_key=key,
                                      payload=payload)
    return queued

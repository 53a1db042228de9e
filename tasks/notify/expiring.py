"""``grant.expiring``: one notice per active grant that expires within the lead time.

Run by the notify sweep every few seconds; idempotent through the outbox's unique event key
(``grant.expiring:<grant id>:<expires_at>``), so a grant is announced once per expiry time and
again only if an extension moves it. Each new notice is also written to the audit trail.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.ledger import audit, outbox
from models.ledger.base import db_now
from models.ledger.enums import GrantState
from models.ledger.tables import Grant, PermissionSet

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

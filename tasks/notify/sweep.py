"""The periodic notify work (beat task ``grantledger.notify.sweep``): queue, then deliver."""

from __future__ import annotations

import httpx
from sqlalchemy.orm import Session, sessionmaker

from models.ledger.db import transaction
from models.ports.runtime import SettingsView
from tasks.notify.delivery import DeliveryReport, deliver_due
from tasks.notify.expiring import queue_expiring_notices, queue_review_due_notices
from tasks.notify.slack import SlackPort


def notify_sweep(*, sessions: sessionmaker[Session], settings: SettingsView,
                 transport: httpx.BaseTransport | None = None,
                 slack: SlackPort | None = None) -> DeliveryReport:
    """Queue due ``grant.expiring`` and ``review.due`` notices, then deliver everything due."""
    with transaction(sessions) as session:
        queue_expiring_notices(session=session, lead_seconds=settings.expiring_notice_lead)
        queue_review_due_notices(session=session)
    return deliver_due(sessions=sessions, settings=settings, transport=transport, slack=slack)

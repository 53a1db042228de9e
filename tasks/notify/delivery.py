"""Delivering the outbox: claim due rows with a lease, send to every channel, settle.

A row is due when it is not delivered and ``next_attempt_at <= now()`` (database clock). The
claiming transaction locks due rows ``FOR UPDATE SKIP LOCKED`` (PostgreSQL; SQLite's one
writer at a time does the same) and moves ``next_attempt_at`` to now + lease before it
commits, so another deliverer skips them while they are being sent. Sending happens outside
any transaction. Settling is one conditional update fenced on that lease value: only the
deliverer that holds the claim marks the row. A row succeeds when every channel answered
2xx; channels that accepted it are remembered (``channels_done``) and not sent to again.
A failure retries with growing backoff, capped, forever; rows with many attempts are listed
by ``outbox_backlog``. With no channel configured rows are marked delivered with the outcome
"no channel configured", so the outbox does not grow without bound.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from models.ledger.base import db_now
from models.ledger.db import transaction
from models.ledger.tables import NotificationOutbox as Outbox
from models.ports.runtime import SettingsView
from tasks.notify.channels import Channel, ChannelAnswer, configured_channels
from tasks.notify.slack import CHANNEL as SLACK_APP
from tasks.notify.slack import SlackPort, SlackRoute, deliver_slack, plan_slack

log = logging.getLogger(__name__)

LEASE_SECONDS = 120.0  # well above one row's worst case: 2 channels x SEND_TIMEOUT phases
SEND_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
FIRST_RETRY_SECONDS = 5.0
MAX_RETRY_SECONDS = 300.0
STUCK_AFTER_ATTEMPTS = 10  # from here on a notice is listed as failing by outbox_backlog
CLAIM_BATCH = 50
NO_CHANNEL = "no channel configured"


@dataclass(frozen=True)
class ClaimedNotice:
    """An outbox row this deliverer holds until ``lease_until``."""

    id: int
    notice: dict[str, Any]
    channels_done: tuple[str, ...]
    attempts: int
    lease_until: datetime


@dataclass
class DeliveryReport:
    """What one ``deliver_due`` pass did."""

    claimed: int = 0
    delivered: int = 0
    retrying: int = 0
    errors: list[str] = field(default_factory=list)


def retry_delay(attempts: int) -> float:
    """Seconds before the next try after ``attempts`` failed ones: 5, 10, 20 ... capped at 300."""
    exponent = min(max(attempts - 1, 0), 16)
    return min(FIRST_RETRY_SECONDS * 2 ** exponent, MAX_RETRY_SECONDS)


def next_try(attempts: int, failed: Sequence[ChannelAnswer]) -> float:
    """Seconds to wait: what a rate-limited receiver asked for, else the backoff."""
    asked = [a.retry_after for a in failed if a.retry_after is not None]
    return max(asked) if asked else retry_delay(attempts)


def delivered_notice(payload: Mapping[str, Any], *, created_at: datetime) -> dict[str, Any]:
    """What receivers get: the stored payload plus when the event was queued."""
    return {**payload, "occurred_at": created_at.isoformat()}


def claim_due(session: Session, *, limit: int = CLAIM_BATCH,
              lease_seconds: float = LEASE_SECONDS) -> list[ClaimedNotice]:
    """Lock due rows, lease them to this caller (commit to publish the lease)."""
    due = (
        select(Outbox).where(Outbox.delivered_at.is_(None), Outbox.next_attempt_at <= db_now())
        .order_by(Outbox.next_attempt_at, Outbox.id).limit(limit)
        .with_for_update(skip_locked=True).execution_options(populate_existing=True)
    )
    rows = {row.id: row for row in session.scalars(due)}
    if not rows:
        return []
    leased = session.execute(
        update(Outbox).where(Outbox.id.in_(rows))
        .values(next_attempt_at=db_now(lease_seconds))
        .returning(Outbox.id, Outbox.next_attempt_at)
        .execution_options(synchronize_session=False)
    ).all()
    return [_claimed(rows[row_id], lease_until) for row_id, lease_until in leased]


def _claimed(row: Outbox, lease_until: datetime) -> ClaimedNotice:
    return ClaimedNotice(id=row.id, notice=delivered_notice(row.payload, created_at=row.created_at),
                         channels_done=tuple(row.channels_done or ()), attempts=row.attempts,
                         lease_until=lease_until)


def send(client: httpx.Client, channel: Channel, notice: Mapping[str, Any]) -> ChannelAnswer:
    """POST ``notice`` to one channel; never raises for a network failure."""
    message = channel.render(notice)
    started = time.monotonic()
    try:
        response = client.post(channel.url, content=message.body, headers=message.headers)
    except httpx.HTTPError as err:
        # The URL may be a credential (Slack): name the channel, never the address.
        detail = f"{type(err).__name__}: {err}".replace(channel.url, f"<{channel.name} url>")
        return ChannelAnswer(channel.name, False, None, time.monotonic() - started, detail)
    return ChannelAnswer(channel.name, response.is_success, response.status_code,
                         time.monotonic() - started, response.text[:200],
                         retry_after=retry_after(response))


def retry_after(response: httpx.Response) -> float | None:
    """The seconds a 429's Retry-After asks for (the delta-seconds form), or None."""
    value = response.headers.get("Retry-After", "")
    if response.status_code != 429 or not value.strip().isdigit():
        return None
    return float(value.strip())


def send_to_all(client: httpx.Client, channels: Sequence[Channel], claim: ClaimedNotice, *,
                sessions: sessionmaker[Session], settings: SettingsView,
                slack: SlackPort | None = None) -> list[ChannelAnswer]:
    """Send to every channel that takes this notice and has not accepted it yet."""
    answers: list[ChannelAnswer] = []
    for channel in channels:
        if channel.name in claim.channels_done or not channel.wants(claim.notice):
            continue
        if channel.name == SLACK_APP:
            answers += send_to_slack_app(slack, channel, claim, sessions=sessions,
                                         settings=settings)
        else:
            answers.append(send(client, channel, claim.notice))
    return answers


def send_to_slack_app(slack: SlackPort | None, channel: Channel, claim: ClaimedNotice, *,
                      sessions: sessionmaker[Session],
                      settings: SettingsView) -> list[ChannelAnswer]:
    """The Slack app's messages for one notice (several destinations, each remembered)."""
    if slack is None:
        return [ChannelAnswer(SLACK_APP, False, None, 0.0, "no Slack client in this process")]
    route = SlackRoute(review_channel=settings.slack_review_channel,
                       channel_events=channel.events, start_url=settings.sso_start_url)
    deliveries = plan_slack(sessions=sessions, notice=claim.notice, route=route)
    return deliver_slack(slack, sessions=sessions, deliveries=deliveries,
                         done=claim.channels_done)


def settle(session: Session, *, claim: ClaimedNotice, answers: Sequence[ChannelAnswer]) -> bool:
    """Record the answers; True when the notice is now delivered. No-op if the lease was lost."""
    done = sorted({*claim.channels_done, *(a.channel for a in answers if a.ok)})
    failed = [a for a in answers if not a.ok]
    values: dict[str, Any] = {"channels_done": done}
    if failed:
        values |= {"attempts": Outbox.attempts + 1, "next_attempt_at": db_now(
            next_try(claim.attempts + 1, failed)), "last_error": "; ".join(
            f"{a.channel}: {a.status or a.detail}" for a in failed)[:2000]}
    else:
        # per-destination answers of the Slack app are progress, not the outcome
        outcome = ", ".join(a.summary() for a in answers if ":" not in a.channel) or (
            "already accepted by every channel" if claim.channels_done else NO_CHANNEL)
        values |= {"delivered_at": db_now(), "outcome": outcome, "last_error": None}
    fenced = session.execute(
        update(Outbox).where(Outbox.id == claim.id, Outbox.delivered_at.is_(None),
                             Outbox.next_attempt_at == claim.lease_until)
        .values(**values).returning(Outbox.id).execution_options(synchronize_session=False)
    ).first()
    return fenced is not None and not failed


def deliver_due(*, sessions: sessionmaker[Session], settings: SettingsView,
                transport: httpx.BaseTransport | None = None,
                slack: SlackPort | None = None, limit: int = CLAIM_BATCH) -> DeliveryReport:
    """Deliver every due outbox row once (one claim batch of at most ``limit``); ``slack``:
    the Web API client of the Slack app channel (injected by the worker)."""
    channels = configured_channels(settings)
    with transaction(sessions) as session:
        claims = claim_due(session, limit=limit)
    report = DeliveryReport(claimed=len(claims))
    with httpx.Client(transport=transport, timeout=SEND_TIMEOUT) as client:
        for claim in claims:
            answers = send_to_all(client, channels, claim, sessions=sessions,
                                  settings=settings, slack=slack)
            with transaction(sessions) as session:
                delivered = settle(session, claim=claim, answers=answers)
            _count(report, claim, answers, delivered)
    return report


def _count(report: DeliveryReport, claim: ClaimedNotice, answers: Sequence[ChannelAnswer],
           delivered: bool) -> None:
    failed = [a for a in answers if not a.ok]
    if delivered:
        report.delivered += 1
    elif failed:
        report.retrying += 1
        errors = ", ".join(f"{a.channel}: {a.status or a.detail}" for a in failed)
        report.errors.append(f"notice {claim.notice['id']}: {errors}")
        log.warning("notice %s not delivered (attempt %d): %s", claim.notice["id"],
                    claim.attempts + 1, errors)


def outbox_backlog(session: Session) -> dict[str, Any]:
    """Undelivered notices at a glance, and the ones failing for many attempts."""
    undelivered = Outbox.delivered_at.is_(None)
    count, oldest = session.execute(
        select(func.count(), func.min(Outbox.created_at)).where(undelivered)).one()
    failing = session.scalars(
        select(Outbox).where(undelivered, Outbox.attempts >= STUCK_AFTER_ATTEMPTS)
        .order_by(Outbox.created_at).limit(20))
    return {"undelivered": count, "oldest_undelivered_at": oldest, "failing": [
        {"id": row.event_key, "event": row.event, "attempts": row.attempts,
         "last_error": row.last_error, "next_attempt_at": row.next_attempt_at}
        for row in failing]}

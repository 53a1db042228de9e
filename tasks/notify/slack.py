"""The Slack app channel: who gets which notice, and sending it through an injected client.

Routing (ops/decisions/slack.md):
- ``request.created``: a review message with Approve/Deny to every reviewer who may act
  (direct message) and to ``GRANTLEDGER_SLACK_REVIEW_CHANNEL``; each copy is remembered;
- ``request.approved`` / ``request.denied``: every copy updated in place, the requester told;
- ``grant.active`` / ``grant.expiring`` / ``grant.revoked``: the requester, directly;
- ``review.due``: the access list's owners, directly;
- any other event in the channel filter: the review channel.
Each destination is one delivery with a stable key; the outbox remembers the keys that
succeeded (``channels_done``), so a retry after a 429 sends only what is still missing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from models.errors import GrantledgerError, NotFound, SlackError
from models.ledger import tables
from models.ledger.db import transaction
from models.ledger.kv import read_state, write_state
from tasks.access.permissions import operator
from tasks.access.queries import emails_of
from tasks.access.requests import get_request, reviewers_of
from tasks.notify.channels import ChannelAnswer, slack_blocks
from tasks.notify.routing import PERSONAL_EVENTS
from tasks.notify.slack_messages import personal_message, review_due_message, review_message

Sessions = sessionmaker[Session]
CHANNEL = "slack-app"
NOTIFIER = operator("system:notify")  # reads requests to render them; decides nothing
DECISIONS = frozenset({"request.approved", "request.denied"})


class SlackPort(Protocol):
    """What the channel needs of Slack's Web API (workers.slack.web.SlackWeb implements it).
    Every method raises ``SlackError`` (with ``retry_after`` on HTTP 429)."""

    def direct_channel(self, *, email: str) -> str | None:
        """The direct-message conversation with the Slack user of ``email``; None if none."""

    def post(self, *, channel: str, message: Mapping[str, Any]) -> str:
        """Post ``message``; its timestamp (``ts``)."""

    def update(self, *, channel: str, ts: str, message: Mapping[str, Any]) -> None:
        """Replace the message at ``ts``."""


@dataclass(frozen=True)
class SlackDelivery:
    """One message to one place: a conversation, a person (by email) or an update."""

    key: str
    message: dict[str, Any] = field(repr=False)
    channel: str | None = None
    email: str | None = field(default=None, repr=False)
    ts: str | None = None
    copy_of: str | None = None  # the request whose review message this post is


@dataclass(frozen=True)
class SlackRoute:
    """The settings the routing reads."""

    review_channel: str | None
    channel_events: frozenset[str]
    start_url: str | None = None


def plan_slack(*, sessions: Sessions, notice: Mapping[str, Any],
               route: SlackRoute) -> list[SlackDelivery]:
    """Every message ``notice`` calls for (see the module docstring)."""
    event, request_id = str(notice["event"]), notice.get("request_id")
    if event == "request.created" and request_id and not notice.get("break_glass"):
        return review_posts(sessions=sessions, request_id=str(request_id), route=route)
    deliveries = []
    if event in DECISIONS and request_id:
        deliveries += review_updates(sessions=sessions, request_id=str(request_id))
    if event in DECISIONS | PERSONAL_EVENTS and notice.get("principal_type") == "USER":
        deliveries += to_people(sessions, [str(notice["user"])],
                                personal_message(notice, start_url=route.start_url))
    elif event == "review.due":
        deliveries += to_people(sessions, notice.get("owners") or [], review_due_message(notice))
    elif route.review_channel and event in route.channel_events and event not in DECISIONS:
        deliveries.append(SlackDelivery(f"channel:{route.review_channel}", slack_blocks(notice),
                                        channel=route.review_channel))
    return deliveries


def review_posts(*, sessions: Sessions, request_id: str,
                 route: SlackRoute) -> list[SlackDelivery]:
    """The review message to each reviewer who may act, and to the review channel."""
    try:
        message = review_message(
            get_request(sessions=sessions, viewer=NOTIFIER, request_id=request_id))
    except NotFound:
        return []  # deleted since: nothing to review
    posts = to_people(sessions, reviewers_of(sessions=sessions, request_id=request_id),
                      message, copy_of=request_id)
    if route.review_channel and "request.created" in route.channel_events:
        posts.append(SlackDelivery(f"channel:{route.review_channel}", message,
                                   channel=route.review_channel, copy_of=request_id))
    return posts


def review_updates(*, sessions: Sessions, request_id: str) -> list[SlackDelivery]:
    """Every remembered copy of the request's review message, re-rendered as it is now."""
    message = review_message(get_request(sessions=sessions, viewer=NOTIFIER, request_id=request_id))
    return [SlackDelivery(f"update:{channel}:{ts}", message, channel=channel, ts=ts)
            for channel, ts in review_copies(sessions, request_id)]


def to_people(sessions: Sessions, names: Iterable[str], message: dict[str, Any], *,
              copy_of: str | None = None) -> list[SlackDelivery]:
    """A direct message to each named user with an email (Slack knows people by email)."""
    emails = emails_of(sessions=sessions, names=names)
    return [SlackDelivery(f"dm:{name}", message, email=email, copy_of=copy_of)
            for name, email in sorted(emails.items())]


def deliver_slack(port: SlackPort, *, sessions: Sessions, deliveries: Sequence[SlackDelivery],
                  done: Iterable[str]) -> list[ChannelAnswer]:
    """Send the deliveries not done yet; one answer per attempt, and ``slack-app`` itself once
    all are done. Stops at a 429: the rest waits for the Retry-After Slack gave."""
    done, answers = set(done), []
    for delivery in deliveries:
        name = f"{CHANNEL}:{delivery.key}"
        if name in done:
            continue
        started = time.monotonic()
        try:
            detail = send_one(port, sessions=sessions, delivery=delivery)
        except GrantledgerError as err:
            retry_after = getattr(err, "retry_after", None)
            answers.append(ChannelAnswer(name, False, 429 if retry_after else None,
                                         time.monotonic() - started, err.message,
                                         retry_after=retry_after))
            if retry_after:
                break
            continue
        answers.append(ChannelAnswer(name, True, 200, time.monotonic() - started, detail))
    if all(a.ok for a in answers):
        answers.append(ChannelAnswer(CHANNEL, True, 200, 0.0, f"{len(deliveries)} messages"))
    return answers


def send_one(port: SlackPort, *, sessions: Sessions, delivery: SlackDelivery) -> str:
    """Deliver one message; what happened, in a word."""
    if delivery.ts and delivery.channel:
        port.update(channel=delivery.channel, ts=delivery.ts, message=delivery.message)
        return "updated"
    channel = delivery.channel or port.direct_channel(email=delivery.email or "")
    if channel is None:
        return "not in Slack"  # nobody to tell there; other surfaces still show it
    ts = port.post(channel=channel, message=delivery.message)
    if delivery.copy_of:
        remember_copy(sessions, delivery.copy_of, channel=channel, ts=ts)
    return "posted"


def refresh_review_messages(port: SlackPort, *, sessions: Sessions, request_id: str) -> int:
    """Re-render every copy of a request's review message now (after a click); how many.
    Errors are left to the outbox's own update of the decision."""
    updated = 0
    for delivery in review_updates(sessions=sessions, request_id=request_id):
        try:
            send_one(port, sessions=sessions, delivery=delivery)
            updated += 1
        except SlackError:
            continue
    return updated


def _copies_key(request_id: str) -> str:
    return f"slack.review:{request_id}"


def review_copies(sessions: Sessions, request_id: str) -> list[tuple[str, str]]:
    """Where the request's review message was posted: (conversation, ts) pairs."""
    with sessions() as session:
        return [(channel, ts) for channel, ts in read_state(session, _copies_key(request_id), [])]


def remember_copy(sessions: Sessions, request_id: str, *, channel: str, ts: str) -> None:
    """Add one posted copy to the request's list (row-locked: deliverers run concurrently)."""
    key = _copies_key(request_id)
    with transaction(sessions) as session:
        row = session.get(tables.KvState, key, with_for_update=True)
        copies = list(row.value) if row is not None else []
        if [channel, ts] not in copies:
            write_state(session, key, [*copies, [channel, ts]])

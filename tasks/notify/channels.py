"""Where notices go and what each receiver gets: pure rendering, no I/O.

Channels, each configured by its settings and taking only the events of its filter
(``tasks.notify.routing``):

- ``webhook`` (``GRANTLEDGER_NOTIFY_WEBHOOK_URL``): the notice as compact JSON, with
  ``X-Grantledger-Event``, ``Idempotency-Key`` (the event id: receivers dedupe on it) and,
  with ``GRANTLEDGER_NOTIFY_WEBHOOK_SECRET``, ``X-Grantledger-Signature: t=<unix>,v1=<hex>``:
  the HMAC-SHA256 of ``"<t>." + body`` (``verify_webhook`` is the receiver's recipe).
- ``slack`` (``GRANTLEDGER_NOTIFY_SLACK_URL``): a Slack incoming-webhook Block Kit message.
- ``slack-app`` (``GRANTLEDGER_SLACK_BOT_TOKEN``): messages to people through the Web API
  (``tasks.notify.slack``), sent by the injected Slack client.

URLs and the secret are kept out of ``repr`` and logs: a Slack webhook URL is a credential.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from models.ports.runtime import SettingsView
from tasks.notify.routing import (
    DEFAULT_SLACK_EVENTS,
    DEFAULT_WEBHOOK_EVENTS,
    event_filter,
)

SIGNATURE_HEADER = "X-Grantledger-Signature"
EVENT_HEADER = "X-Grantledger-Event"
IDEMPOTENCY_HEADER = "Idempotency-Key"
CHANNEL_SETTINGS = ("GRANTLEDGER_NOTIFY_WEBHOOK_URL", "GRANTLEDGER_NOTIFY_SLACK_URL")

HEADLINES = {
    "request.created": ":raising_hand: Access request {request_id} from {user}",
    "request.approved": ":white_check_mark: Access request {request_id} of {user} approved",
    "request.denied": ":no_entry: Access request {request_id} of {user} denied",
    "grant.active": ":key: {user} now holds {resources}",
    "grant.expiring": ":hourglass: Access of {user} to {resources} expires at {expires_at}",
    "grant.revoked": ":lock: {user} no longer holds {resources}",
    "grant.stuck": ":rotating_light: Revocation stuck: {user} still holds {resources}",
    "breakglass.used": ":rotating_light: Break-glass access for {user}: {resources}",
    "user.revoked": ":lock: All access of {user} revoked",
    "scim.stopped": ":rotating_light: SCIM pushes to Identity Center stopped: {reason}",
    "scim.resumed": ":white_check_mark: SCIM pushes to Identity Center resumed",
    "review.due": ":clipboard: Access review of {access_list} is due at {due_at}",
    "access_list.owner_joined": ":eyes: Owner {user} joined their own access list: {reason}",
}


@dataclass(frozen=True)
class ChannelAnswer:
    """What one receiver answered (or why it could not be reached)."""

    channel: str
    ok: bool
    status: int | None
    seconds: float
    detail: str
    retry_after: float | None = None  # the receiver's Retry-After (HTTP 429), seconds

    def summary(self) -> str:
        return f"{self.channel} {self.status if self.status is not None else self.detail}"


@dataclass(frozen=True)
class OutgoingMessage:
    """The exact bytes and headers one receiver is sent."""

    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Channel:
    """One configured receiver."""

    name: str  # "webhook", "slack" or "slack-app"
    url: str = field(repr=False)
    secret: str | None = field(default=None, repr=False)
    events: frozenset[str] = DEFAULT_WEBHOOK_EVENTS

    def render(self, notice: Mapping[str, Any]) -> OutgoingMessage:
        """The message this channel sends for ``notice``."""
        if self.name == "slack":
            return slack_message(notice)
        return webhook_message(notice, secret=self.secret)

    def wants(self, notice: Mapping[str, Any]) -> bool:
        """True when this channel takes the notice's event (``slack-app`` decides per event
        itself: requesters and owners get theirs whatever the channel filter says)."""
        return self.name == "slack-app" or str(notice["event"]) in self.events


def configured_channels(settings: SettingsView) -> list[Channel]:
    """The channels the settings configure, webhook first."""
    channels = []
    if settings.notify_webhook_url:
        secret = settings.notify_webhook_secret
        channels.append(Channel(
            "webhook", settings.notify_webhook_url, secret.get_secret_value() if secret else None,
            events=event_filter(settings.notify_webhook_events, DEFAULT_WEBHOOK_EVENTS,
                                setting="GRANTLEDGER_NOTIFY_WEBHOOK_EVENTS")))
    slack_events = event_filter(settings.notify_slack_events, DEFAULT_SLACK_EVENTS,
                                setting="GRANTLEDGER_NOTIFY_SLACK_EVENTS")
    if settings.notify_slack_url:
        channels.append(Channel("slack", settings.notify_slack_url, events=slack_events))
    if settings.slack_enabled:
        channels.append(Channel("slack-app", "", events=slack_events))
    return channels


def canonical_body(document: Mapping[str, Any]) -> bytes:
    """Compact, key-sorted UTF-8 JSON: the same notice always gives the same bytes."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


def sign(body: bytes, secret: str, *, timestamp: int | None = None) -> str:
    """The signature header value ``t=<unix>,v1=<hex>``: the HMAC-SHA256 of ``"<t>." + body``
    (the timestamp is signed with the body, so a captured delivery cannot be replayed later)."""
    moment = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{moment}.".encode() + body, hashlib.sha256)
    return f"t={moment},v1={digest.hexdigest()}"


def verify_webhook(body: bytes, header: str, secret: str, *, tolerance: float = 300.0,
                   now: float | None = None) -> bool:
    """The receiver's check (README, Notifications): the signature matches the exact body
    bytes and its timestamp is at most ``tolerance`` seconds away from ``now``."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    stamp = parts.get("t", "")
    if not stamp.isascii() or not stamp.isdigit() or "v1" not in parts:
        return False
    if abs((time.time() if now is None else now) - int(stamp)) > tolerance:
        return False
    return hmac.compare_digest(sign(body, secret, timestamp=int(stamp)),
                               f"t={stamp},v1={parts['v1']}")


def webhook_message(notice: Mapping[str, Any], *, secret: str | None,
                    timestamp: int | None = None) -> OutgoingMessage:
    """The generic webhook POST: the notice itself, signed when a secret is configured."""
    body = canonical_body(notice)
    headers = {"Content-Type": "application/json", EVENT_HEADER: str(notice["event"]),
               IDEMPOTENCY_HEADER: str(notice["id"])}
    if secret:
        headers[SIGNATURE_HEADER] = sign(body, secret, timestamp=timestamp)
    return OutgoingMessage(body=body, headers=headers)


def slack_message(notice: Mapping[str, Any]) -> OutgoingMessage:
    """The Slack incoming-webhook POST for ``notice``."""
    return OutgoingMessage(body=canonical_body(slack_blocks(notice)),
                           headers={"Content-Type": "application/json"})


def headline(notice: Mapping[str, Any]) -> str:
    """One line saying what happened (Slack emoji shortcodes included)."""
    template = HEADLINES.get(str(notice["event"]), "{event} for {user}")
    fields = {key: _shown(value) for key, value in notice.items()}
    fields.setdefault("resources", "-")
    return template.format_map(_Blank(fields))


def slack_blocks(notice: Mapping[str, Any]) -> dict[str, Any]:
    """A Block Kit message: headline, facts, what to do (for a new request), the event id."""
    title = escape(headline(notice))
    blocks: list[dict[str, Any]] = [section(f"*{title}*")]
    facts = _facts(notice)
    if facts:
        blocks.append({"type": "section", "fields": facts})
    if notice["event"] == "request.created" and notice.get("request_id"):
        blocks.append(section(approve_instructions(str(notice["request_id"]))))
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": escape(f"event {notice['event']} · id {notice['id']}")}]})
    return {"text": title, "blocks": blocks}


def approve_instructions(request_id: str) -> str:
    """How a reviewer approves: the exact CLI command and the API call."""
    command = f"grantledger request approve {request_id} --reviewer <you>"
    return (f"Approve with `{escape(command)}`\n"
            f"or the API: `POST /v1/requests/{escape(request_id)}/approve`")


def _facts(notice: Mapping[str, Any]) -> list[dict[str, str]]:
    shown = (("User", "user"), ("Resources", "resources"), ("Roles", "roles"),
             ("Reason", "reason"), ("Expires", "expires_at"), ("By", "actor"))
    return [{"type": "mrkdwn", "text": f"*{label}*\n{escape(_shown(notice[key]))}"}
            for label, key in shown if notice.get(key)]


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _shown(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value) or "-"
    return "-" if value is None else str(value)


def escape(text: str) -> str:
    # Slack's mrkdwn treats these three as control characters (links, mentions).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "-"

"""Where notices go and what each receiver gets: pure rendering, no I/O.

Two channels, each configured by one setting:

- ``webhook`` (``GRANTLEDGER_NOTIFY_WEBHOOK_URL``): the notice as compact JSON, with
  ``X-Grantledger-Event``, ``Idempotency-Key`` (the event id: receivers dedupe on it, since a
  retry after a lost answer sends the same notice again) and, when
  ``GRANTLEDGER_NOTIFY_WEBHOOK_SECRET`` is set, ``X-Grantledger-Signature: sha256=<hex>``,
  the HMAC-SHA256 of the exact body bytes.
- ``slack`` (``GRANTLEDGER_NOTIFY_SLACK_URL``): a Slack incoming-webhook Block Kit message;
  a new request names the exact CLI command and API call that approve it.

URLs and the secret are kept out of ``repr`` and logs: a Slack webhook URL is a credential.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workers.settings import Settings

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
    "access_list.owner_joined": ":eyes: Owner {user} joined their own access list: {reason}",
}


@dataclass(frozen=True)
class OutgoingMessage:
    """The exact bytes and headers one receiver is sent."""

    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Channel:
    """One configured receiver."""

    name: str  # "webhook" or "slack"
    url: str = field(repr=False)
    secret: str | None = field(default=None, repr=False)

    def render(self, notice: Mapping[str, Any]) -> OutgoingMessage:
        """The message this channel sends for ``notice``."""
        if self.name == "slack":
            return slack_message(notice)
        return webhook_message(notice, secret=self.secret)


def configured_channels(settings: Settings) -> list[Channel]:
    """The channels the settings configure, webhook first."""
    channels = []
    if settings.notify_webhook_url:
        secret = settings.notify_webhook_secret
        channels.append(Channel("webhook", settings.notify_webhook_url,
                                secret.get_secret_value() if secret else None))
    if settings.notify_slack_url:
        channels.append(Channel("slack", settings.notify_slack_url))
    return channels


def canonical_body(document: Mapping[str, Any]) -> bytes:
    """Compact, key-sorted UTF-8 JSON: the same notice always gives the same bytes."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


def sign(body: bytes, secret: str) -> str:
    """The signature header value: ``sha256=`` and the hex HMAC-SHA256 of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_message(notice: Mapping[str, Any], *, secret: str | None) -> OutgoingMessage:
    """The generic webhook POST: the notice itself, signed when a secret is configured."""
    body = canonical_body(notice)
    headers = {"Content-Type": "application/json", EVENT_HEADER: str(notice["event"]),
               IDEMPOTENCY_HEADER: str(notice["id"])}
    if secret:
        headers[SIGNATURE_HEADER] = sign(body, secret)
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
    title = _escape(headline(notice))
    blocks: list[dict[str, Any]] = [_section(f"*{title}*")]
    facts = _facts(notice)
    if facts:
        blocks.append({"type": "section", "fields": facts})
    if notice["event"] == "request.created" and notice.get("request_id"):
        blocks.append(_section(approve_instructions(str(notice["request_id"]))))
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": _escape(f"event {notice['event']} · id {notice['id']}")}]})
    return {"text": title, "blocks": blocks}


def approve_instructions(request_id: str) -> str:
    """How a reviewer approves: the exact CLI command and the API call."""
    command = f"grantledger request approve {request_id} --reviewer <you>"
    return (f"Approve with `{_escape(command)}`\n"
            f"or the API: `POST /v1/requests/{_escape(request_id)}/approve`")


def _facts(notice: Mapping[str, Any]) -> list[dict[str, str]]:
    shown = (("User", "user"), ("Resources", "resources"), ("Roles", "roles"),
             ("Reason", "reason"), ("Expires", "expires_at"), ("By", "actor"))
    return [{"type": "mrkdwn", "text": f"*{label}*\n{_escape(_shown(notice[key]))}"}
            for label, key in shown if notice.get(key)]


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _shown(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value) or "-"
    return "-" if value is None else str(value)


def _escape(text: str) -> str:
    # Slack's mrkdwn treats these three as control characters (links, mentions).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "-"

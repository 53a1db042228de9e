"""``grantledger notify test``: one sample notice, sent at once to every configured channel."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from models.errors import ConfigError, InputError
from models.ledger.outbox import NOTIFIABLE_EVENTS, Subject, notice_key, notice_payload
from models.ports.runtime import SettingsView
from tasks.notify.channels import CHANNEL_SETTINGS, configured_channels
from tasks.notify.delivery import SEND_TIMEOUT, ChannelAnswer, send

SAMPLE_REQUEST_ID = "req-00000000"


def sample_notice(event: str) -> dict[str, Any]:
    """A realistic notice of kind ``event`` with a fresh, recognisable id."""
    if event not in NOTIFIABLE_EVENTS:
        raise InputError(f"unknown notification event {event!r}",
                         hint="choose one of: " + ", ".join(sorted(NOTIFIABLE_EVENTS)))
    subject = Subject(user="grantledger-test", resources=["123456789012/ReadOnlyAccess"],
                      reason="grantledger notify test", request_id=SAMPLE_REQUEST_ID)
    key = notice_key(event=event, target=f"test-{uuid.uuid4().hex[:12]}")
    notice = notice_payload(event=event, event_key=key, subject=subject, actor="notify-test")
    return notice | {"test": True}


def send_test_notice(*, settings: SettingsView, event: str = "request.created",
                     transport: httpx.BaseTransport | None = None) -> list[ChannelAnswer]:
    """Send one sample notice to every configured channel now; the receivers' answers."""
    notice = sample_notice(event)  # a bad --event is the first thing to report
    # the Slack app has no URL to post a sample to: doctor checks its token (auth.test)
    channels = [c for c in configured_channels(settings) if c.name != "slack-app"]
    if not channels:
        raise ConfigError("no notification channel is configured",
                          hint=f"set {' or '.join(CHANNEL_SETTINGS)} (and "
                               "GRANTLEDGER_NOTIFY_WEBHOOK_SECRET to sign webhook bodies)")
    with httpx.Client(transport=transport, timeout=SEND_TIMEOUT) as client:
        return [send(client, channel, notice) for channel in channels]

"""Notification rules without I/O: event keys, payloads, signatures, Slack blocks, backoff."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from models.errors import ConfigError, InputError
from models.ledger.outbox import (
    EVENT_KEY_LENGTH,
    NOTIFIABLE_EVENTS,
    Subject,
    notice_event,
    notice_key,
    notice_payload,
)
from tasks.notify.channels import (
    canonical_body,
    configured_channels,
    headline,
    slack_blocks,
    verify_webhook,
    webhook_message,
)
from tasks.notify.delivery import MAX_RETRY_SECONDS, retry_delay
from tasks.notify.probe import sample_notice, send_test_notice
from workers.settings import Settings

EXPIRES = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def request_notice(event: str = "request.created") -> dict:
    subject = Subject(user="alice", resources=["111122223333/AdministratorAccess"],
                      roles=["db-admin"], reason="incident <42> & more",
                      expires_at=EXPIRES, request_id="req-1a2b3c4d")
    return notice_payload(event=event, event_key=f"{event}:req-1a2b3c4d", subject=subject,
                          actor="bob")


def test_event_keys_are_stable_and_say_when_an_event_may_repeat() -> None:
    assert notice_key(event="request.approved", target="req-1") == "request.approved:req-1"
    assert notice_key(event="grant.revoked", target="7", audit_id=99) == "grant.revoked:7"
    assert notice_key(event="grant.expiring", target="7", expires_at=EXPIRES) \
        == "grant.expiring:7:2026-12-01T09:30:00+00:00"
    assert notice_key(event="user.revoked", target="alice", audit_id=5) \
        != notice_key(event="user.revoked", target="alice", audit_id=6)


def test_actions_map_to_notification_events() -> None:
    assert notice_event("request.approved") == "request.approved"
    assert notice_event("grant.activated") == "grant.active"  # the sync engine's name
    assert notice_event("grant.failed") is None and notice_event("request.reviewed") is None


def test_an_overlong_key_is_shortened_but_stays_unique() -> None:
    first = notice_key(event="user.revoked", target="u" * 300, audit_id=1)
    second = notice_key(event="user.revoked", target="u" * 300, audit_id=2)
    assert len(first) == EVENT_KEY_LENGTH and first.startswith("user.revoked:uuu")
    assert first != second


def test_payload_has_the_documented_fields_as_json() -> None:
    notice = request_notice()
    assert {"event", "id", "user", "resources", "reason", "expires_at"} <= notice.keys()
    assert notice["expires_at"] == "2026-12-01T09:30:00+00:00"
    assert json.loads(canonical_body(notice)) == notice


def test_webhook_body_is_signed_with_a_timestamp_over_its_exact_bytes() -> None:
    notice = request_notice()
    message = webhook_message(notice, secret="s3cret", timestamp=1_790_000_000)
    expected = hmac.new(b"s3cret", b"1790000000." + message.body, hashlib.sha256).hexdigest()
    header = message.headers["X-Grantledger-Signature"]
    assert header == f"t=1790000000,v1={expected}"
    assert message.headers["X-Grantledger-Event"] == "request.created"
    assert message.headers["Idempotency-Key"] == "request.created:req-1a2b3c4d"
    assert verify_webhook(message.body, header, "s3cret", now=1_790_000_100)
    assert not verify_webhook(message.body + b" ", header, "s3cret", now=1_790_000_100)
    assert not verify_webhook(message.body, header, "other", now=1_790_000_100)
    # a captured delivery replayed later is refused, and so is one whose timestamp was moved
    assert not verify_webhook(message.body, header, "s3cret", now=1_790_000_301)
    moved = header.replace("t=1790000000", "t=1790000300")
    assert not verify_webhook(message.body, moved, "s3cret", now=1_790_000_301)
    assert not verify_webhook(message.body, "sha256=" + expected, "s3cret")
    assert "X-Grantledger-Signature" not in webhook_message(notice, secret=None).headers


def test_slack_names_the_approve_command_and_api_call_for_a_new_request() -> None:
    message = slack_blocks(request_notice())
    shown = json.dumps(message["blocks"])
    assert "grantledger request approve req-1a2b3c4d --reviewer &lt;you&gt;" in shown
    assert "POST /v1/requests/req-1a2b3c4d/approve" in shown
    assert "incident &lt;42&gt; &amp; more" in shown  # Slack control characters escaped
    assert message["text"] == ":raising_hand: Access request req-1a2b3c4d from alice"
    assert "--reviewer" not in json.dumps(slack_blocks(request_notice("request.denied")))


@pytest.mark.parametrize("event", sorted(NOTIFIABLE_EVENTS))
def test_every_event_has_a_headline_without_placeholders(event: str) -> None:
    line = headline(request_notice(event))
    assert "{" not in line
    # an outage or a list's review concerns no one user
    assert "alice" in line or event.startswith(("scim.", "review."))


def test_retries_back_off_then_stay_at_the_cap() -> None:
    delays = [retry_delay(attempt) for attempt in range(1, 12)]
    assert delays[:3] == [5.0, 10.0, 20.0]
    assert delays == sorted(delays) and delays[-1] == MAX_RETRY_SECONDS
    assert retry_delay(10_000) == MAX_RETRY_SECONDS


def test_channels_come_from_settings_and_hide_their_secrets() -> None:
    settings = Settings(notify_webhook_url="https://hooks.example/in",
                        notify_webhook_secret="topsecret",
                        notify_slack_url="https://hooks.slack.com/services/T/B/XYZ")
    webhook, slack = configured_channels(settings)
    assert (webhook.name, webhook.secret, slack.name) == ("webhook", "topsecret", "slack")
    assert "topsecret" not in repr(webhook) and "XYZ" not in repr(slack)
    assert configured_channels(Settings(notify_webhook_url=None, notify_slack_url=None)) == []


def test_notify_test_refuses_an_unknown_event_and_a_missing_channel() -> None:
    assert sample_notice("grant.stuck")["test"] is True
    with pytest.raises(InputError, match="grant.exploded"):
        sample_notice("grant.exploded")
    with pytest.raises(ConfigError) as caught:
        send_test_notice(settings=Settings(notify_webhook_url=None, notify_slack_url=None))
    assert "GRANTLEDGER_NOTIFY_WEBHOOK_URL" in caught.value.hint

"""The Slack app's pure parts: channel filters, review messages, the modal, the manifest,
and the settings it needs (no I/O; the process-level tests are tests/e2e/test_slack.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from models.errors import ConfigError, InputError
from models.ledger.outbox import NOTICE_EVENTS
from tasks.access.requests import RequestView
from tasks.access.requests_policy import RequestableAccount, RequestableView
from tasks.notify.channels import configured_channels
from tasks.notify.routing import DEFAULT_SLACK_EVENTS, event_filter
from tasks.notify.slack_messages import APPROVE_ACTION, DENY_ACTION, review_message
from workers.settings import Settings
from workers.slack.manifest import app_manifest
from workers.slack.modal import read_form, request_modal


def view(state: str = "PENDING", **changes: object) -> RequestView:
    fields = dict(id="req-1", user="alice", state=state, roles=[],
                  resources=["111111111111/Admin"], reason="fix <prod> & more", duration="1h",
                  required_approvals=2, approved_by=[], denied_by=[], break_glass=False,
                  created_at=datetime(2026, 12, 1, tzinfo=UTC), decided_at=None,
                  expires_at=None, promoted_to=None)
    return RequestView(**(fields | changes))


def test_channel_filters_default_to_no_per_grant_posts_and_refuse_unknown_events() -> None:
    assert "grant.active" not in DEFAULT_SLACK_EVENTS
    assert event_filter(" request.created , grant.stuck", DEFAULT_SLACK_EVENTS,
                        setting="X") == {"request.created", "grant.stuck"}
    assert event_filter("*", DEFAULT_SLACK_EVENTS, setting="X") == NOTICE_EVENTS
    with pytest.raises(ConfigError, match="GRANTLEDGER_NOTIFY_SLACK_EVENTS names unknown"):
        configured_channels(Settings(notify_slack_url="https://hooks.example/x",
                                     notify_slack_events="grant.actve"))
    webhook, slack = configured_channels(Settings(
        notify_webhook_url="https://example.com/hook", notify_slack_url="https://hooks.x/y",
        notify_webhook_events="user.revoked"))
    assert webhook.events == {"user.revoked"} and slack.events == DEFAULT_SLACK_EVENTS
    assert not slack.wants({"event": "grant.active"})


def test_review_message_has_buttons_while_pending_and_the_outcome_after() -> None:
    pending = json.dumps(review_message(view()))
    assert APPROVE_ACTION in pending and DENY_ACTION in pending
    assert "fix &lt;prod&gt; &amp; more" in pending and "0 of 2" in pending
    decided = json.dumps(review_message(view("APPROVED", approved_by=["bob", "carol"])))
    assert APPROVE_ACTION not in decided and "Approved* by bob, carol" in decided
    assert "Denied* by dave" in json.dumps(review_message(view("DENIED", denied_by=["dave"])))


def test_modal_lists_what_may_be_requested_and_reads_back_the_form() -> None:
    offer = RequestableView(
        user="alice", roles={"oncall": timedelta(hours=2)},
        accounts=[RequestableAccount("111111111111", "Prod", {"Admin": timedelta(hours=1)})],
        max_duration=timedelta(hours=2), approvals=1, break_glass=True,
        break_glass_max_duration=timedelta(hours=1))
    modal = request_modal(offer)
    shown = json.dumps(modal)
    assert "111111111111/Admin" in shown and "oncall" in shown and "at most 2h" in shown
    assert [b["block_id"] for b in modal["blocks"]] == [
        "resources", "roles", "duration", "reason", "break_glass"]
    values = {"resources": {"value": {"selected_options": [{"value": "111111111111/Admin"}]}},
              "duration": {"value": {"value": "30m"}}, "reason": {"value": {"value": " x "}},
              "break_glass": {"value": {"selected_options": []}}}
    form = read_form(values)
    assert (form.resources, form.roles, form.duration, form.reason, form.break_glass) == (
        ["111111111111/Admin"], [], timedelta(minutes=30), "x", False)
    with pytest.raises(InputError):
        read_form(values | {"duration": {"value": {"value": "soon"}}})


def test_manifest_points_slack_at_the_portal_url_and_needs_it() -> None:
    manifest = app_manifest(Settings(portal_url="https://gl.example.com/",
                                     slack_command="/aws"))
    url = "https://gl.example.com/slack/events"
    assert manifest["settings"]["interactivity"]["request_url"] == url
    assert manifest["features"]["slash_commands"][0] | {} == {
        **manifest["features"]["slash_commands"][0], "command": "/aws", "url": url}
    assert "users:read.email" in manifest["oauth_config"]["scopes"]["bot"]
    with pytest.raises(ConfigError, match="GRANTLEDGER_PORTAL_URL"):
        app_manifest(Settings())


def test_settings_warn_of_an_unsigned_webhook_and_refuse_slack_without_a_secret() -> None:
    unsigned = Settings(notify_webhook_url="https://example.com/hook")
    assert any("GRANTLEDGER_NOTIFY_WEBHOOK_SECRET" in w for w in unsigned.warnings())
    assert Settings(notify_webhook_url="https://example.com/hook",
                    notify_webhook_secret=SecretStr("s" * 40)).warnings() == []
    stack = dict(database_url="postgresql://x/y", broker_url="redis://x/0",
                 api_token=SecretStr("t" * 40), slack_bot_token=SecretStr("xoxb-1"))
    with pytest.raises(ConfigError, match="GRANTLEDGER_SLACK_SIGNING_SECRET"):
        Settings(**stack).check()
    Settings(**stack, slack_signing_secret=SecretStr("s" * 32)).check()


def test_a_process_warns_at_start_of_an_unsigned_webhook() -> None:
    import io
    import logging

    from workers.logs import configure

    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers, root.level
    try:
        configure(Settings(notify_webhook_url="https://example.com/hook"), stream=stream)
        assert "GRANTLEDGER_NOTIFY_WEBHOOK_SECRET" in stream.getvalue()
    finally:
        root.handlers, root.level = handlers, level


def test_the_slack_route_is_refused_without_a_signing_secret() -> None:
    from workers.runtime import Runtime
    from workers.slack.routes import slack_router

    embedded = Settings(slack_bot_token=SecretStr("xoxb-1"))  # check() lets the embedded mode by
    with pytest.raises(ConfigError, match="GRANTLEDGER_SLACK_SIGNING_SECRET"):
        slack_router(Runtime(embedded))


def test_slack_manifest_command_prints_the_manifest(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from workers.cli.main import app, register_commands
    from workers.settings import reset_settings_cache

    register_commands()
    monkeypatch.setenv("GRANTLEDGER_PORTAL_URL", "https://gl.example.com")
    reset_settings_cache()
    try:
        result = CliRunner().invoke(app, ["slack", "manifest"])
    finally:
        reset_settings_cache()
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["settings"]["interactivity"]["request_url"] == \
        "https://gl.example.com/slack/events"

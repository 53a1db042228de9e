"""Delivering the outbox to real HTTP receivers on 127.0.0.1: signed webhooks, Slack blocks,
retries through an outage, exactly-once acceptance under concurrent deliverers, and the
`grantledger notify test` command."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from models.domain import PrincipalType
from models.ledger import audit
from models.ledger.base import database_time, db_now
from models.ledger.db import transaction
from models.ledger.enums import GrantState, SourceKind
from models.ledger.tables import Grant, NotificationOutbox
from tasks.notify.delivery import (
    NO_CHANNEL,
    STUCK_AFTER_ATTEMPTS,
    deliver_due,
    outbox_backlog,
    retry_delay,
)
from tasks.notify.sweep import notify_sweep
from tests.integration.ledger_support import Catalog, run_together
from tests.integration.notify_receiver import Receiver
from workers.runtime import Runtime, set_runtime
from workers.settings import Settings

pytest_plugins = ["tests.integration.ledger_fixtures"]

SECRET = "whsec-test-0123456789"


@pytest.fixture
def outbox(sessions: sessionmaker[Session]) -> Iterator[sessionmaker[Session]]:
    """The ledger's sessions with an empty outbox (other tests' notices removed)."""
    with transaction(sessions) as session:
        session.execute(delete(NotificationOutbox))
    yield sessions
    with transaction(sessions) as session:
        session.execute(delete(NotificationOutbox))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver(secret=SECRET).start()
    yield started
    started.stop()


def settings_for(webhook: str | None = None, slack: str | None = None) -> Settings:
    return Settings(notify_webhook_url=webhook, notify_slack_url=slack,
                    notify_webhook_secret=SECRET if webhook else None)


def queue(sessions: sessionmaker[Session], count: int, *, event: str = "user.revoked") -> list[str]:
    """Record ``count`` notifiable events (committed); their event keys."""
    with transaction(sessions) as session:
        for index in range(count):
            audit.record(session, actor="bob", action=event, target_kind="user",
                         target=f"user-{index}", reason="offboarding",
                         principal_name=f"user-{index}", request_id="req-1234abcd")
        return [row.event_key for row in session.scalars(select(NotificationOutbox))]


def rows(sessions: sessionmaker[Session]) -> list[NotificationOutbox]:
    with transaction(sessions) as session:
        return list(session.scalars(select(NotificationOutbox).order_by(NotificationOutbox.id)))


def make_due(sessions: sessionmaker[Session]) -> None:
    """Let backoff time pass: every undelivered notice is due now."""
    with transaction(sessions) as session:
        session.execute(update(NotificationOutbox).where(NotificationOutbox.delivered_at.is_(None))
                        .values(next_attempt_at=db_now(-1)))


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_delivery_is_signed_and_names_the_event(outbox: sessionmaker[Session],
                                                receiver: Receiver) -> None:
    (key,) = queue(outbox, 1)
    report = deliver_due(sessions=outbox, settings=settings_for(receiver.url))
    assert (report.claimed, report.delivered, report.retrying) == (1, 1, 0)
    (request,) = receiver.received
    assert request.signature_ok is True
    assert request.headers["x-grantledger-event"] == "user.revoked"
    assert request.headers["idempotency-key"] == key
    body = request.document
    assert {k: body[k] for k in ("event", "id", "user", "resources", "reason", "expires_at")} \
        == {"event": "user.revoked", "id": key, "user": "user-0", "resources": [],
            "reason": "offboarding", "expires_at": None}
    (row,) = rows(outbox)
    assert row.delivered_at is not None and row.outcome == "webhook 200"
    assert deliver_due(sessions=outbox, settings=settings_for(receiver.url)).claimed == 0


def test_outage_then_errors_then_recovery_delivers_each_notice_once(
        outbox: sessionmaker[Session], receiver: Receiver) -> None:
    keys = queue(outbox, 3)
    settings = settings_for(receiver.url)
    receiver.stop()  # connection refused
    report = deliver_due(sessions=outbox, settings=settings)
    assert (report.retrying, report.delivered) == (3, 0)
    with transaction(outbox) as session:
        now = database_time(session)
    for row in rows(outbox):
        assert row.attempts == 1 and "ConnectError" in row.last_error
        assert 0 < (row.next_attempt_at - now).total_seconds() <= retry_delay(1)
    assert deliver_due(sessions=outbox, settings=settings).claimed == 0  # backing off
    receiver.start()  # same port
    receiver.answer_next(500, 500, 500, 500)
    for _ in range(10):
        make_due(outbox)
        deliver_due(sessions=outbox, settings=settings)
        if all(row.delivered_at for row in rows(outbox)):
            break
    assert receiver.accepted_ids() == Counter({key: 1 for key in keys})
    assert sum(row.attempts for row in rows(outbox)) == 3 + 4  # one per failed send
    assert all(row.last_error is None for row in rows(outbox))


def test_concurrent_deliverers_never_send_a_notice_twice(outbox: sessionmaker[Session],
                                                         receiver: Receiver) -> None:
    keys = queue(outbox, 40)
    settings = settings_for(receiver.url)
    deadline = time.monotonic() + 20

    def deliverer(_: int) -> int:
        delivered = 0
        while time.monotonic() < deadline and not all(r.delivered_at for r in rows(outbox)):
            delivered += deliver_due(sessions=outbox, settings=settings, limit=3).delivered
        return delivered

    assert sum(run_together(4, deliverer)) == 40
    assert receiver.accepted_ids() == Counter({key: 1 for key in keys})
    assert len(receiver.received) == 40


def test_slack_gets_blocks_with_the_approve_command_and_retries_alone(
        outbox: sessionmaker[Session], receiver: Receiver) -> None:
    slack = Receiver().start()
    try:
        (key,) = queue(outbox, 1, event="request.created")
        settings = settings_for(receiver.url, slack.url)
        slack.answer_next(503)
        assert deliver_due(sessions=outbox, settings=settings).retrying == 1
        make_due(outbox)
        assert deliver_due(sessions=outbox, settings=settings).delivered == 1
        assert len(receiver.received) == 1  # the webhook accepted it the first time
        assert [r.status for r in slack.received] == [503, 200]
        message = slack.received[-1].document
    finally:
        slack.stop()
    texts = json.dumps(message["blocks"])
    assert message["text"].startswith(":raising_hand: Access request req-1234abcd")
    assert "grantledger request approve req-1234abcd --reviewer &lt;you&gt;" in texts
    assert "POST /v1/requests/req-1234abcd/approve" in texts and key in texts
    assert rows(outbox)[0].channels_done == ["slack", "webhook"]


def test_without_channels_notices_are_settled_not_kept(outbox: sessionmaker[Session]) -> None:
    queue(outbox, 2)
    report = deliver_due(sessions=outbox, settings=settings_for())
    assert report.delivered == 2
    assert [row.outcome for row in rows(outbox)] == [NO_CHANNEL, NO_CHANNEL]


def test_a_failing_url_is_never_written_to_the_ledger(outbox: sessionmaker[Session]) -> None:
    queue(outbox, 1)
    url = f"http://127.0.0.1:{closed_port()}/services/T000/B000/XOXB-SECRET-PATH"
    deliver_due(sessions=outbox, settings=settings_for(slack=url))
    (row,) = rows(outbox)
    assert row.last_error.startswith("slack: ConnectError")
    assert "XOXB-SECRET-PATH" not in row.last_error and "XOXB" not in json.dumps(row.payload)


def test_a_notice_failing_for_long_is_listed_in_the_backlog(
        outbox: sessionmaker[Session]) -> None:
    first, _ = queue(outbox, 2)
    with transaction(outbox) as session:
        session.execute(update(NotificationOutbox).where(NotificationOutbox.event_key == first)
                        .values(attempts=STUCK_AFTER_ATTEMPTS, last_error="webhook: 500"))
    with transaction(outbox) as session:
        backlog = outbox_backlog(session)
    assert backlog["undelivered"] == 2 and backlog["oldest_undelivered_at"] is not None
    assert [(n["id"], n["last_error"]) for n in backlog["failing"]] == [(first, "webhook: 500")]


def test_sweep_announces_an_expiring_grant(outbox: sessionmaker[Session], committed: Catalog,
                                           receiver: Receiver) -> None:
    with transaction(outbox) as session:
        grant = Grant(principal_type=PrincipalType.USER, principal_name="carol",
                      account_id=committed.account_id, state=GrantState.ACTIVE,
                      permission_set_arn=committed.permission_set_arn,
                      source_kind=SourceKind.ROLE, source_id="oncall",
                      expires_at=database_time(session) + timedelta(minutes=5))
        session.add(grant)
    settings = settings_for(receiver.url).model_copy(update={"expiring_notice_lead": 900})
    assert notify_sweep(sessions=outbox, settings=settings).delivered >= 1
    assert notify_sweep(sessions=outbox, settings=settings).claimed == 0
    (notice,) = [r.document for r in receiver.received if r.document["user"] == "carol"]
    assert notice["event"] == "grant.expiring"
    assert notice["resources"] == [f"{committed.account_id}/AdministratorAccess"]


def test_the_beat_task_delivers_through_the_runtime(outbox: sessionmaker[Session],
                                                   ledger_url: str, receiver: Receiver) -> None:
    from workers.celery.tasks import notify_sweep as beat_task

    keys = queue(outbox, 2)
    runtime = Runtime(settings_for(receiver.url).model_copy(update={"database_url": ledger_url}))
    previous = set_runtime(runtime)
    try:
        assert beat_task.apply().get(timeout=30) == 2
    finally:
        set_runtime(previous)
        runtime.close()
    assert receiver.accepted_ids() == Counter(keys)


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GRANTLEDGER_NOTIFY_")}
    return subprocess.run([sys.executable, "-m", "workers.cli.main", "notify", "test", *args],
                          capture_output=True, text=True, timeout=60, env=clean | env)


def test_notify_test_command_reports_each_receiver(receiver: Receiver) -> None:
    result = run_cli("--event", "grant.expiring", "-o", "json",
                     GRANTLEDGER_NOTIFY_WEBHOOK_URL=receiver.url,
                     GRANTLEDGER_NOTIFY_WEBHOOK_SECRET=SECRET)
    assert result.returncode == 0, result.stderr
    (answer,) = json.loads(result.stdout)
    assert (answer["channel"], answer["ok"], answer["status"]) == ("webhook", True, 200)
    assert answer["ms"] >= 0
    (request,) = receiver.received
    assert request.signature_ok and request.document["event"] == "grant.expiring"
    receiver.answer_next(500)
    failed = run_cli(GRANTLEDGER_NOTIFY_WEBHOOK_URL=receiver.url)
    assert failed.returncode == 1 and "channel webhook failed" in failed.stderr


def test_notify_test_command_without_channels_fails_with_the_settings_to_set() -> None:
    result = run_cli()
    assert result.returncode == 1
    assert "GRANTLEDGER_NOTIFY_WEBHOOK_URL" in result.stderr
    assert "GRANTLEDGER_NOTIFY_SLACK_URL" in result.stderr
    assert run_cli("--event", "grant.exploded").returncode == 2

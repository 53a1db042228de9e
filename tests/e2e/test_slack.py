"""Slack end to end: a real `grantledger api` process serving /slack/events, real Celery
workers (sync, provisioning, the notify sweep) on Redis, a PostgreSQL ledger, the Sandbox,
and a local fake of Slack's Web API (tests/e2e/fake_slack.py) recording what we send.

Payloads are signed as Slack signs them; every refusal is checked to change nothing.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from celery import Celery
from sqlalchemy import delete, select, update

from models.domain import RequestState
from models.ledger import tables
from models.ledger.base import database_time
from models.ledger.db import transaction
from models.ledger.enums import GrantState, SourceKind
from tasks import events
from tasks.access import requests as rq
from tasks.access.permissions import operator, person_in
from tasks.notify.slack import SlackRoute, plan_slack
from tests.e2e.conftest import Workers, worker_environment
from tests.e2e.fake_slack import FakeSlack, button, signed, slash_command, view_submission
from tests.integration.sync_support import ACCOUNTS, World
from tests.stack_support import free_port
from tests.waiting import eventually
from workers.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SECRET = "slack-signing-secret-for-tests-0123456789"
REVIEW_CHANNEL = "CREVIEW"
STAGING_ADMIN = f"{ACCOUNTS['Staging']}/AdministratorAccess"
PEOPLE = {"UALICE": "alice@example.com", "UBOB": "bob@example.com",
          "UCAROL": "carol@example.com", "UDAVE": "dave@example.com",
          "USTRANGER": "stranger@elsewhere.example"}
REQUESTER = {"allow": {"request": {"account_assignments": [
    {"account": "*", "permission_set": "*"}], "max_duration": "4h"}}}
OPERATOR = operator("test")
REVIEWER = {"allow": {"review_requests": {"roles": ["*"]}}}


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack(PEOPLE)
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def slack_env(e2e_settings: Settings, slack: FakeSlack) -> dict[str, str]:
    return {**worker_environment(e2e_settings),
            "GRANTLEDGER_SLACK_BOT_TOKEN": "xoxb-test-token",
            "GRANTLEDGER_SLACK_SIGNING_SECRET": SECRET,
            "GRANTLEDGER_SLACK_API_URL": slack.api_url,
            "GRANTLEDGER_SLACK_REVIEW_CHANNEL": REVIEW_CHANNEL,
            "GRANTLEDGER_SSO_START_URL": "https://d-test.awsapps.com/start"}


@pytest.fixture(scope="module")
def slack_workers(slack_env: dict[str, str], e2e_app: Celery,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    running = Workers(slack_env, e2e_app, count=1, concurrency=2).start(
        tmp_path_factory.mktemp("slack-workers"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def api(slack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port, log = free_port(), tmp_path_factory.mktemp("slack-api") / "api.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.cli.main", "api", "--port", str(port)],
        cwd=REPO, env=slack_env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    try:
        eventually(answers, what="grantledger api started", timeout=30, tail=log.read_text)
        yield url
        assert "xoxb-test-token" not in log.read_text()  # the token never reaches a log
        assert SECRET not in log.read_text()
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def world(e2e_world: World, slack: FakeSlack, slack_workers: Workers) -> World:
    """alice may request anything, bob and carol review anything, dave neither."""
    with transaction(e2e_world.runtime.sessions) as session:
        session.execute(delete(tables.NotificationOutbox))
    e2e_world.add_request_roles(requester=REQUESTER, reviewer=REVIEWER)
    e2e_world.add_user("alice", roles=["requester"])
    e2e_world.add_user("bob", roles=["reviewer"])
    e2e_world.add_user("carol", roles=["reviewer"])
    e2e_world.add_user("dave")
    slack.clear()
    return e2e_world


def post(api: str, body: bytes, **signing: Any) -> httpx.Response:
    return httpx.post(f"{api}/slack/events", content=body, headers=signed(SECRET, body, **signing),
                      timeout=10)


def deliver(e2e_app: Celery, condition: Any, *, what: str, timeout: float = 30) -> Any:
    """Have the workers run the notify sweep (as beat does) until ``condition`` holds."""
    def swept() -> Any:
        e2e_app.send_task(events.NOTIFY_SWEEP)
        return condition()
    return eventually(swept, what=what, timeout=timeout, every=0.5)


def filed(world: World) -> str:
    alice = person_in(world.runtime.sessions, name="alice", via="test")
    return rq.create_request(sessions=world.runtime.sessions, actor=alice,
                             resources=[STAGING_ADMIN], reason="deploy fix").id


def request_state(world: World, request_id: str) -> tuple[RequestState, int]:
    with world.runtime.sessions() as session:
        reviews = session.scalars(select(tables.RequestReview).where(
            tables.RequestReview.request_id == request_id)).all()
        return session.get(tables.AccessRequest, request_id).state, len(reviews)


def refused(slack: FakeSlack, user: str, text: str) -> Any:
    return eventually(lambda: [c for c in slack.called("chat.postEphemeral", user=user)
                               if text in c.text()], what=f"refusal to {user}: {text}",
                      timeout=15)


def test_approve_button_grants_updates_every_copy_and_tells_the_requester(
        world: World, slack: FakeSlack, api: str, e2e_app: Celery) -> None:
    request_id = filed(world)
    copies = {"DUBOB", "DUCAROL", REVIEW_CHANNEL}  # the reviewers who may act, the channel
    deliver(e2e_app, lambda: {c.args["channel"] for c in slack.called("chat.postMessage")}
            >= copies, what="review messages posted")
    posted = slack.called("chat.postMessage")
    assert {c.args["channel"] for c in posted} == copies  # not alice, not dave
    assert all("grantledger_approve" in c.text() for c in posted)

    answer = post(api, button(user="UBOB", action="grantledger_approve", request_id=request_id,
                              channel="DUBOB"))
    assert answer.status_code == 200
    eventually(lambda: {c.args["channel"] for c in slack.called("chat.update")
                        if "Approved* by bob" in c.text()} == copies,
               what="every copy updated with the outcome", timeout=15)
    assert request_state(world, request_id) == (RequestState.APPROVED, 1)
    refused(slack, "UBOB", f"You approved request {request_id}")

    eventually(lambda: [g for g in world.grants(source_kind=SourceKind.REQUEST,
                                                source_id=request_id)
                        if g.state is GrantState.ACTIVE], what="grant ACTIVE", timeout=30)
    assert world.key("user:alice", "Staging", "AdministratorAccess") in world.aws_assignments()
    to_alice = deliver(e2e_app, lambda: [c.text() for c in slack.called(
        "chat.postMessage", channel="DUALICE")] if len(slack.called(
            "chat.postMessage", channel="DUALICE")) >= 2 else None,
        what="alice told of the approval and the active grant")
    assert any("approved" in text for text in to_alice)
    assert any("now holds" in text and "d-test.awsapps.com" in text for text in to_alice)
    # per-grant notices go to the requester, not the review channel
    assert not [c for c in slack.called("chat.postMessage", channel=REVIEW_CHANNEL)
                if "now holds" in c.text()]
    mine = post(api, slash_command(user="UALICE", text="mine"))
    assert "AdministratorAccess on 222222222222 (Staging) (3h5" in mine.text


def test_refusals_change_nothing(world: World, slack: FakeSlack, api: str,
                                 e2e_app: Celery) -> None:
    request_id = filed(world)
    approve = button(user="UBOB", action="grantledger_approve", request_id=request_id,
                     channel="DUBOB")
    assert post(api, approve, timestamp=int(time.time()) - 360).status_code == 401  # stale
    tampered = httpx.post(f"{api}/slack/events", content=approve.replace(b"UBOB", b"UCAROL"),
                          headers=signed(SECRET, approve), timeout=10)
    assert tampered.status_code == 401
    forged = httpx.post(f"{api}/slack/events", content=approve,
                        headers=signed("not-the-secret", approve), timeout=10)
    assert forged.status_code == 401
    for user, text in (("USTRANGER", "enrol"), ("UALICE", "cannot review their own"),
                       ("UDAVE", "may not review")):
        answer = post(api, button(user=user, action="grantledger_approve",
                                  request_id=request_id, channel=f"D{user}"))
        assert answer.status_code == 200
        refused(slack, user, text)
    assert request_state(world, request_id) == (RequestState.PENDING, 0)
    assert not slack.called("chat.update")

    for _ in range(2):  # a double click
        assert post(api, approve).status_code == 200
    texts = eventually(lambda: [c.text() for c in slack.called(
        "chat.postEphemeral", user="UBOB")] if len(slack.called(
            "chat.postEphemeral", user="UBOB")) == 2 else None,
        what="both clicks answered", timeout=15)
    assert sum("You approved" in t for t in texts) == 1
    assert sum(":no_entry:" in t for t in texts) == 1  # already reviewed / no longer PENDING
    assert request_state(world, request_id) == (RequestState.APPROVED, 1)


def test_slash_command_modal_files_a_request_and_mine_lists_grants(
        world: World, slack: FakeSlack, api: str) -> None:
    opened = post(api, slash_command(user="UALICE"))
    assert opened.status_code == 200
    [view] = eventually(lambda: slack.called("views.open"), what="modal opened", timeout=15)
    assert STAGING_ADMIN in view.text() and "Reason" in view.text()

    values = {"resources": {"value": {"selected_options": [{"value": STAGING_ADMIN}]}},
              "duration": {"value": {"value": "30m"}},
              "reason": {"value": {"value": "incident 42"}}}
    answer = post(api, view_submission(user="UALICE", values=values))
    assert answer.status_code == 200 and answer.json()["response_action"] == "update"
    [request] = rq.list_requests(sessions=world.runtime.sessions, viewer=OPERATOR,
                                 user="alice")
    assert (request.state, request.resources, request.reason, request.duration) == (
        "PENDING", [STAGING_ADMIN], "incident 42", "30m")
    assert request.id in answer.text

    too_long = post(api, view_submission(user="UALICE", values=values | {
        "duration": {"value": {"value": "soon"}}}))
    assert too_long.json()["response_action"] == "errors"
    assert "duration" in too_long.json()["errors"]
    stranger = post(api, view_submission(user="USTRANGER", values=values))
    assert stranger.json()["response_action"] == "errors"
    assert len(rq.list_requests(sessions=world.runtime.sessions, viewer=OPERATOR)) == 1

    mine = post(api, slash_command(user="UALICE", text="mine"))
    assert "holds no access" in mine.text
    unmapped = post(api, slash_command(user="USTRANGER"))
    assert "enrol" in unmapped.text and not slack.called("views.open", trigger_id="x")


def test_rate_limited_post_waits_for_retry_after_then_delivers_exactly_once(
        world: World, slack: FakeSlack, e2e_app: Celery) -> None:
    # the second post is refused: the first must not be sent again; 7 s > the 5 s backoff
    slack.rate_limit_next("chat.postMessage", retry_after=7, after=1)
    request_id = filed(world)
    copies = {"DUBOB", "DUCAROL", REVIEW_CHANNEL}
    deliver(e2e_app, lambda: {c.args["channel"] for c in slack.called("chat.postMessage")}
            == copies, what="review messages posted after the 429")
    [limited] = [c for c in slack.calls if c.status == 429]
    posted = slack.called("chat.postMessage")
    assert sorted(c.args["channel"] for c in posted) == sorted(copies)  # each exactly once
    assert posted[0].at < limited.at  # one went out before the 429
    assert min(c.at for c in posted[1:]) - limited.at >= 7.0  # Retry-After honoured
    with world.runtime.sessions() as session:
        row = session.scalar(select(tables.NotificationOutbox).where(
            tables.NotificationOutbox.event_key == f"request.created:{request_id}"))
        assert row.delivered_at is not None and row.attempts == 1


def test_personal_notices_go_to_the_person_and_due_reviews_to_the_owners(
        world: World, slack: FakeSlack, e2e_app: Celery) -> None:
    route = SlackRoute(review_channel=REVIEW_CHANNEL,
                       channel_events=frozenset({"grant.expiring", "grant.stuck"}))
    for event in ("grant.active", "grant.expiring", "grant.revoked"):
        notice = {"event": event, "id": f"{event}:1", "user": "alice", "principal_type": "USER",
                  "resources": [STAGING_ADMIN], "expires_at": None, "request_id": None}
        planned = plan_slack(sessions=world.runtime.sessions, notice=notice, route=route)
        assert [(d.key, d.email) for d in planned] == [("dm:alice", "alice@example.com")]
    stuck = {"event": "grant.stuck", "id": "grant.stuck:1", "user": "alice",
             "principal_type": "USER", "resources": [STAGING_ADMIN]}
    assert [d.key for d in plan_slack(sessions=world.runtime.sessions, notice=stuck,
                                      route=route)] == [f"channel:{REVIEW_CHANNEL}"]

    world.add_list("oncall", users=["alice"])
    with transaction(world.runtime.sessions) as session:
        session.execute(update(tables.AccessList).where(tables.AccessList.name == "oncall")
                        .values(owners=["carol"], recurrence_seconds=86400 * 30,
                                next_review_at=database_time(session)))
    [due] = deliver(e2e_app, lambda: [c for c in slack.called("chat.postMessage")
                                      if "Access review of oncall" in c.text()],
                    what="the owner told of the due review")
    assert due.args["channel"] == "DUCAROL"

"""The portal's sessions, CSRF and headers, in-process (TestClient) on the API tests'
PostgreSQL ledger. A session is the signed cookie the portal itself would set after an OIDC
sign-in, signed here with the configured GRANTLEDGER_SESSION_SECRET; the sign-in itself is
exercised against a real provider in tests/e2e/test_portal_browser.py."""

from __future__ import annotations

import json
import time
from base64 import b64encode
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner
from pydantic import SecretStr
from sqlalchemy import select

from models.errors import ConfigError
from models.ledger import tables
from models.ledger.db import transaction
from tests.integration.api_support import api_settings
from tests.integration.requests_support import World
from workers.api import create_app
from workers.portal.app import SESSION_COOKIE
from workers.portal.session import safe_next, session_fresh
from workers.runtime import Runtime
from workers.settings import Settings

pytest_plugins = ["tests.integration.api_fixtures"]
SECRET = "portal-test-" + "k" * 40
TOKEN = "csrf-test-token"


@pytest.fixture
def portal(api_runtime: Runtime, api_world: World) -> Iterator[TestClient]:
    settings = api_settings(api_runtime.settings.database_url, session_secret=SecretStr(SECRET),
                            session_idle_timeout=600, session_max_age=3600)
    with TestClient(create_app(Runtime(settings)), follow_redirects=False) as client:
        yield client


def signed_in(client: TestClient, user: str, *, idle: float = 0, age: float = 0) -> None:
    """Give ``client`` the session cookie of ``user`` (signed in ``age`` s ago, last seen
    ``idle`` s ago)."""
    with client.app.state.runtime.sessions() as ledger:  # the session keeps the user's id
        user_id = ledger.scalar(select(tables.User.id).where(tables.User.name == user))
    now = time.time()
    session = {"user_id": user_id or f"no-such-id-{user}", "signed_in": now - age,
               "seen": now - idle, "csrf": TOKEN}
    cookie = TimestampSigner(SECRET).sign(b64encode(json.dumps(session).encode()))
    client.cookies.set(SESSION_COOKIE, cookie.decode(), domain="testserver.local")


def test_a_signed_out_visit_is_sent_to_sign_in_and_back(portal: TestClient) -> None:
    answer = portal.get("/lists?every=1")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/auth/signin?next=%2Flists%3Fevery%3D1"


def test_a_suspended_users_session_ends_at_the_next_request(portal: TestClient,
                                                           api_runtime: Runtime) -> None:
    signed_in(portal, "alice")
    assert portal.get("/").status_code == 200
    with transaction(api_runtime.sessions) as session:
        session.get(tables.User, "alice").suspended = True
    assert portal.get("/").status_code == 303
    with transaction(api_runtime.sessions) as session:
        session.get(tables.User, "alice").suspended = False
    assert portal.get("/").status_code == 303  # the session is gone, not paused


def test_a_deleted_users_session_ends(portal: TestClient, api_runtime: Runtime) -> None:
    signed_in(portal, "carol")
    assert portal.get("/reviews").status_code == 200
    with transaction(api_runtime.sessions) as session:
        session.delete(session.get(tables.User, "carol"))
    assert portal.get("/reviews").status_code == 303


@pytest.mark.parametrize(("idle", "age"), [(601, 0), (0, 3601)])
def test_idle_and_old_sessions_end(portal: TestClient, idle: float, age: float) -> None:
    signed_in(portal, "alice", idle=idle, age=age)
    assert portal.get("/").status_code == 303


def test_a_post_without_its_csrf_token_is_refused_and_changes_nothing(
        portal: TestClient, api_runtime: Runtime) -> None:
    signed_in(portal, "bob")
    with api_runtime.sessions() as session:
        pending_before = session.scalars(select(tables.AccessRequest)).all()
    for form in ({"reason": "x", "resource": "111111111111/ReadOnlyAccess"},
                 {"reason": "x", "resource": "111111111111/ReadOnlyAccess",
                  "csrf_token": "forged"}):
        answer = portal.post("/request", data=form)
        assert answer.status_code == 403
        assert "security token" in answer.text
    with api_runtime.sessions() as session:
        assert session.scalars(select(tables.AccessRequest)).all() == pending_before


def test_local_sign_in_is_refused_outside_the_embedded_mode(portal: TestClient) -> None:
    signed_in(portal, "nobody-yet")  # only to carry a CSRF token
    answer = portal.post("/auth/local", data={"user": "alice", "csrf_token": TOKEN})
    assert answer.status_code == 403
    assert portal.get("/").status_code == 303


def test_pages_carry_security_headers_and_the_api_does_not(portal: TestClient) -> None:
    signed_in(portal, "alice")
    page = portal.get("/")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "content-security-policy" not in portal.get("/healthz").headers


def test_operators_pages_are_refused_to_others(portal: TestClient) -> None:
    signed_in(portal, "bob")
    assert portal.get("/status").status_code == 403
    assert portal.get("/audit/export").status_code == 403
    assert 'href="/status"' not in portal.get("/").text


def test_sign_in_comes_back_only_to_this_site() -> None:
    assert safe_next("/requests/r-1?x=1") == "/requests/r-1?x=1"
    for outside in ("//evil.example/", "https://evil.example/", "/\\evil.example", None, ""):
        assert safe_next(outside) == "/"


def test_session_lifetimes() -> None:
    assert session_fresh({"seen": 100, "signed_in": 0}, now=150, idle=60, absolute=200)
    assert not session_fresh({"seen": 100, "signed_in": 0}, now=161, idle=60, absolute=200)
    assert not session_fresh({"seen": 190, "signed_in": 0}, now=201, idle=60, absolute=200)


@pytest.mark.parametrize("secret", [None, "changeme", "short-secret"])
def test_oidc_needs_a_strong_session_secret_outside_the_embedded_mode(secret: str | None
                                                                      ) -> None:
    settings = Settings(database_url="postgresql+psycopg://x/y", broker_url="redis://x/0",
                        api_token=SecretStr("a" * 40), oidc_issuer="https://idp.example",
                        oidc_client_id="grantledger", portal_url="https://gl.example",
                        session_secret=SecretStr(secret) if secret else None)
    with pytest.raises(ConfigError, match="GRANTLEDGER_SESSION_SECRET"):
        settings.check()
    settings.session_secret = SecretStr("portal-session-secret-" + "0123456789abcdef" * 2)
    assert settings.check() is settings


def test_a_session_follows_the_user_id_not_a_reused_name(portal: TestClient, api_world: World,
                                                         api_runtime: Runtime) -> None:
    signed_in(portal, "carol")
    with transaction(api_runtime.sessions) as session:
        session.delete(session.get(tables.User, "carol"))
    api_world.add_user("carol", ["security-reviewer"])  # a new person with the old name
    assert portal.get("/").status_code == 303


def test_an_auditor_sees_audit_and_status(portal: TestClient, api_world: World) -> None:
    api_world.add_role("auditor", {"options": {"auditor": True}})
    api_world.add_user("erin", ["auditor"])
    signed_in(portal, "erin")
    assert 'href="/status"' in portal.get("/").text
    assert portal.get("/status").status_code == 200
    assert portal.get("/audit").status_code == 200
    assert portal.get("/audit", params={"at": "2030-01-01T00:00"}).status_code == 200


def test_reviews_lists_only_what_the_viewer_may_review(portal: TestClient,
                                                        api_world: World) -> None:
    from tasks.access.requests import create_request

    mine = create_request(sessions=api_world.sessions, actor=api_world.person("alice"),
                          roles=["ReadOnlyAccess-on-Production-111111111111"],
                          reason="debugging")
    signed_in(portal, "bob")  # a reviewer of it
    assert mine.id in portal.get("/reviews").text
    signed_in(portal, "dave")  # a developer: reviews nothing
    assert mine.id not in portal.get("/reviews").text
    signed_in(portal, "alice")  # their own
    assert mine.id not in portal.get("/reviews").text


def test_the_requester_cancels_a_pending_request_in_the_portal(portal: TestClient,
                                                              api_world: World) -> None:
    from tasks.access.requests import create_request

    mine = create_request(sessions=api_world.sessions, actor=api_world.person("alice"),
                          roles=["ReadOnlyAccess-on-Production-111111111111"],
                          reason="debugging")
    signed_in(portal, "bob")
    assert 'action="/requests/' + mine.id + '/cancel"' not in portal.get(
        f"/requests/{mine.id}").text
    assert portal.post(f"/requests/{mine.id}/cancel",
                       data={"csrf_token": TOKEN}).status_code == 403
    signed_in(portal, "alice")
    assert f'action="/requests/{mine.id}/cancel"' in portal.get(f"/requests/{mine.id}").text
    answer = portal.post(f"/requests/{mine.id}/cancel", data={"csrf_token": TOKEN})
    assert answer.status_code == 303
    with api_world.sessions() as session:
        request = session.get(tables.AccessRequest, mine.id)
        assert request.state == "DENIED"
        event = session.scalars(select(tables.AuditEvent).where(
            tables.AuditEvent.action == "request.cancelled",
            tables.AuditEvent.request_id == mine.id)).one()
        assert event.reason == "cancelled by the requester"

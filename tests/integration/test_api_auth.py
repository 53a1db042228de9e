"""API authentication and what each kind of token may do, on a real PostgreSQL ledger."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from models.ledger import tables
from models.ledger.base import Base
from tests.integration.api_support import ADMIN, api_settings, bearer, token_for
from workers.api import create_app
from workers.runtime import Runtime
from workers.settings import Settings

pytest_plugins = ["tests.integration.api_fixtures"]

ROLE_ON_STAGING = "PowerUserAccess-on-Staging-222222222222"


def test_v1_refuses_missing_and_bad_tokens(client: TestClient) -> None:
    for headers in ({}, bearer("not-a-token"), {"Authorization": "Basic YWxpY2U6cHc="}):
        answer = client.get("/v1/users", headers=headers)
        assert answer.status_code == 401, headers
        assert answer.headers["www-authenticate"] == "Bearer"
        assert "grantledger token create" in answer.json()["hint"]
    assert client.get("/v1/users", headers=ADMIN).status_code == 200


def test_probes_need_no_token(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "security" in spec["paths"]["/v1/users"]["get"]
    assert "security" not in spec["paths"]["/healthz"]["get"]


def test_embedded_mode_without_admin_token_refuses_every_call(tmp_path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'ledger.db'}",
                        broker_url="memory://", api_token=None)
    assert settings.embedded
    api_runtime = Runtime(settings)
    try:
        with TestClient(create_app(api_runtime)) as client:
            for headers in ({}, bearer(""), bearer("None"), bearer("changeme")):
                answer = client.get("/v1/status", headers=headers)
                assert answer.status_code == 401
                assert "GRANTLEDGER_API_TOKEN" in answer.json()["hint"]
    finally:
        api_runtime.close()


def test_user_token_cannot_use_admin_routes(client: TestClient, api_runtime: Runtime,
                                            api_world) -> None:
    alice = token_for(api_runtime, "alice")
    document = "kind: user\nmetadata: {name: mallory}\nspec: {email: m@example.com}\n"
    refused = [
        client.post("/v1/apply", content=document, headers={
            **alice, "Content-Type": "application/yaml"}),
        client.delete("/v1/users/bob", headers=alice),
        client.get("/v1/audit", headers=alice),
        client.post("/v1/sync", headers=alice),
        client.post("/v1/tokens", json={"user": "bob"}, headers=alice),
        client.get("/v1/tokens", params={"user": "bob"}, headers=alice),
    ]
    assert [answer.status_code for answer in refused] == [403] * len(refused)
    assert client.get("/v1/users/mallory", headers=ADMIN).status_code == 404
    assert client.get("/v1/users/bob", headers=ADMIN).status_code == 200


def test_a_request_is_always_the_callers(client: TestClient, api_runtime: Runtime,
                                        api_world) -> None:
    alice = token_for(api_runtime, "alice")
    body = {"roles": [ROLE_ON_STAGING], "reason": "deploy", "duration": "1h"}

    impersonating = client.post("/v1/requests", json={**body, "user": "bob"}, headers=alice)
    assert impersonating.status_code == 422
    assert impersonating.json()["errors"][0]["path"] == "body.user"

    created = client.post("/v1/requests", json=body, headers=alice)
    assert created.status_code == 201, created.text
    assert created.json()["user"] == "alice" and created.json()["state"] == "PENDING"
    assert client.post("/v1/requests", json=body, headers=ADMIN).status_code == 403


def test_reviews_count_only_where_the_caller_may_review(client: TestClient, api_runtime: Runtime,
                                                        api_world) -> None:
    alice, bob, dave = (token_for(api_runtime, name) for name in ("alice", "bob", "dave"))
    request_id = client.post("/v1/requests", headers=alice, json={
        "roles": [ROLE_ON_STAGING], "reason": "deploy"}).json()["id"]

    own = client.post(f"/v1/requests/{request_id}/approve", json={}, headers=alice)
    assert own.status_code == 403 and "own request" in own.json()["error"]
    not_a_reviewer = client.post(f"/v1/requests/{request_id}/approve", json={}, headers=dave)
    assert not_a_reviewer.status_code == 403
    assert client.post(f"/v1/requests/{request_id}/approve", json={},
                       headers=ADMIN).status_code == 403

    approved = client.post(f"/v1/requests/{request_id}/approve", json={"reason": "ok"},
                           headers=bob)
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "APPROVED" and approved.json()["approved_by"] == ["bob"]


def test_only_owners_change_members(client: TestClient, api_runtime: Runtime, api_world) -> None:
    api_world.add_list("sre", owners=["bob"], roles=[], members=["dave"])
    alice, bob = token_for(api_runtime, "alice"), token_for(api_runtime, "bob")
    path = "/v1/access-lists/sre/members"

    refused = client.post(path, json={"member": "alice"}, headers=alice)
    assert refused.status_code == 403 and "not an owner" in refused.json()["error"]
    assert client.delete(path, params={"member": "dave"}, headers=alice).status_code == 403

    added = client.post(path, json={"member": "alice", "reason": "joins"}, headers=bob)
    assert added.status_code == 200 and added.json()["action"] == "added"
    removed = client.delete(path, params={"member": "dave"}, headers=bob)
    assert removed.status_code == 200 and removed.json()["action"] == "removed"
    members = client.get("/v1/access-lists/sre", headers=alice).json()["members"]
    assert [m["name"] for m in members] == ["alice"]


def test_tokens_are_stored_hashed_and_never_audited(client: TestClient, api_runtime: Runtime,
                                                    api_world) -> None:
    created = client.post("/v1/tokens", json={"user": "alice", "label": "laptop"},
                          headers=ADMIN)
    assert created.status_code == 201
    plaintext = created.json()["token"]
    assert client.get("/v1/users/alice", headers=bearer(plaintext)).status_code == 200

    with api_runtime.sessions() as session:
        row = session.get(tables.ApiToken, created.json()["id"])
        assert row is not None and row.user_name == "alice" and row.last_used_at is not None
        assert row.token_hash == hashlib.sha256(plaintext.encode()).hexdigest()
        assert _tables_mentioning(session, row.token_hash) == ["api_tokens"]  # the scan works
        assert not _tables_mentioning(session, plaintext)
        actions = session.scalars(select(tables.AuditEvent.action).where(
            tables.AuditEvent.target_kind == "api_token")).all()
    assert "api_token.create" in actions
    listed = client.get("/v1/tokens", headers=bearer(plaintext)).json()["items"]
    assert [t["label"] for t in listed] == ["laptop"] and "token" not in listed[0]


def _tables_mentioning(session, needle: str) -> list[str]:
    """Every table with a row whose text form contains ``needle``."""
    found = []
    for table in Base.metadata.sorted_tables:
        hit = session.execute(text(
            f"SELECT 1 FROM {table.name} AS t WHERE t::text LIKE :needle LIMIT 1"),
            {"needle": f"%{needle}%"}).first()
        if hit:
            found.append(table.name)
    return found


def test_revoked_or_suspended_tokens_stop_working(client: TestClient, api_runtime: Runtime,
                                                  api_world) -> None:
    alice, bob = token_for(api_runtime, "alice"), token_for(api_runtime, "bob")
    alice_tokens = client.get("/v1/tokens", headers=alice).json()["items"]
    assert client.delete(f"/v1/tokens/{alice_tokens[0]['id']}", headers=bob).status_code == 404

    revoked = client.delete(f"/v1/tokens/{alice_tokens[0]['id']}", headers=alice)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert client.get("/v1/users", headers=alice).status_code == 401

    with api_runtime.sessions.begin() as session:
        session.get(tables.User, "bob").suspended = True
    assert client.get("/v1/users", headers=bob).status_code == 401


@pytest.fixture
def metrics_locked(api_db_url: str) -> Iterator[TestClient]:
    api_runtime = Runtime(api_settings(api_db_url, metrics_require_token=True))
    with TestClient(create_app(api_runtime)) as client:
        yield client
    api_runtime.close()


def test_metrics_can_require_the_admin_token(metrics_locked: TestClient) -> None:
    assert metrics_locked.get("/metrics").status_code == 401
    assert metrics_locked.get("/metrics", headers=bearer("wrong")).status_code == 401
    assert metrics_locked.get("/metrics", headers=ADMIN).status_code == 200

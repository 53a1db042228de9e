"""API routes over the real services and a real PostgreSQL ledger: apply, reads, requests,
access lists, audit, status, errors and pagination."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient

from tests.integration.api_support import ADMIN, token_for
from workers.runtime import Runtime

pytest_plugins = ["tests.integration.api_fixtures"]

YAML = {**ADMIN, "Content-Type": "application/yaml"}
USERS = """\
kind: user
metadata: {name: frank}
spec: {email: frank@example.com, given_name: Frank, family_name: Fox}
---
kind: user
metadata: {name: grace}
spec: {email: grace@example.com, given_name: Grace, family_name: Gray}
"""
STAGING_ADMIN = "222222222222/AdministratorAccess"


def test_apply_yaml_then_dry_run_and_read_back(client: TestClient, api_world) -> None:
    dry = client.post("/v1/apply", params={"dry_run": True}, content=USERS, headers=YAML)
    assert dry.status_code == 200 and dry.json()["dry_run"] is True
    assert {c["action"] for c in dry.json()["changes"]} == {"created"}
    assert client.get("/v1/users/frank", headers=ADMIN).status_code == 404

    applied = client.post("/v1/apply", content=USERS, headers=YAML)
    assert applied.status_code == 200, applied.text
    assert client.get("/v1/users/frank", headers=ADMIN).json()["email"] == "frank@example.com"
    again = client.post("/v1/apply", content=USERS, headers=YAML).json()["changes"]
    assert {c["action"] for c in again} == {"unchanged"}


def test_apply_json_documents(client: TestClient, api_world) -> None:
    document = {"kind": "user", "metadata": {"name": "heidi"}, "spec": {
        "email": "heidi@example.com", "given_name": "Heidi", "family_name": "Hart",
        "roles": ["developer"]}}
    applied = client.post("/v1/apply", json={"documents": [document]}, headers=ADMIN)
    assert applied.status_code == 200, applied.text
    assert client.get("/v1/users/heidi", headers=ADMIN).json()["roles"] == ["developer"]


def test_bad_documents_are_422_with_file_line_and_field(client: TestClient, api_world) -> None:
    bad = USERS.replace("given_name: Grace", "given_nam: Grace")
    answer = client.post("/v1/apply", content=bad, headers=YAML)
    assert answer.status_code == 422
    located = {(p["file"], p["line"], p["path"]) for p in answer.json()["errors"]}
    assert ("request-body", 7, "spec.given_nam") in located
    assert client.get("/v1/users/frank", headers=ADMIN).status_code == 404  # all or nothing

    unknown_role = {"kind": "user", "metadata": {"name": "ivan"}, "spec": {
        "email": "ivan@example.com", "given_name": "Ivan", "family_name": "Ives",
        "roles": ["nope"]}}
    answer = client.post("/v1/apply", json={"documents": [unknown_role]}, headers=ADMIN)
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["file"] == "documents[0]"
    assert answer.json()["errors"][0]["path"] == "spec.roles[0]"

    assert client.post("/v1/apply", content=b"{", headers=ADMIN | {
        "Content-Type": "application/json"}).status_code == 422
    assert client.post("/v1/apply", content=b"x", headers=ADMIN | {
        "Content-Type": "image/png"}).status_code == 415


def test_invalid_bodies_and_queries_name_the_field(client: TestClient, api_runtime: Runtime,
                                                   api_world) -> None:
    alice = token_for(api_runtime, "alice")
    answer = client.post("/v1/requests", headers=alice, json={
        "resources": [STAGING_ADMIN], "reason": "x", "duration": "forever"})
    assert answer.status_code == 422
    assert [p["path"] for p in answer.json()["errors"]] == ["body.duration"]
    too_long = client.post("/v1/requests", headers=alice, json={
        "resources": [STAGING_ADMIN], "reason": "x", "duration": "99999999999d"})
    assert too_long.status_code == 422
    assert client.get("/v1/users", params={"limit": 1001}, headers=ADMIN).status_code == 422
    assert client.get("/v1/audit", params={"account": "12"}, headers=ADMIN).status_code == 422


def test_list_routes_paginate(client: TestClient, api_world) -> None:
    everyone = client.get("/v1/users", headers=ADMIN).json()
    assert everyone["total"] == 4 and everyone["limit"] == 100
    second = client.get("/v1/users", params={"limit": 2, "offset": 1}, headers=ADMIN).json()
    assert [u["name"] for u in second["items"]] == ["bob", "carol"]
    assert second["total"] == 4


def test_errors_map_to_statuses(client: TestClient, api_runtime: Runtime, api_world) -> None:
    assert client.get("/v1/roles/nope", headers=ADMIN).status_code == 404
    assert client.get("/v1/requests/req-nope", headers=ADMIN).status_code == 404
    assert client.delete("/v1/access-lists/nope", headers=ADMIN).status_code == 404
    refused = client.post("/v1/requests", headers=token_for(api_runtime, "alice"), json={
        "resources": ["111111111111/BillingAccess"], "reason": "audit"})
    assert refused.status_code == 403
    assert "BillingAccess" in refused.json()["error"]


def test_request_lifecycle_over_http(client: TestClient, api_runtime: Runtime, api_world) -> None:
    api_world.add_list("staging-admins", owners=["bob"],
                   roles=["AdministratorAccess-on-Staging-222222222222"])
    alice, bob = token_for(api_runtime, "alice"), token_for(api_runtime, "bob")
    offer = client.get("/v1/requestable", headers=alice).json()
    assert offer["user"] == "alice"
    assert "AdministratorAccess" in {ps for account in offer["accounts"]
                                     for ps in account["permission_sets"]}

    request_id = client.post("/v1/requests", headers=alice, json={
        "resources": [STAGING_ADMIN], "reason": "release", "duration": "1h"}).json()["id"]
    approved = client.post(f"/v1/requests/{request_id}/approve", json={}, headers=bob).json()
    assert approved["state"] == "APPROVED" and approved["expires_at"] is not None
    extended = client.post(f"/v1/requests/{request_id}/extend", json={"duration": "1h"},
                           headers=bob)
    assert extended.status_code == 200
    assert extended.json()["expires_at"] > approved["expires_at"]
    promoted = client.post(f"/v1/requests/{request_id}/promote",
                           json={"access_list": "staging-admins"}, headers=bob).json()
    assert promoted["state"] == "PROMOTED" and promoted["promoted_to"] == "staging-admins"

    denied_id = client.post("/v1/requests", headers=alice, json={
        "resources": [STAGING_ADMIN], "reason": "again"}).json()["id"]
    denied = client.post(f"/v1/requests/{denied_id}/deny", json={"reason": "no"}, headers=bob)
    assert denied.json()["state"] == "DENIED"
    mine = client.get("/v1/requests", params={"user": "alice", "state": "DENIED"},
                      headers=alice).json()
    assert [r["id"] for r in mine["items"]] == [denied_id]


def test_the_requester_cancels_a_pending_request_over_http(client: TestClient,
                                                           api_runtime: Runtime, api_world) -> None:
    alice, bob = token_for(api_runtime, "alice"), token_for(api_runtime, "bob")
    request_id = client.post("/v1/requests", headers=alice, json={
        "resources": [STAGING_ADMIN], "reason": "release"}).json()["id"]
    assert client.post(f"/v1/requests/{request_id}/cancel", headers=bob).status_code == 403
    assert client.post(f"/v1/requests/{request_id}/cancel", headers=ADMIN).status_code == 403
    cancelled = client.post(f"/v1/requests/{request_id}/cancel", headers=alice)
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "DENIED"
    again = client.post(f"/v1/requests/{request_id}/cancel", headers=alice)
    assert again.status_code == 403  # only while PENDING


def test_owner_reviews_an_access_list(client: TestClient, api_runtime: Runtime, api_world) -> None:
    api_world.add_list("sre", owners=["bob"], roles=[], members=["alice", "dave"],
                   recurrence_seconds=86400)
    path = "/v1/access-lists/sre/reviews"
    body = {"remove": ["dave"], "notes": "quarterly"}
    assert client.post(path, json=body, headers=token_for(api_runtime, "alice")).status_code == 403
    assert client.post(path, json=body, headers=ADMIN).status_code == 403
    review = client.post(path, json=body, headers=token_for(api_runtime, "bob"))
    assert review.status_code == 201, review.text
    assert review.json()["removed"] == ["dave"] and review.json()["next_review_at"]


def test_audit_trail_and_holders_at(client: TestClient, api_runtime: Runtime, api_world) -> None:
    # The audit trail outlives each test's wipe: a name no other test uses.
    client.post("/v1/apply", content=USERS.replace("frank", "judy"), headers=YAML)
    trail = client.get("/v1/audit", params={"user": "judy"}, headers=ADMIN).json()["items"]
    assert [(e["action"], e["target"]) for e in trail] == [("resource.created", "judy")]
    newest = client.get("/v1/audit", params={"limit": 1}, headers=ADMIN).json()["items"]
    older = client.get("/v1/audit", params={"limit": 1, "offset": 1}, headers=ADMIN).json()
    assert newest[0]["id"] > older["items"][0]["id"]

    at = datetime.now(UTC).isoformat()
    holders = client.get("/v1/audit", params={"at": at, "account": "222222222222"},
                         headers=ADMIN)
    assert holders.status_code == 200 and holders.json()["items"] == []
    theirs = client.get("/v1/audit", params={"at": at, "user": "frank"}, headers=ADMIN)
    assert theirs.status_code == 200 and theirs.json()["items"] == []
    assert client.get("/v1/audit", params={"at": at, "since": at},
                      headers=ADMIN).status_code == 422


def test_status_is_the_admins(client: TestClient, api_runtime: Runtime, api_world) -> None:
    assert client.get("/v1/status", headers=token_for(api_runtime, "alice")).status_code == 403
    status = client.get("/v1/status", headers=ADMIN)
    assert status.status_code == 200
    assert {"grants_by_state", "stuck_revocations", "queues"} <= set(status.json())

"""The API over the sync engine and the catalog: plan (computed, nothing applied), grants and
operations after a real sync against an in-process Sandbox, accounts / permission sets /
assignments. Uses the sync tests' world (PostgreSQL ledger + Sandbox, per module)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.integration.api_support import bearer, token_for
from tests.integration.sync_support import World
from workers.api import create_app

pytest_plugins = ["tests.integration.sync_fixtures"]


@pytest.fixture
def api(sync_world: World) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """A client on the sync world's runtime, and the admin headers of its settings."""
    token = sync_world.runtime.settings.api_token
    assert token is not None
    with TestClient(create_app(sync_world.runtime)) as client:
        yield client, bearer(token.get_secret_value())


def _alice_reads_production(world: World) -> None:
    world.add_role("prod-reader", allow=[("Production", "ReadOnlyAccess")])
    world.add_user("alice", roles=["prod-reader"])


def test_plan_shows_the_changes_and_applies_nothing(api, sync_world: World) -> None:
    client, admin = api
    _alice_reads_production(sync_world)

    answer = client.get("/v1/plan", headers=admin)

    assert answer.status_code == 200, answer.text
    assert [(c["change"], c["principal"], c["permission_set"])
            for c in answer.json()["changes"]] == [("scim_create_user", "USER:alice", None),
                                                   ("create", "USER:alice", "ReadOnlyAccess")]
    assert answer.json()["drift_mode"]["mode"] == "report"
    assert sync_world.grants() == [] and sync_world.aws_assignments() == set()
    targeted = client.get("/v1/plan", params={"user": "nobody-else"}, headers=admin).json()
    assert [c for c in targeted["changes"] if c["account"]] == []  # no assignment of alice
    assert client.get("/v1/plan", headers=token_for(sync_world.runtime, "alice")
                      ).status_code == 403


def test_grants_and_operations_after_a_sync(api, sync_world: World) -> None:
    client, admin = api
    _alice_reads_production(sync_world)
    sync_world.sync()

    grants = client.get("/v1/grants", params={"user": "alice"}, headers=admin).json()
    assert [(g["principal"], g["state"]) for g in grants["items"]] == [("USER:alice", "ACTIVE")]
    assert client.get("/v1/grants", params={"state": "FAILED"},
                      headers=admin).json()["items"] == []
    operations = client.get("/v1/operations", params={"state": "SUCCEEDED"},
                            headers=admin).json()
    assert operations["total"] >= 1
    assert all(o["request_id"] for o in operations["items"])
    assert client.get("/v1/grants", params={"state": "GONE"}, headers=admin).status_code == 422


def test_catalog_routes(api, sync_world: World) -> None:
    client, admin = api
    accounts = client.get("/v1/accounts", headers=admin).json()["items"]
    assert {a["name"] for a in accounts} == {"Production", "Staging"}
    assert client.get("/v1/accounts/Staging", headers=admin).json()["id"] == "222222222222"

    arn = sync_world.arn("ReadOnlyAccess")
    assert client.get(f"/v1/permission-sets/{arn}", headers=admin).json()["name"] == \
        "ReadOnlyAccess"
    assignment = client.get("/v1/assignments/111111111111/ReadOnlyAccess", headers=admin)
    assert assignment.status_code == 200
    assert assignment.json()["system_role"] == "ReadOnlyAccess-on-Production-111111111111"
    assert client.get("/v1/assignments", params={"limit": 2},
                      headers=admin).json()["total"] == 6
    assert client.get("/v1/accounts/nope", headers=admin).status_code == 404

"""What the API takes in: free text without terminal controls, datetimes that fit in UTC,
JSON booleans, ASCII durations, and refusals that name API fields (never CLI flags)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.integration.api_support import ADMIN, token_for
from workers.runtime import Runtime

pytest_plugins = ["tests.integration.api_fixtures"]

STAGING_ADMIN = "222222222222/AdministratorAccess"
BEYOND_9999 = "9999-12-31T23:59:59-14:00"
BEFORE_YEAR_1 = "0001-01-01T00:00:00+14:00"


def problems(answer) -> list[str]:
    return [problem["path"] for problem in answer.json()["errors"]]


def test_control_characters_in_free_text_are_422_naming_the_field(
        client: TestClient, api_runtime: Runtime, api_world) -> None:
    alice = token_for(api_runtime, "alice")
    answer = client.post("/v1/requests", headers=alice, json={
        "resources": [STAGING_ADMIN], "reason": "deploy \x1b[31mURGENT\x1b[0m"})
    assert answer.status_code == 422 and problems(answer) == ["body.reason"]
    assert "control character" in answer.json()["errors"][0]["message"]
    api_world.add_list("sre", owners=["bob"], roles=[])
    added = client.post("/v1/access-lists/sre/members", headers=token_for(api_runtime, "bob"),
                        json={"member": "alice", "reason": "on call\x9b2J"})
    assert added.status_code == 422 and problems(added) == ["body.reason"]
    titled = client.post("/v1/apply", headers={**ADMIN, "Content-Type": "application/yaml"},
                         content="kind: access_list\nmetadata: {name: x}\n"
                                 "spec: {title: \"T\\e[2J\"}\n")
    assert titled.status_code == 422
    assert [(p["line"], p["path"]) for p in titled.json()["errors"]] == [(3, "spec.title")]


def test_datetimes_beyond_utc_years_are_422_naming_the_field(
        client: TestClient, api_runtime: Runtime, api_world) -> None:
    api_world.add_list("sre", owners=["bob"], roles=[])
    added = client.post("/v1/access-lists/sre/members", headers=token_for(api_runtime, "bob"),
                        json={"member": "alice", "expires": BEYOND_9999})
    assert added.status_code == 422 and problems(added) == ["body.expires"]
    for name in ("since", "at"):
        trail = client.get("/v1/audit", params={name: BEFORE_YEAR_1}, headers=ADMIN)
        assert trail.status_code == 422 and problems(trail) == [f"query.{name}"]
    applied = client.post("/v1/apply", headers={**ADMIN, "Content-Type": "application/yaml"},
                          content="kind: access_list\nmetadata: {name: y}\nspec:\n  title: Y\n"
                                  f"  members:\n    - {{name: alice, expires: '{BEYOND_9999}'}}\n")
    assert applied.status_code == 422
    assert [(p["line"], p["path"]) for p in applied.json()["errors"]] == [
        (6, "spec.members[0].expires")]


def test_booleans_are_json_booleans_and_durations_ascii(
        client: TestClient, api_runtime: Runtime, api_world) -> None:
    alice = token_for(api_runtime, "alice")
    for field, value in (("break_glass", "yes"), ("break_glass", 1),
                         ("duration", "\u0661h"), ("duration", "\uff11h")):
        answer = client.post("/v1/requests", headers=alice, json={
            "resources": [STAGING_ADMIN], "reason": "x", field: value})
        assert answer.status_code == 422 and problems(answer) == [f"body.{field}"], value


def test_service_refusals_name_api_fields_not_cli_flags(
        client: TestClient, api_runtime: Runtime, api_world) -> None:
    blank = client.post("/v1/requests", headers=token_for(api_runtime, "alice"),
                        json={"resources": [STAGING_ADMIN], "reason": "   "})
    assert blank.status_code == 422 and problems(blank) == ["body.reason"]
    assert "--" not in blank.text and "body.reason" in blank.json()["hint"]
    api_world.add_list("sre", owners=["bob"], roles=[])
    owner = client.delete("/v1/users/bob", headers=ADMIN)
    assert owner.status_code == 422 and problems(owner) == ["query.force"]
    assert "--force" not in owner.text

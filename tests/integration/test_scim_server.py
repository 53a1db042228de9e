"""The sandbox's SCIM server over real HTTP: each AWS dialect rule, and moto as its storage."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.identitystore.models import identitystore_backends

from tests.integration.scim_support import (
    GROUP_SCHEMA,
    STORE_ID,
    TOKEN,
    ScimServer,
    patch,
    running_scim_server,
    user_body,
)


@pytest.fixture
def scim() -> Iterator[ScimServer]:
    with running_scim_server() as server:
        yield server


def create_group(scim: ScimServer, name: str, members: list[str] = ()) -> str:
    body = {"schemas": [GROUP_SCHEMA], "displayName": name, "externalId": f"grantledger:{name}",
            "members": [{"value": m} for m in members]}
    response = scim.client().post("Groups", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


# -- auth and throttling ----------------------------------------------------------------


def test_requests_without_a_live_token_get_401(scim: ScimServer) -> None:
    assert scim.client(token="wrong").get("Users").status_code == 401
    assert scim.client().get("Users").status_code == 200
    scim.app.tokens.add("rotated")
    scim.app.tokens.discard(TOKEN)  # the old token expires
    assert scim.client().get("ServiceProviderConfig").status_code == 401
    assert scim.client(token="rotated").get("Users").status_code == 200


def test_requests_above_the_rate_get_429_with_retry_after() -> None:
    with running_scim_server(rate_per_s=2.0) as scim:
        client = scim.client()
        statuses = [client.get("Users") for _ in range(8)]
    assert statuses[0].status_code == 200
    throttled = [r for r in statuses if r.status_code == 429]
    assert throttled, [r.status_code for r in statuses]
    assert throttled[0].headers["Retry-After"] == "1"


# -- users ------------------------------------------------------------------------------


def test_scim_users_are_identity_store_users_with_the_same_id() -> None:
    with mock_aws():
        def backend():
            return identitystore_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
        with running_scim_server(backend=backend) as scim:
            created = scim.client().post("Users", json=user_body("alice")).json()
            identitystore = boto3.client("identitystore", region_name="us-east-1")
            users = identitystore.list_users(IdentityStoreId=STORE_ID)["Users"]
    assert [(u["UserId"], u["UserName"]) for u in users] == [(created["id"], "alice")]
    assert users[0]["Name"]["GivenName"] == "Given"


def test_users_need_display_name_and_both_names(scim: ScimServer) -> None:
    client = scim.client()
    for missing in ("displayName", "name"):
        response = client.post("Users", json=user_body("bob", **{missing: None}))
        assert response.status_code == 400, missing
    no_family = user_body("bob", name={"givenName": "Bob"})
    assert client.post("Users", json=no_family).status_code == 400
    assert scim.backend.list_users(identity_store_id=STORE_ID, filters=[])[0] == []


def test_duplicate_user_name_and_group_name_get_409(scim: ScimServer) -> None:
    client = scim.client()
    assert client.post("Users", json=user_body("carol")).status_code == 201
    duplicate = client.post("Users", json=user_body("Carol"))
    assert duplicate.status_code == 409
    assert duplicate.json()["scimType"] == "uniqueness"
    create_group(scim, "ops")
    body = {"schemas": [GROUP_SCHEMA], "displayName": "ops"}
    assert client.post("Groups", json=body).status_code == 409


def test_active_false_and_external_id_are_kept(scim: ScimServer) -> None:
    client = scim.client()
    user_id = client.post("Users", json=user_body("dave")).json()["id"]
    response = client.patch(f"Users/{user_id}",
                            json=patch({"op": "replace", "path": "active", "value": False}))
    assert response.status_code in (200, 204)
    user = client.get(f"Users/{user_id}").json()
    assert (user["active"], user["externalId"]) == (False, "grantledger:dave")


def test_only_one_email_is_accepted(scim: ScimServer) -> None:
    emails = [{"value": "a@example.com", "primary": True}, {"value": "b@example.com"}]
    response = scim.client().post("Users", json=user_body("erin", emails=emails))
    assert response.status_code == 400


# -- filters and pages ------------------------------------------------------------------


def test_eq_filters_on_aws_attributes_work(scim: ScimServer) -> None:
    client = scim.client()
    user_id = client.post("Users", json=user_body("frank")).json()["id"]
    client.post("Users", json=user_body("grace"))
    group_id = create_group(scim, "dev", [user_id])
    for endpoint, expression, expected in [
        ("Users", 'userName eq "FRANK"', [user_id]),
        ("Users", 'externalId eq "grantledger:frank"', [user_id]),
        ("Users", 'userName eq "frank" and externalId eq "grantledger:grace"', []),
        ("Groups", 'displayName eq "dev"', [group_id]),
        ("Groups", f'id eq "{group_id}" and members eq "{user_id}"', [group_id]),
    ]:
        found = client.get(endpoint, params={"filter": expression}).json()["Resources"]
        assert [r["id"] for r in found] == expected, expression


@pytest.mark.parametrize("endpoint,expression", [
    ("Users", 'userName co "fr"'),
    ("Users", 'userName sw "fr"'),
    ("Users", 'userName eq "a" or userName eq "b"'),
    ("Users", 'displayName eq "Frank"'),
    ("Users", "not (userName eq \"a\")"),
    ("Groups", 'userName eq "a"'),
    ("Groups", "displayName pr"),
])
def test_other_filters_get_400_invalid_filter(scim: ScimServer, endpoint: str,
                                              expression: str) -> None:
    response = scim.client().get(endpoint, params={"filter": expression})
    assert response.status_code == 400
    assert response.json()["scimType"] == "invalidFilter"


def test_lists_page_by_cursor_and_ignore_start_index(scim: ScimServer) -> None:
    seeded = set(scim.seed_users(5))
    client, seen, cursor = scim.client(), [], ""
    while cursor is not None:
        page = client.get("Users", params={"cursor": cursor, "count": 2}).json()
        assert len(page["Resources"]) <= 2
        seen += [r["id"] for r in page["Resources"]]
        cursor = page.get("nextCursor")
    assert sorted(seen) == sorted(seeded)
    first = client.get("Users", params={"count": 2}).json()["Resources"]
    skipped = client.get("Users", params={"count": 2, "startIndex": 3}).json()["Resources"]
    assert skipped == first


# -- groups -----------------------------------------------------------------------------


def test_get_and_list_of_groups_return_no_members(scim: ScimServer) -> None:
    members = scim.seed_users(3)
    group_id = create_group(scim, "admins", members)
    client = scim.client()
    assert "members" not in client.get(f"Groups/{group_id}").json()
    assert all("members" not in g for g in client.get("Groups").json()["Resources"])
    assert scim.member_ids(group_id) == set(members)


def test_group_patch_adds_and_removes_members_both_ways(scim: ScimServer) -> None:
    alice, bob, carol = scim.seed_users(3)
    group_id = create_group(scim, "team", [alice, bob])
    response = scim.client().patch(f"Groups/{group_id}", json=patch(
        {"op": "add", "path": "members", "value": [{"value": carol}]},
        {"op": "remove", "path": f'members[value eq "{alice}"]'},
        {"op": "remove", "path": "members", "value": [{"value": bob}]},  # Entra's form
        {"op": "replace", "path": "displayName", "value": "team-2"},
    ))
    assert response.status_code in (200, 204), response.text
    assert scim.member_ids(group_id) == {carol}
    groups = scim.backend.list_groups(identity_store_id=STORE_ID, filters=[])[0]
    assert [g.DisplayName for g in groups] == ["team-2"]


@pytest.mark.parametrize("operations", [
    [{"op": "replace", "path": "members", "value": [{"value": "x"}]}],
    [{"op": "remove", "path": "members"}],
    [{"op": "replace", "value": {"displayName": "a", "externalId": "b"}}],
], ids=["replace-members", "remove-all", "pathless-two-attributes"])
def test_group_patch_refuses_what_aws_refuses(scim: ScimServer, operations: list) -> None:
    member = scim.seed_users(1)[0]
    group_id = create_group(scim, "strict", [member])
    response = scim.client().patch(f"Groups/{group_id}", json=patch(*operations))
    assert response.status_code == 400, response.text
    assert scim.member_ids(group_id) == {member}


def test_group_patch_refuses_more_than_100_member_changes(scim: ScimServer) -> None:
    users = scim.seed_users(101)
    group_id = create_group(scim, "big")
    too_many = patch({"op": "add", "path": "members", "value": [{"value": u} for u in users]})
    assert scim.client().patch(f"Groups/{group_id}", json=too_many).status_code == 400
    assert scim.member_ids(group_id) == set()
    hundred = patch({"op": "add", "path": "members", "value": [{"value": u} for u in users[:100]]})
    assert scim.client().patch(f"Groups/{group_id}", json=hundred).status_code in (200, 204)
    assert len(scim.member_ids(group_id)) == 100


def test_delete_removes_objects_and_their_memberships(scim: ScimServer) -> None:
    alice, bob = scim.seed_users(2)
    group_id = create_group(scim, "doomed", [alice, bob])
    client = scim.client()
    assert client.delete(f"Users/{alice}").status_code == 204
    assert scim.member_ids(group_id) == {bob}
    assert client.delete(f"Groups/{group_id}").status_code == 204
    store = scim.backend.identity_stores[STORE_ID]
    assert (list(store.groups), list(store.group_memberships)) == ([], [])
    assert client.get(f"Users/{alice}").status_code == 404


# -- what AWS does not offer ------------------------------------------------------------


def test_bulk_me_and_group_put_are_not_supported(scim: ScimServer) -> None:
    client = scim.client()
    group_id = create_group(scim, "fixed")
    assert client.post("Bulk", json={"Operations": []}).status_code == 501
    assert client.get("Me").status_code == 501
    put = client.put(f"Groups/{group_id}", json={"schemas": [GROUP_SCHEMA], "displayName": "x"})
    assert put.status_code == 501


def test_discovery_announces_users_and_groups_only(scim: ScimServer) -> None:
    client = scim.client()
    names = [r["name"] for r in client.get("ResourceTypes").json()["Resources"]]
    config = client.get("ServiceProviderConfig").json()
    assert sorted(names) == ["Group", "User"]
    assert (config["bulk"]["supported"], config["filter"]["maxResults"]) == (False, 100)

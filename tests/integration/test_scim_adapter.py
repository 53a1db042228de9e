"""HttpScimDirectory against the sandbox's SCIM server on a real local HTTP server."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from models.errors import (
    ConfigError,
    ScimAuthError,
    ScimCircuitOpen,
    ScimError,
    ScimNotFound,
    ScimNotOwned,
    ScimThrottled,
)
from tests.integration.scim_support import STORE_ID, TOKEN, ScimServer, running_scim_server
from workers.adapters.scim import HttpScimDirectory, ScimDirectory
from workers.limiter import make_limiter
from workers.settings import Settings


@pytest.fixture
def scim() -> Iterator[ScimServer]:
    with running_scim_server() as server:
        yield server


@pytest.fixture
def directory(scim: ScimServer) -> ScimDirectory:
    return scim.directory()


def create_alice(directory: ScimDirectory):
    return directory.create_user(user_name="alice", display_name="Alice Liddell",
                                 given_name="Alice", family_name="Liddell",
                                 email="alice@example.com", external_id="user-1")


def test_created_user_is_owned_and_is_the_identity_store_user(
        scim: ScimServer, directory: ScimDirectory) -> None:
    alice = create_alice(directory)
    stored = scim.backend.describe_user(STORE_ID, alice.id)
    assert (stored.UserName, stored.Emails[0]["Value"]) == ("alice", "alice@example.com")
    assert (alice.external_id, alice.owned, alice.adopted) == ("grantledger:user-1", True, False)
    assert directory.find_user(user_name="ALICE") == alice
    assert directory.get_user(user_id=alice.id) == alice
    assert directory.find_user(user_name="nobody") is None
    assert directory.get_user(user_id="../Groups") is None  # an id names one resource only


def test_conflicting_create_adopts_the_existing_object(directory: ScimDirectory) -> None:
    first = create_alice(directory)
    again = create_alice(directory)
    assert (again.id, again.adopted) == (first.id, True)
    group = directory.create_group(display_name="engineers", external_id="list-1")
    assert directory.create_group(display_name="engineers", external_id="list-1").adopted
    assert directory.find_group(display_name="engineers") == group


def test_never_deletes_what_it_does_not_own(scim: ScimServer,
                                            directory: ScimDirectory) -> None:
    (foreign_id,) = scim.seed_users(1, prefix="alice")
    adopted = directory.create_user(user_name="alice0", display_name="A", given_name="A",
                                    family_name="B", email=None, external_id="user-9")
    assert (adopted.id, adopted.adopted, adopted.owned) == (foreign_id, True, False)
    with pytest.raises(ScimNotOwned):
        directory.delete_user(user_id=foreign_id)
    group_id = scim.backend.create_group(STORE_ID, "hand-made", "")[0]
    with pytest.raises(ScimNotOwned):
        directory.delete_group(group_id=group_id)
    assert scim.calls("DeleteUser") == scim.calls("DeleteGroup") == 0
    assert directory.get_user(user_id=foreign_id) is not None


def test_deletes_what_it_owns_and_tolerates_gone_objects(scim: ScimServer,
                                                        directory: ScimDirectory) -> None:
    alice = create_alice(directory)
    group = directory.create_group(display_name="temp", external_id="list-2")
    directory.add_members(group_id=group.id, user_ids=[alice.id])
    directory.delete_user(user_id=alice.id)
    directory.delete_group(group_id=group.id)
    directory.delete_user(user_id=alice.id)  # already gone: no error
    assert directory.get_user(user_id=alice.id) is None
    assert scim.backend.identity_stores[STORE_ID].group_memberships == {}


def test_members_go_in_chunks_of_100(scim: ScimServer, directory: ScimDirectory) -> None:
    users = scim.seed_users(250)
    group = directory.create_group(display_name="everyone", external_id="list-3")
    directory.add_members(group_id=group.id, user_ids=users)
    assert scim.calls("PatchGroup") == 3
    assert scim.member_ids(group.id) == set(users)
    assert directory.is_member(group_id=group.id, user_id=users[249])
    directory.remove_members(group_id=group.id, user_ids=users[:210])
    assert scim.calls("PatchGroup") == 6
    assert scim.member_ids(group.id) == set(users[210:])
    assert not directory.is_member(group_id=group.id, user_id=users[0])


def test_lists_follow_every_page(scim: ScimServer, directory: ScimDirectory) -> None:
    users = scim.seed_users(230)
    for n in range(3):
        directory.create_group(display_name=f"group-{n}", external_id=f"list-{n}")
    assert sorted(u.id for u in directory.list_users()) == sorted(users)
    assert scim.calls("ListUsers") == 3
    assert sorted(g.display_name for g in directory.list_groups()) == [
        "group-0", "group-1", "group-2"]


def test_updates_and_deactivation_land(directory: ScimDirectory) -> None:
    alice = create_alice(directory)
    directory.update_user(user_id=alice.id, display_name="Alice L.", family_name="L",
                          email="al@example.com")
    directory.set_user_active(user_id=alice.id, active=False)
    stored = directory.get_user(user_id=alice.id)
    assert stored is not None
    assert (stored.display_name, stored.family_name, stored.email, stored.active) == (
        "Alice L.", "L", "al@example.com", False)
    with pytest.raises(ScimNotFound):
        directory.set_user_active(user_id="no-such-user", active=True)


def test_rejected_requests_carry_the_server_detail(directory: ScimDirectory) -> None:
    with pytest.raises(ScimError) as caught:
        directory.create_user(user_name="x", display_name="", given_name="X",
                              family_name="Y", email=None, external_id="user-x")
    assert caught.value.status == 400
    assert "displayName" in str(caught.value)


def test_circuit_opens_after_repeated_401_and_stops_calling(scim: ScimServer) -> None:
    directory = scim.directory(token="revoked", circuit_threshold=3)
    with pytest.raises(ScimAuthError):
        directory.list_users()
    with pytest.raises(ScimAuthError):
        directory.find_user(user_name="alice")
    with pytest.raises(ScimCircuitOpen):
        directory.list_groups()
    sent = sum(scim.app.calls.snapshot().values())
    for _ in range(5):
        with pytest.raises(ScimCircuitOpen):
            directory.list_users()
    assert sum(scim.app.calls.snapshot().values()) == sent == 3
    directory.client.headers["Authorization"] = f"Bearer {TOKEN}"
    directory.reset()
    assert directory.list_users() == []


def test_throttling_is_retried_then_reported() -> None:
    with running_scim_server(rate_per_s=0.001) as scim:  # one request, then 429 for good
        waits: list[float] = []
        directory = scim.directory(max_attempts=3, sleep=waits.append)
        assert directory.list_users() == []
        with pytest.raises(ScimThrottled):
            directory.list_groups()
    assert scim.calls("ListGroups") == 3
    assert len(waits) == 2 and all(0 < w <= 8.0 for w in waits)
    assert directory.call_counts()["retries"] == 2


def test_throttled_calls_succeed_once_the_rate_allows() -> None:
    with running_scim_server(rate_per_s=10.0) as scim:
        directory = scim.directory(backoff_base=0.05, max_attempts=8)
        for n in range(14):
            directory.find_user(user_name=f"user-{n}")
    assert directory.call_counts()["find_user"] == 14
    assert directory.call_counts()["retries"] >= 1


def test_the_shared_limiter_keeps_calls_under_the_scim_rate() -> None:
    with running_scim_server(rate_per_s=10.0) as scim:
        limiter = make_limiter(Settings(scim_rate=10.0))
        directory = scim.directory(limiter=limiter, max_attempts=1)
        for n in range(15):
            directory.find_user(user_name=f"user-{n}")
    assert directory.call_counts().get("retries", 0) == 0
    assert limiter.usage()["rates"]["scim"]["used"] >= 1


def test_from_settings_builds_a_working_directory(scim: ScimServer) -> None:
    settings = Settings(scim_url=scim.url, scim_token=TOKEN)
    directory = HttpScimDirectory.from_settings(settings)
    assert directory.list_users() == []
    sandbox = Settings(aws_endpoint_url=scim.url.removesuffix("/scim/v2/"), scim_token=TOKEN)
    assert HttpScimDirectory.from_settings(sandbox).list_groups() == []
    with pytest.raises(ConfigError):
        HttpScimDirectory.from_settings(Settings(scim_url=scim.url))


def test_network_errors_are_retried_then_reported() -> None:
    client = httpx.Client(base_url="http://127.0.0.1:9/scim/v2/", timeout=1.0)
    directory = HttpScimDirectory(client, max_attempts=2, sleep=lambda _: None)
    with pytest.raises(ScimError, match="unreachable"):
        directory.list_users()
    assert directory.call_counts()["http_requests"] == 2

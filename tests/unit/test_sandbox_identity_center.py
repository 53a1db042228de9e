"""Identity Center's assignment behaviour, with a hand-driven clock (no HTTP, no sleeping).

The directory is the sandbox's real MotoWorld (in-memory moto), reset for each test.
"""

from __future__ import annotations

import pytest

from workers.sandbox.identity_center import (
    CREATE,
    DELETE,
    FAILED,
    IN_PROGRESS,
    SUCCEEDED,
    IdentityCenter,
    ServiceFault,
)
from workers.sandbox.limits import Faults
from workers.sandbox.moto_world import MotoWorld, reset_moto

ACCOUNT = "111111111111"


class Clock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def world() -> MotoWorld:
    reset_moto()
    world = MotoWorld(region="us-east-1", identity_store_id="d-0000000000")
    world.create_organization()
    world.add_account(account_id=ACCOUNT, name="Production", email="p@example.com",
                      ou_path="/Workloads")
    return world


@pytest.fixture()
def clock() -> Clock:
    return Clock()


def make_center(world: MotoWorld, clock: Clock, **options: object) -> IdentityCenter:
    settings: dict[str, object] = {"settle_delay": 2.0, **options}
    return IdentityCenter(directory=world, instance_id="ssoins-0000000000000000",
                          identity_store_id="d-0000000000", clock=clock, **settings)  # type: ignore[arg-type]


@pytest.fixture()
def center(world: MotoWorld, clock: Clock) -> IdentityCenter:
    return make_center(world, clock)


def user_key(world: MotoWorld, center: IdentityCenter) -> tuple[str, str, str, str]:
    user_id = world.add_user(user_name="alice", given_name="Alice", family_name="Archer",
                             email="alice@example.com", display_name="Alice Archer")
    arn = center.create_permission_set(name="ReadOnlyAccess").arn
    return ("USER", user_id, ACCOUNT, arn)


def test_create_settles_exactly_after_the_delay(world, center, clock) -> None:
    key = user_key(world, center)
    operation = center.submit(CREATE, key)
    clock.now += 1.99
    assert center.operation(CREATE, operation.request_id).status == IN_PROGRESS
    assert center.snapshot() == set()
    clock.now += 0.02
    assert center.operation(CREATE, operation.request_id).status == SUCCEEDED
    assert center.snapshot() == {key}
    assert center.provisioned_to(ACCOUNT) == [key[3]]


def test_unknown_principal_fails_when_it_settles(world, center, clock) -> None:
    _, _, account, arn = user_key(world, center)
    operation = center.submit(CREATE, ("GROUP", "no-such-group", account, arn))
    clock.now += 3
    settled = center.operation(CREATE, operation.request_id)
    assert settled.status == FAILED
    assert settled.failure_reason == ("Received a 404 status error: the GROUP assignee "
                                      "no-such-group was not found in directory d-0000000000")


def test_unknown_account_and_permission_set_fail(world, center, clock) -> None:
    principal_type, principal_id, _, arn = user_key(world, center)
    bad_account = center.submit(CREATE, (principal_type, principal_id, "999999999999", arn))
    bad_set = center.submit(CREATE, (principal_type, principal_id, ACCOUNT, arn + "-gone"))
    clock.now += 3
    assert "999999999999 was not found in the organization" in (
        center.operation(CREATE, bad_account.request_id).failure_reason or "")
    assert "-gone was not found in instance" in (
        center.operation(CREATE, bad_set.request_id).failure_reason or "")
    assert center.snapshot() == set()


def test_assignments_are_a_set(world, center, clock) -> None:
    key = user_key(world, center)
    first, second = center.submit(CREATE, key), center.submit(CREATE, key)
    clock.now += 3
    assert {center.operation(CREATE, op.request_id).status for op in (first, second)} == {
        SUCCEEDED}
    assert center.assignments_on(ACCOUNT, key[3]) == [key]


def test_deleting_a_missing_assignment_fails_with_aws_404(world, center, clock) -> None:
    key = user_key(world, center)
    operation = center.submit(DELETE, key)
    clock.now += 3
    settled = center.operation(DELETE, operation.request_id)
    assert settled.status == FAILED
    assert (settled.failure_reason or "").startswith(
        "Received a 404 status error: EntitlementItem doesn't exist")


def test_delete_removes_but_keeps_the_permission_set_provisioned(world, center, clock) -> None:
    key = user_key(world, center)
    center.seed_assignment(key)
    operation = center.submit(DELETE, key)
    clock.now += 3
    assert center.operation(DELETE, operation.request_id).status == SUCCEEDED
    assert center.snapshot() == set()
    assert center.provisioned_to(ACCOUNT) == [key[3]]


def test_create_and_delete_in_flight_together_conflict(world, center, clock) -> None:
    key = user_key(world, center)
    center.submit(CREATE, key)
    with pytest.raises(ServiceFault) as raised:
        center.submit(DELETE, key)
    assert raised.value.code == "ConflictException"
    clock.now += 3
    assert center.submit(DELETE, key).status == IN_PROGRESS


def test_outstanding_creates_are_capped(world, clock) -> None:
    center = make_center(world, clock, max_outstanding_creates=2)
    principal_type, principal_id, account, arn = user_key(world, center)
    for index in range(2):
        center.submit(CREATE, (principal_type, f"{principal_id}-{index}", account, arn))
    with pytest.raises(ServiceFault) as raised:
        center.submit(CREATE, (principal_type, principal_id, account, arn))
    assert raised.value.code == "ThrottlingException"
    assert "too many requests processing" in raised.value.message
    center.submit(DELETE, (principal_type, principal_id, account, arn))  # deletes are not capped
    clock.now += 3
    center.submit(CREATE, (principal_type, principal_id, account, arn))


def test_stall_holds_operations_until_released(world, center, clock) -> None:
    key = user_key(world, center)
    before = center.submit(CREATE, key)
    center.set_stalled(True)
    during = center.submit(DELETE, ("GROUP", "g", ACCOUNT, key[3]))
    clock.now += 100
    assert {center.operation(op.kind, op.request_id).status for op in (before, during)} == {
        IN_PROGRESS}
    center.set_stalled(False)
    clock.now += 1.99
    assert center.operation(CREATE, before.request_id).status == IN_PROGRESS
    clock.now += 0.02
    assert center.operation(CREATE, before.request_id).status == SUCCEEDED
    assert center.operation(DELETE, during.request_id).status == FAILED


def test_fail_next_fails_that_many_operations(world, clock) -> None:
    faults = Faults()
    center = make_center(world, clock, faults=faults, settle_delay=0.0)
    key = user_key(world, center)
    faults.fail_next, faults.failure_reason = 2, "boom"
    results = [center.submit(CREATE, key) for _ in range(3)]
    assert [(op.status, op.failure_reason) for op in results] == [
        (FAILED, "boom"), (FAILED, "boom"), (SUCCEEDED, None)]
    assert center.snapshot() == {key}


def test_list_status_filters_by_status(world, center, clock) -> None:
    key = user_key(world, center)
    center.submit(CREATE, key)
    center.submit(CREATE, ("USER", "ghost", ACCOUNT, key[3]))
    clock.now += 3
    assert len(center.operations(CREATE, status=SUCCEEDED)) == 1
    assert len(center.operations(CREATE, status=FAILED)) == 1
    assert center.operations(DELETE) == []


def test_permission_set_names_are_unique(center) -> None:
    center.create_permission_set(name="AdministratorAccess")
    with pytest.raises(ServiceFault) as raised:
        center.create_permission_set(name="AdministratorAccess")
    assert raised.value.code == "ConflictException"

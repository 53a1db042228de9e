"""The sync planner's rules, one by one, and its determinism (pure: no I/O)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from models.domain import AssignmentKey
from models.ledger.enums import GrantState
from tasks.sync.planner import (
    KIND_ORDER,
    ChangeKind,
    GrantView,
    InFlight,
    plan,
    revoke_retry_due,
)

ACCOUNT, OTHER_ACCOUNT = "111111111111", "222222222222"
ADMIN, READ = "arn:aws:sso:::permissionSet/ins/ps-admin", "arn:aws:sso:::permissionSet/ins/ps-read"
IDS = {("USER", "alice"): "u-alice", ("USER", "bob"): "u-bob", ("GROUP", "admins"): "g-admins"}
NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
P, PROV, A = GrantState.PENDING, GrantState.PROVISIONING, GrantState.ACTIVE
R, F = GrantState.REVOKING, GrantState.FAILED


def grant(grant_id: int, state: GrantState, *, name: str = "alice", kind: str = "USER",
          account: str = ACCOUNT, ps: str = ADMIN, failed_from: GrantState | None = None,
          attempts: int = 0, expires_at: datetime | None = None,
          updated_at: datetime | None = None, source: str = "role") -> GrantView:
    return GrantView(id=grant_id, principal_type=kind, principal_name=name, account_id=account,
                     permission_set_arn=ps, state=state, source_kind=source,
                     source_id=f"src-{grant_id}", failed_from=failed_from, attempts=attempts,
                     expires_at=expires_at, updated_at=updated_at)


def key(principal_id: str = "u-alice", account: str = ACCOUNT, ps: str = ADMIN,
        kind: str = "USER") -> AssignmentKey:
    return AssignmentKey(kind, principal_id, account, ps)


def run(grants: list[GrantView], actual: set[AssignmentKey] = frozenset(), **options):
    options.setdefault("principal_ids", IDS)
    options.setdefault("now", NOW)
    return plan(grants=grants, actual=actual, **options)


def only(changes):
    assert len(changes) == 1, changes
    return changes[0]


# --- creations -----------------------------------------------------------------------------


def test_pending_grant_whose_assignment_exists_is_activated_without_a_call():
    change = only(run([grant(1, P)], {key()}))
    assert (change.kind, change.grant_ids, change.calls_aws) == (ChangeKind.ACTIVATE, (1,), False)


def test_grant_that_failed_to_be_created_is_activated_when_the_assignment_exists():
    change = only(run([grant(1, F, failed_from=PROV, attempts=1)], {key()}))
    assert change.kind is ChangeKind.ACTIVATE


def test_pending_grant_joins_a_create_in_flight():
    change = only(run([grant(1, P)], in_flight=[InFlight(42, ChangeKind.CREATE, key())]))
    assert (change.kind, change.operation_id, change.calls_aws) == (ChangeKind.CREATE, 42, False)


def test_pending_grant_is_created_once_per_assignment_for_all_its_sources():
    change = only(run([grant(3, P, source="request"), grant(1, P)]))
    assert (change.kind, change.key, change.grant_ids) == (ChangeKind.CREATE, key(), (1, 3))
    assert change.calls_aws and change.generation == "g1.1"


def test_a_failed_create_is_retried_as_a_new_attempt():
    change = only(run([grant(1, F, failed_from=PROV, attempts=2)]))
    assert (change.kind, change.generation) == (ChangeKind.CREATE, "g1.3")


def test_active_grant_whose_assignment_vanished_from_aws_is_created_again():
    change = only(run([grant(1, A, attempts=1)]))
    assert change.kind is ChangeKind.CREATE and change.grant_ids == ()
    assert "missing from AWS" in change.reason


def test_provisioning_grant_is_left_to_its_create_in_flight():
    assert run([grant(1, PROV)], in_flight=[InFlight(7, ChangeKind.CREATE, key())]) == []


def test_provisioning_grant_is_activated_when_present_even_with_its_create_in_flight():
    # heals a crash between the AWS call and saving its request id
    in_flight = [InFlight(7, ChangeKind.CREATE, key())]
    assert only(run([grant(1, PROV)], {key()}, in_flight=in_flight)).kind is ChangeKind.ACTIVATE
    assert only(run([grant(1, PROV)], {key()})).kind is ChangeKind.ACTIVATE


def test_nothing_to_do_when_active_grant_matches_aws():
    assert run([grant(1, A)], {key()}) == []


# --- revocations -----------------------------------------------------------------------------


def test_revoked_grant_is_retired_while_another_grant_backs_the_assignment():
    change = only(run([grant(1, R), grant(2, A, source="request")], {key()}))
    assert (change.kind, change.grant_ids) == (ChangeKind.RETIRE, (1,))
    assert "backs" in change.reason


def test_revoked_grant_is_retired_when_aws_does_not_have_the_assignment():
    change = only(run([grant(1, R)]))
    assert (change.kind, change.calls_aws) == (ChangeKind.RETIRE, False)


def test_one_delete_per_assignment_for_all_revoked_grants():
    change = only(run([grant(2, R, attempts=1), grant(1, R, attempts=1)], {key()}))
    assert (change.kind, change.grant_ids, change.generation) == (ChangeKind.DELETE, (1, 2),
                                                                  "g1.1")


def test_an_expired_grant_does_not_keep_the_assignment_alive():
    expired = grant(2, A, expires_at=NOW - timedelta(seconds=1))
    assert only(run([grant(1, R), expired], {key()})).kind is ChangeKind.DELETE


def test_revocation_waits_for_the_delete_in_flight():
    assert run([grant(1, R)], {key()}, in_flight=[InFlight(9, ChangeKind.DELETE, key())]) == []
    failed = grant(1, F, failed_from=R, attempts=1)
    change = only(run([failed], {key()}, in_flight=[InFlight(9, ChangeKind.DELETE, key())]))
    assert (change.kind, change.operation_id) == (ChangeKind.DELETE, 9)


def test_revocation_deletes_when_a_create_is_in_flight_even_if_not_listed_yet():
    change = only(run([grant(1, R)], in_flight=[InFlight(5, ChangeKind.CREATE, key())]))
    assert change.kind is ChangeKind.DELETE


def test_failed_delete_waits_for_its_backoff_then_is_retried():
    failed = grant(1, F, failed_from=R, attempts=3, updated_at=NOW - timedelta(seconds=60))
    assert run([failed], {key()}) == []  # third failure: waits 2 minutes
    later = run([failed], {key()}, now=NOW + timedelta(minutes=2))
    assert (only(later).kind, only(later).generation) == (ChangeKind.DELETE, "g1.4")


def test_revoke_backoff_grows_and_is_capped():
    def due_after(attempts: int) -> timedelta:
        failed = grant(1, F, failed_from=R, attempts=attempts, updated_at=NOW)
        return next(timedelta(seconds=s) for s in range(0, 10**5, 5)
                    if revoke_retry_due(failed, NOW + timedelta(seconds=s)))

    assert [due_after(n) for n in (1, 2, 3)] == [timedelta(seconds=30), timedelta(minutes=1),
                                                 timedelta(minutes=2)]
    assert due_after(40) == timedelta(hours=1)


# --- principals, drift -----------------------------------------------------------------------


def test_principal_without_identity_center_id_waits_or_is_retired():
    ids = {("USER", "carol"): None}
    assert run([grant(1, P, name="carol")], principal_ids=ids) == []
    change = only(run([grant(1, R, name="carol")], principal_ids=ids))
    assert change.kind is ChangeKind.RETIRE


@pytest.mark.parametrize(("mode", "kind"), [("report", ChangeKind.FOREIGN_REPORT),
                                            ("quarantine", ChangeKind.FOREIGN_QUARANTINE),
                                            ("remove", ChangeKind.FOREIGN_REMOVE)])
def test_assignment_no_grant_ever_named_is_foreign(mode, kind):
    stranger = key("u-stranger")
    change = only(run([], {stranger}, drift_mode=mode))
    assert (change.kind, change.key) == (kind, stranger)
    assert change.calls_aws is (mode == "remove")


def test_assignment_of_a_revoked_grant_still_in_aws_is_deleted_not_foreign():
    history = {("USER", "bob", ACCOUNT, READ)}
    change = only(run([], {key("u-bob", ps=READ)}, history=history))
    assert (change.kind, change.principal_name) == (ChangeKind.DELETE, "bob")


def test_unknown_drift_mode_is_refused():
    with pytest.raises(ValueError, match="drift mode"):
        run([], drift_mode="ignore")


# --- determinism -----------------------------------------------------------------------------


def test_plan_is_sorted_and_independent_of_input_order():
    grants = [grant(1, P), grant(2, R, name="bob", ps=READ), grant(3, A, kind="GROUP",
              name="admins", account=OTHER_ACCOUNT), grant(4, P, name="bob", ps=READ,
              source="request"), grant(5, R)]
    actual = {key("u-bob", ps=READ), key("u-stranger"), key()}
    first = run(grants, actual)
    for seed in range(5):
        shuffled = grants[:]
        random.Random(seed).shuffle(shuffled)
        assert run(shuffled, set(actual)) == first
    assert [KIND_ORDER[c.kind] for c in first] == sorted(KIND_ORDER[c.kind] for c in first)
    assert {c.kind for c in first} >= {ChangeKind.ACTIVATE, ChangeKind.CREATE, ChangeKind.RETIRE,
                                       ChangeKind.FOREIGN_REPORT}

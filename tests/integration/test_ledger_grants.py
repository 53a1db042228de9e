"""Grant state machine, idempotent upsert, reference counting and the expiry claim.

Every test runs on PostgreSQL and on SQLite (see ledger_support).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from models.domain import PrincipalType
from models.errors import LedgerError
from models.ledger.base import database_time
from models.ledger.db import transaction
from models.ledger.enums import GrantState, SourceKind
from models.ledger.grants import (
    BackedAssignment,
    backed_keys,
    claim_due_expiries,
    extend_grant,
    is_backed,
    live_grants_of,
    lock_assignment,
    mark_stuck,
    transition,
    upsert_grant,
)
from models.ledger.tables import Grant
from tests.integration.ledger_support import Catalog, dialect, run_together

pytest_plugins = ["tests.integration.ledger_fixtures"]

G = GrantState


def grant_for(session: Session, catalog: Catalog, *, name: str = "alice",
              source: str = "platform", kind: SourceKind = SourceKind.ACCESS_LIST,
              principal_type: PrincipalType = PrincipalType.USER, **extra) -> Grant:
    grant, _ = upsert_grant(
        session, principal_type=principal_type, principal_name=name,
        account_id=catalog.account_id, permission_set_arn=catalog.permission_set_arn,
        source_kind=kind, source_id=source, **extra,
    )
    return grant


def walk(session: Session, grant: Grant, *states: GrantState) -> None:
    """Move a grant along a path of states, each move asserted to take effect."""
    for expected, to in zip((grant.state, *states), states, strict=False):
        assert transition(session, grant_id=grant.id, expected=expected, to=to)
    session.refresh(grant)


def test_upsert_records_one_pending_grant_per_key(session: Session, catalog: Catalog) -> None:
    first, created = upsert_grant(
        session, principal_type=PrincipalType.USER, principal_name="alice",
        account_id=catalog.account_id, permission_set_arn=catalog.permission_set_arn,
        source_kind=SourceKind.REQUEST, source_id="req-00000001",
    )
    again, created_again = upsert_grant(
        session, principal_type=PrincipalType.USER, principal_name="alice",
        account_id=catalog.account_id, permission_set_arn=catalog.permission_set_arn,
        source_kind=SourceKind.REQUEST, source_id="req-00000001",
    )
    assert (created, created_again) == (True, False)
    assert again.id == first.id
    assert first.state is G.PENDING and first.attempts == 0 and first.expires_at is None
    other_source = grant_for(session, catalog, kind=SourceKind.REQUEST, source="req-00000002")
    assert other_source.id != first.id


def test_revoked_grant_is_history_and_a_new_one_can_follow(
    session: Session, catalog: Catalog,
) -> None:
    old = grant_for(session, catalog)
    walk(session, old, G.PROVISIONING, G.ACTIVE, G.REVOKING, G.REVOKED)
    new = grant_for(session, catalog)
    assert new.id != old.id and new.state is G.PENDING
    total = session.scalar(select(func.count()).select_from(Grant).where(
        Grant.account_id == catalog.account_id))
    assert total == 2


def test_database_refuses_a_second_live_grant_for_a_key(
    session: Session, catalog: Catalog,
) -> None:
    grant_for(session, catalog)
    row = {"principal_type": "USER", "principal_name": "alice",
           "account_id": catalog.account_id, "permission_set_arn": catalog.permission_set_arn,
           "source_kind": "access_list", "source_id": "platform", "state": "ACTIVE"}
    with pytest.raises(IntegrityError), session.begin_nested():
        session.execute(insert(Grant).values(row))


def test_lifecycle_stamps_times_from_the_database_clock(
    session: Session, catalog: Catalog,
) -> None:
    grant = grant_for(session, catalog)
    before = database_time(session)
    walk(session, grant, G.PROVISIONING, G.ACTIVE)
    assert grant.activated_at is not None and grant.activated_at >= before
    assert grant.attempts == 1 and grant.revoked_at is None
    walk(session, grant, G.REVOKING, G.REVOKED)
    assert grant.revoked_at is not None and grant.revoked_at >= grant.activated_at
    assert grant.revoked_at <= database_time(session)


def test_repeated_transition_is_a_no_op(session: Session, catalog: Catalog) -> None:
    grant = grant_for(session, catalog)
    walk(session, grant, G.PROVISIONING, G.ACTIVE)
    activated = grant.activated_at
    # A redelivered "provisioning finished" task finds the grant already ACTIVE.
    assert not transition(session, grant_id=grant.id, expected=G.PROVISIONING, to=G.ACTIVE)
    session.refresh(grant)
    assert grant.state is G.ACTIVE and grant.activated_at == activated


@pytest.mark.parametrize(("expected", "to"), [
    (G.PENDING, G.ACTIVE), (G.ACTIVE, G.PROVISIONING), (G.REVOKED, G.PENDING),
    (G.ACTIVE, G.REVOKED), (G.FAILED, G.ACTIVE), (G.REVOKED, G.FAILED),
])
def test_illegal_transition_raises_before_touching_the_row(
    session: Session, catalog: Catalog, expected: GrantState, to: GrantState,
) -> None:
    grant = grant_for(session, catalog)
    if expected is not G.PENDING:
        grant.state = expected
        session.flush()
    with pytest.raises(LedgerError, match="illegal grant transition"):
        transition(session, grant_id=grant.id, expected=expected, to=to)
    session.refresh(grant)
    assert grant.state is expected


def test_failure_keeps_reason_and_retry_counts_attempts(
    session: Session, catalog: Catalog,
) -> None:
    grant = grant_for(session, catalog)
    walk(session, grant, G.PROVISIONING)
    assert transition(session, grant_id=grant.id, expected=G.PROVISIONING, to=G.FAILED,
                      reason="ConflictException")
    session.refresh(grant)
    assert (grant.failed_from, grant.failure_reason) == (G.PROVISIONING, "ConflictException")
    walk(session, grant, G.PROVISIONING, G.ACTIVE)
    assert grant.attempts == 2 and grant.failure_reason is None and grant.failed_from is None
    walk(session, grant, G.REVOKING)
    assert grant.attempts == 1  # a new direction starts counting again
    assert transition(session, grant_id=grant.id, expected=G.REVOKING, to=G.FAILED, reason="x")
    walk(session, grant, G.REVOKING)
    assert grant.attempts == 2


def test_never_provisioned_grant_is_revoked_directly(session: Session, catalog: Catalog) -> None:
    grant = grant_for(session, catalog)
    walk(session, grant, G.REVOKED)
    assert grant.activated_at is None and grant.revoked_at is not None


def test_stuck_is_flagged_once_and_cleared_by_revocation(
    session: Session, catalog: Catalog,
) -> None:
    grant = grant_for(session, catalog)
    assert not mark_stuck(session, grant_id=grant.id)  # PENDING: nothing is being revoked
    walk(session, grant, G.PROVISIONING, G.ACTIVE, G.REVOKING)
    assert mark_stuck(session, grant_id=grant.id)
    assert not mark_stuck(session, grant_id=grant.id)
    walk(session, grant, G.REVOKED)
    assert grant.stuck is False


def test_reference_counting(session: Session, catalog: Catalog) -> None:
    via_list = grant_for(session, catalog, source="platform")
    via_request = grant_for(session, catalog, kind=SourceKind.REQUEST, source="req-1")
    key = {"principal_type": PrincipalType.USER, "principal_name": "alice",
           "account_id": catalog.account_id, "permission_set_arn": catalog.permission_set_arn}
    assert is_backed(session, **key, excluding_grant_id=via_request.id)
    walk(session, via_list, G.PROVISIONING, G.FAILED)  # failed on create: may half exist
    assert is_backed(session, **key, excluding_grant_id=via_request.id)
    walk(session, via_list, G.REVOKING, G.FAILED)  # failed on delete: wants it gone
    assert not is_backed(session, **key, excluding_grant_id=via_request.id)
    assert is_backed(session, **key)  # the request's grant itself
    assert not is_backed(session, **{**key, "principal_name": "bob"})


def test_an_expired_grant_backs_nothing(session: Session, catalog: Catalog) -> None:
    expired = grant_for(session, catalog, expires_at=database_time(session, -1))
    walk(session, expired, G.PROVISIONING, G.ACTIVE)
    other = grant_for(session, catalog, kind=SourceKind.REQUEST, source="req-2")
    key = {"principal_type": PrincipalType.USER, "principal_name": "alice",
           "account_id": catalog.account_id, "permission_set_arn": catalog.permission_set_arn}
    assert not is_backed(session, **key, excluding_grant_id=other.id)


def test_backed_keys_lists_each_wanted_assignment_once(
    session: Session, catalog: Catalog,
) -> None:
    grant_for(session, catalog, source="platform")
    grant_for(session, catalog, kind=SourceKind.ROLE, source="admin")
    gone = grant_for(session, catalog, name="bob")
    walk(session, gone, G.REVOKED)
    group = grant_for(session, catalog, name="platform", principal_type=PrincipalType.GROUP)
    mine = {key for key in backed_keys(session) if key.account_id == catalog.account_id}
    assert mine == {
        BackedAssignment("USER", "alice", catalog.account_id, catalog.permission_set_arn),
        BackedAssignment("GROUP", group.principal_name, catalog.account_id,
                         catalog.permission_set_arn),
    }


def test_due_expiries_follow_the_database_clock(session: Session, catalog: Catalog) -> None:
    due = grant_for(session, catalog, source="due", expires_at=database_time(session, -1))
    walk(session, due, G.PROVISIONING, G.ACTIVE)
    later = grant_for(session, catalog, source="later", expires_at=database_time(session, 3600))
    walk(session, later, G.PROVISIONING, G.ACTIVE)
    forever = grant_for(session, catalog, source="forever")
    walk(session, forever, G.PROVISIONING, G.ACTIVE)
    pending_due = grant_for(session, catalog, source="pending",
                            expires_at=database_time(session) - timedelta(minutes=5))
    claimed = {grant.id for grant in claim_due_expiries(session)}
    assert {due.id, pending_due.id} <= claimed
    assert not {later.id, forever.id} & claimed


def test_lock_assignment_is_reentrant_in_one_transaction(
    session: Session, catalog: Catalog,
) -> None:
    key = {"principal_type": PrincipalType.USER, "principal_name": "alice",
           "account_id": catalog.account_id, "permission_set_arn": catalog.permission_set_arn}
    lock_assignment(session, **key)
    lock_assignment(session, **key)
    assert not is_backed(session, **key)


def test_ten_concurrent_upserts_get_one_live_grant(
    sessions: sessionmaker[Session], committed: Catalog,
) -> None:
    def record(_: int) -> int:
        with transaction(sessions) as session:
            return grant_for(session, committed, source="race").id

    ids = run_together(10, record)
    assert len(set(ids)) == 1
    with transaction(sessions) as session:
        live = session.scalars(select(Grant.id).where(
            Grant.account_id == committed.account_id, Grant.state != G.REVOKED)).all()
    assert live == [ids[0]]


def test_concurrent_sweepers_claim_each_due_grant_exactly_once(
    sessions: sessionmaker[Session], committed: Catalog,
) -> None:
    with transaction(sessions) as session:
        past = database_time(session, -60)
        session.execute(insert(Grant), [
            {"principal_type": PrincipalType.USER, "principal_name": f"user-{n}",
             "account_id": committed.account_id,
             "permission_set_arn": committed.permission_set_arn,
             "source_kind": SourceKind.REQUEST, "source_id": f"req-{n}",
             "state": G.ACTIVE, "expires_at": past}
            for n in range(200)
        ])

    def sweep(_: int) -> list[int]:
        taken: list[int] = []
        while True:
            with transaction(sessions) as session:
                batch = claim_due_expiries(session, limit=15)
                for grant in batch:
                    assert transition(session, grant_id=grant.id, expected=G.ACTIVE,
                                      to=G.REVOKING)
                taken += [grant.id for grant in batch]
            if not batch:
                return taken

    claims = [grant_id for taken in run_together(4, sweep) for grant_id in taken]
    assert len(claims) == 200 and len(set(claims)) == 200
    with transaction(sessions) as session:
        ours = set(session.scalars(select(Grant.id).where(
            Grant.account_id == committed.account_id)))
    assert set(claims) == ours


def test_a_sweeper_skips_rows_another_sweeper_holds(
    sessions: sessionmaker[Session], committed: Catalog,
) -> None:
    with transaction(sessions) as session:
        if dialect(session) != "postgresql":
            pytest.skip("SQLite admits one writer at a time: there is nothing to skip")
        past = database_time(session, -60)
        for n in range(30):
            grant = grant_for(session, committed, name=f"user-{n}", expires_at=past)
            walk(session, grant, G.PROVISIONING, G.ACTIVE)
    with transaction(sessions) as first, transaction(sessions) as second:
        held = {grant.id for grant in claim_due_expiries(first, limit=10)}
        # Waiting on a lock would raise here instead of hanging.
        second.execute(text("SET LOCAL lock_timeout = '1s'"))
        rest = {grant.id for grant in claim_due_expiries(second)}
    assert len(held) == 10 and len(rest) == 20 and not held & rest


def test_recreate_after_a_failed_delete_keeps_the_first_activation(
    session: Session, catalog: Catalog,
) -> None:
    grant = grant_for(session, catalog)
    walk(session, grant, G.PROVISIONING, G.ACTIVE)
    first_activation = grant.activated_at
    # The delete failed and the source came back: access was held all along.
    walk(session, grant, G.REVOKING, G.FAILED, G.PROVISIONING, G.ACTIVE)
    assert grant.activated_at == first_activation


def test_extension_moves_expiry_of_live_grants_only(session: Session, catalog: Catalog) -> None:
    soon = database_time(session, 60)
    grant = grant_for(session, catalog, expires_at=soon)
    walk(session, grant, G.PROVISIONING, G.ACTIVE)
    later = soon + timedelta(hours=1)
    assert extend_grant(session, grant_id=grant.id, expires_at=later)
    session.refresh(grant)
    assert grant.expires_at == later
    walk(session, grant, G.REVOKING)
    assert not extend_grant(session, grant_id=grant.id, expires_at=later + timedelta(hours=1))


def test_extension_moves_a_failed_create_but_not_a_failed_delete_or_vanished_target(
    session: Session, catalog: Catalog,
) -> None:
    soon = database_time(session, 60)
    later = soon + timedelta(hours=1)
    paths = {"create": (G.PROVISIONING, G.FAILED),
             "delete": (G.PROVISIONING, G.ACTIVE, G.REVOKING, G.FAILED),
             "vanished": (G.PROVISIONING, G.ACTIVE, G.FAILED)}
    moved = {}
    for source, path in paths.items():
        grant = grant_for(session, catalog, source=source, expires_at=soon)
        walk(session, grant, *path)
        moved[source] = extend_grant(session, grant_id=grant.id, expires_at=later)
        session.refresh(grant)
        assert grant.expires_at == (later if moved[source] else soon)
    assert moved == {"create": True, "delete": False, "vanished": False}


def test_live_grants_of_a_user_in_one_query(session: Session, catalog: Catalog) -> None:
    listed = grant_for(session, catalog, source="platform")
    requested = grant_for(session, catalog, kind=SourceKind.REQUEST, source="req-9")
    walk(session, grant_for(session, catalog, source="old"), G.REVOKED)
    grant_for(session, catalog, name="bob")
    held = live_grants_of(session, principal_type=PrincipalType.USER, principal_name="alice")
    assert [grant.id for grant in held] == [listed.id, requested.id]

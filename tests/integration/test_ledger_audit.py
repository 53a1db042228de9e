"""Audit trail: append-only on both dialects, queries, and who held what at time T."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from models.domain import PrincipalType
from models.ledger.audit import events, holders_at, record
from models.ledger.base import database_time
from models.ledger.enums import GrantState, SourceKind
from models.ledger.grants import transition, upsert_grant
from models.ledger.tables import AuditEvent, Grant
from tests.integration.ledger_support import Catalog, next_tick

pytest_plugins = ["tests.integration.ledger_fixtures"]

G = GrantState


def test_record_stamps_database_time_and_drops_secrets(session: Session) -> None:
    before = database_time(session)
    event = record(
        session, actor="bob", action="token.create", target_kind="api_token", target="7",
        reason="CI access", after={"label": "ci", "token": "glt_s3cr3t"},
        details={"headers": {"Authorization": "Bearer glt_s3cr3t"}, "user": "alice"},
    )
    session.expire(event)
    assert before <= event.at <= database_time(session)
    assert event.after == {"label": "ci", "token": "[redacted]"}
    assert event.details == {"headers": {"Authorization": "[redacted]"}, "user": "alice"}
    assert "s3cr3t" not in repr((event.before, event.after, event.details))


@pytest.mark.parametrize("change", [
    update(AuditEvent).values(reason="edited"),
    delete(AuditEvent),
], ids=["update", "delete"])
def test_audit_rows_cannot_be_changed_or_removed(session: Session, change) -> None:
    event = record(session, actor="bob", action="grant.revoke", target_kind="grant",
                   target="1", reason="offboarding")
    with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
        session.execute(change.where(AuditEvent.id == event.id))
    session.expire(event)
    assert event.reason == "offboarding"


def test_events_filter_by_user_account_and_time(session: Session) -> None:
    start = database_time(session)
    record(session, actor="bob", action="request.approve", target_kind="request",
           target="req-1", principal_name="alice", account_id="111111111111")
    record(session, actor="system:expiry", action="grant.revoke", target_kind="grant",
           target="9", principal_name="carol", account_id="222222222222")
    record(session, actor="admin", action="user.suspend", target_kind="user", target="alice")
    assert [e.action for e in events(session, since=start)] == [
        "request.approve", "grant.revoke", "user.suspend"]
    assert [e.action for e in events(session, user="alice", since=start)] == [
        "request.approve", "user.suspend"]
    assert [e.actor for e in events(session, user="bob", since=start)] == ["bob"]
    assert [e.target for e in events(session, account_id="222222222222")] == ["9"]
    assert [e.action for e in events(session, since=start, limit=2)] == [
        "grant.revoke", "user.suspend"]
    assert events(session, since=start, until=start) == []


def _activate(session: Session, grant: Grant) -> None:
    for expected, to in ((G.PENDING, G.PROVISIONING), (G.PROVISIONING, G.ACTIVE)):
        assert transition(session, grant_id=grant.id, expected=expected, to=to)
    session.refresh(grant)


def _revoke(session: Session, grant: Grant) -> None:
    for expected, to in ((G.ACTIVE, G.REVOKING), (G.REVOKING, G.REVOKED)):
        assert transition(session, grant_id=grant.id, expected=expected, to=to)
    session.refresh(grant)


def test_holders_at_follows_grant_revoke_and_regrant(session: Session, catalog: Catalog) -> None:
    key = {"principal_type": PrincipalType.USER, "principal_name": "alice",
           "account_id": catalog.account_id, "permission_set_arn": catalog.permission_set_arn,
           "source_kind": SourceKind.ACCESS_LIST, "source_id": "platform"}
    t0 = database_time(session)
    first, _ = upsert_grant(session, **key)
    next_tick(session, t0)
    _activate(session, first)
    t1 = next_tick(session, first.activated_at)
    _revoke(session, first)
    t2 = next_tick(session, first.revoked_at)
    second, _ = upsert_grant(session, **key)
    _activate(session, second)
    t3 = next_tick(session, second.activated_at)

    def held(at) -> list[tuple[str, int]]:
        return [(h.principal_name, h.grant_id)
                for h in holders_at(session, at=at, account_id=catalog.account_id)]

    assert held(t0) == []
    assert held(t1) == [("alice", first.id)]
    assert held(t2) == []
    assert held(t3) == [("alice", second.id)]
    assert held(first.revoked_at) == []  # revoked_at is exclusive
    assert held(first.activated_at) == [("alice", first.id)]


def test_holders_at_names_every_source_and_counts_a_failing_revocation(
    session: Session, catalog: Catalog,
) -> None:
    via_list, _ = upsert_grant(
        session, principal_type=PrincipalType.GROUP, principal_name="platform",
        account_id=catalog.account_id, permission_set_arn=catalog.permission_set_arn,
        source_kind=SourceKind.ACCESS_LIST, source_id="platform",
    )
    via_request, _ = upsert_grant(
        session, principal_type=PrincipalType.USER, principal_name="alice",
        account_id=catalog.account_id, permission_set_arn=catalog.permission_set_arn,
        source_kind=SourceKind.REQUEST, source_id="req-3f9a1c2b",
    )
    _activate(session, via_list)
    _activate(session, via_request)
    assert transition(session, grant_id=via_request.id, expected=G.ACTIVE, to=G.REVOKING)
    assert transition(session, grant_id=via_request.id, expected=G.REVOKING, to=G.FAILED,
                      reason="ThrottlingException")
    now = next_tick(session, via_request.activated_at) + timedelta(microseconds=1)
    found = holders_at(session, at=now, permission_set_arn=catalog.permission_set_arn)
    assert {(h.principal_type, h.principal_name, h.source_kind, h.source_id) for h in found} == {
        ("GROUP", "platform", SourceKind.ACCESS_LIST, "platform"),
        ("USER", "alice", SourceKind.REQUEST, "req-3f9a1c2b"),
    }
    assert {h.permission_set_name for h in found} == {"AdministratorAccess"}

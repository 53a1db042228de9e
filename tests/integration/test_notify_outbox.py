"""The outbox is written with the event: every notifiable audit event queues exactly one
notice in the same transaction, and the grant.expiring sweep queues one per expiry time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from models.domain import PrincipalType
from models.ledger import audit
from models.ledger.base import database_time
from models.ledger.db import transaction
from models.ledger.enums import GrantState, SourceKind
from models.ledger.outbox import NOTIFIABLE_EVENTS
from models.ledger.tables import AccessRequest, AuditEvent, Grant, NotificationOutbox
from tasks.notify.expiring import queue_expiring_notices
from tests.integration.ledger_support import Catalog

pytest_plugins = ["tests.integration.ledger_fixtures"]

GRANT_EVENTS = ("grant.active", "grant.expiring", "grant.revoked", "grant.stuck")
REQUEST_EVENTS = ("request.created", "request.approved", "request.denied", "breakglass.used")


@pytest.fixture
def session(session: Session) -> Session:
    """The rolled-back test session, its outbox emptied of what other tests committed."""
    session.execute(delete(NotificationOutbox))
    return session


def add_request(session: Session, *, user: str = "alice") -> AccessRequest:
    request = AccessRequest(user_name=user, roles=["db-admin"],
                            resources=["111122223333/AdministratorAccess"],
                            reason="incident 42", duration_seconds=3600)
    session.add(request)
    session.flush()
    return request


def add_grant(session: Session, catalog: Catalog, *, expires_in: float | None = 3600,
              state: GrantState = GrantState.ACTIVE, user: str = "alice") -> Grant:
    now = database_time(session)
    grant = Grant(principal_type=PrincipalType.USER, principal_name=user,
                  account_id=catalog.account_id, permission_set_arn=catalog.permission_set_arn,
                  source_kind=SourceKind.REQUEST, source_id="req-0badcafe", state=state,
                  expires_at=None if expires_in is None else now + timedelta(seconds=expires_in))
    session.add(grant)
    session.flush()
    return grant


def notices(session: Session, event: str | None = None) -> list[NotificationOutbox]:
    statement = select(NotificationOutbox).order_by(NotificationOutbox.id)
    if event is not None:
        statement = statement.where(NotificationOutbox.event == event)
    return list(session.scalars(statement))


def record_event(session: Session, action: str, *, target_kind: str, target: str) -> None:
    audit.record(session, actor="bob", action=action, target_kind=target_kind, target=target,
                 reason="because", principal_name="alice",
                 details={"api_token": "s3cr3t", "resources": ["111122223333/ReadOnly"]})


def test_each_notifiable_event_queues_one_notice(session: Session, catalog: Catalog) -> None:
    request, grant = add_request(session), add_grant(session, catalog)
    for action in REQUEST_EVENTS:
        record_event(session, action, target_kind="access_request", target=request.id)
    for action in GRANT_EVENTS:
        record_event(session, action, target_kind="grant", target=str(grant.id))
    record_event(session, "user.revoked", target_kind="user", target="alice")
    record_event(session, "access_list.owner_joined", target_kind="access_list",
                 target="platform-admins")
    for action in ("scim.stopped", "scim.resumed"):
        record_event(session, action, target_kind="scim", target="scim")
    record_event(session, "grant.revoke", target_kind="grant", target=str(grant.id))
    queued = notices(session)
    assert sorted(n.event for n in queued) == sorted(NOTIFIABLE_EVENTS)
    assert all(n.payload["event"] == n.event and n.payload["id"] == n.event_key for n in queued)
    assert all(n.delivered_at is None and n.attempts == 0 for n in queued)
    assert "s3cr3t" not in str([n.payload for n in queued])


def test_request_and_grant_notices_name_user_resources_and_expiry(
        session: Session, catalog: Catalog) -> None:
    request, grant = add_request(session), add_grant(session, catalog)
    record_event(session, "request.created", target_kind="access_request", target=request.id)
    record_event(session, "grant.active", target_kind="grant", target=str(grant.id))
    created, active = notices(session)
    assert created.event_key == f"request.created:{request.id}"
    assert created.payload["expires_at"] is None  # not approved yet
    assert (created.payload["user"], created.payload["resources"], created.payload["roles"],
            created.payload["request_id"], created.payload["reason"]) == (
        "alice", ["111122223333/AdministratorAccess"], ["db-admin"], request.id, "because")
    assert active.event_key == f"grant.active:{grant.id}"
    assert active.payload["resources"] == [f"{catalog.account_id}/AdministratorAccess"]
    assert active.payload["expires_at"] == grant.expires_at.isoformat()
    assert active.payload["request_id"] == "req-0badcafe" and active.payload["actor"] == "bob"


def test_same_event_is_queued_once_but_repeatable_events_each_time(
        session: Session, catalog: Catalog) -> None:
    grant = add_grant(session, catalog)
    before = session.scalar(select(func.max(AuditEvent.id))) or 0
    for _ in range(2):
        record_event(session, "grant.revoked", target_kind="grant", target=str(grant.id))
        record_event(session, "user.revoked", target_kind="user", target="alice")
    assert len(notices(session, "grant.revoked")) == 1
    assert len(notices(session, "user.revoked")) == 2
    trail = session.scalars(select(AuditEvent.action).where(AuditEvent.id > before)).all()
    assert trail.count("grant.revoked") == 2  # the trail keeps both


def test_bulk_audit_writes_queue_notices_too(session: Session, catalog: Catalog) -> None:
    grant = add_grant(session, catalog)
    about = {"target_kind": "grant", "target": str(grant.id), "principal_name": "alice"}
    written = audit.record_many(session, [
        {"actor": "system:poll", "action": "grant.activated", **about},  # another name
        {"actor": "system:poll", "action": "grant.revoked", **about},
        {"actor": "system:poll", "action": "grant.failed", **about,
         "details": {"password": "hunter2"}},
    ])
    assert [e.action for e in written] == ["grant.activated", "grant.revoked", "grant.failed"]
    assert written[2].details == {"password": audit.REDACTED}
    assert [(n.event, n.event_key) for n in notices(session)] == [
        ("grant.active", f"grant.active:{grant.id}"),
        ("grant.revoked", f"grant.revoked:{grant.id}"),
    ]
    assert audit.record_many(session, []) == []


def keyed(session: Session, prefix: str) -> list[NotificationOutbox]:
    return list(session.scalars(select(NotificationOutbox).where(
        NotificationOutbox.event_key.startswith(prefix))))


def test_rolled_back_transaction_leaves_no_notice(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(RuntimeError), transaction(sessions) as session:
        record_event(session, "user.revoked", target_kind="user", target="rolled-back")
        assert len(keyed(session, "user.revoked:rolled-back:")) == 1  # inside the transaction
        raise RuntimeError("the change failed")
    with transaction(sessions) as session:
        assert keyed(session, "user.revoked:rolled-back:") == []
        record_event(session, "user.revoked", target_kind="user", target="committed")
    with transaction(sessions) as session:
        (kept,) = keyed(session, "user.revoked:committed:")
        session.execute(delete(NotificationOutbox).where(NotificationOutbox.id == kept.id))


def test_expiring_sweep_queues_once_per_expiry_time(session: Session, catalog: Catalog) -> None:
    queue_expiring_notices(session=session, lead_seconds=900)  # grants other tests left live
    soon = add_grant(session, catalog, expires_in=60, user="soon")
    add_grant(session, catalog, expires_in=7200, user="later")
    add_grant(session, catalog, expires_in=None, user="forever")
    add_grant(session, catalog, expires_in=60, state=GrantState.PENDING, user="not-yet-active")
    add_grant(session, catalog, expires_in=-5, user="already-expired")
    assert queue_expiring_notices(session=session, lead_seconds=900) == 1
    assert queue_expiring_notices(session=session, lead_seconds=900) == 0
    (notice,) = [n for n in notices(session, "grant.expiring")
                 if n.payload["resources"] == [f"{catalog.account_id}/AdministratorAccess"]]
    assert notice.payload["user"] == "soon"
    assert notice.event_key == f"grant.expiring:{soon.id}:{soon.expires_at.isoformat()}"
    soon.expires_at = soon.expires_at + timedelta(seconds=120)  # an extension
    session.flush()
    assert queue_expiring_notices(session=session, lead_seconds=900) == 1
    trail = session.scalars(select(AuditEvent).where(  # the trail also holds other tests'
        AuditEvent.action == "grant.expiring", AuditEvent.account_id == catalog.account_id))
    assert [e.target for e in trail] == [str(soon.id)] * 2

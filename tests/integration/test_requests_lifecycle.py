"""After approval: extension (grants move with the request, no gap) and promotion into an
access list (membership, PROMOTED), on the real ledger (PostgreSQL and SQLite)."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise

import pytest
from sqlalchemy import select

from models.domain import MemberKind, PrincipalType, RequestState
from models.errors import PolicyDenied
from models.ledger import tables
from models.ledger.base import database_time
from models.ledger.db import transaction
from models.ledger.enums import GrantState, SourceKind
from models.ledger.grants import transition, upsert_grant
from tasks.access import request_changes as rc
from tasks.access import requests as rq
from tasks.provisioning.expiry import ExpiryReport, expire_due_grants
from tests.integration.requests_support import (
    OPERATOR,
    PERMISSION_SETS,
    STAGING,
    World,
    system_role_name,
)

pytest_plugins = ["tests.integration.ledger_fixtures", "tests.integration.requests_fixtures"]

STAGING_ADMIN = f"{STAGING}/AdministratorAccess"


def approved(world: World, **kw) -> tables.AccessRequest:
    kw.setdefault("resources", [STAGING_ADMIN])
    request = rq.create_request(sessions=world.sessions, user="alice", reason="release",
                                actor=world.person("alice"), **kw)
    return rq.review_request(sessions=world.sessions, request_id=request.id,
                             actor=world.person("bob"),
                             decision="approve")


def request_grant(world: World, request: tables.AccessRequest, *path: GrantState) -> int:
    """What the sync engine would have made of the approved request: its grant, PENDING,
    then moved along ``path``."""
    with transaction(world.sessions) as session:
        grant, _ = upsert_grant(
            session, principal_type=PrincipalType.USER, principal_name=request.user_name,
            account_id=STAGING, permission_set_arn=PERMISSION_SETS["AdministratorAccess"],
            source_kind=SourceKind.REQUEST, source_id=request.id, expires_at=request.expires_at)
        for before, after in pairwise((GrantState.PENDING, *path)):
            assert transition(session, grant_id=grant.id, expected=before, to=after,
                              reason="An unexpected internal service exception was encountered")
        return grant.id


def active_grant(world: World, request: tables.AccessRequest) -> int:
    return request_grant(world, request, GrantState.PROVISIONING, GrantState.ACTIVE)


def rewind_expiries(world: World, request_id: str, *, until: datetime) -> None:
    """Move the request's grants' expiry back by as much as the database clock would have to
    move on to reach ``until`` (a test cannot move that clock)."""
    with transaction(world.sessions) as session:
        shift = until - database_time(session)
        for grant in session.scalars(select(tables.Grant).where(
                tables.Grant.source_id == request_id)):
            grant.expires_at -= shift


def grant_row(world: World, grant_id: int) -> tables.Grant:
    with world.sessions() as session:
        return session.get(tables.Grant, grant_id)


# --- extension -----------------------------------------------------------------------------


def test_extension_moves_the_live_grant_without_touching_its_state(world: World) -> None:
    request = approved(world, duration=timedelta(hours=1))
    grant_id = active_grant(world, request)

    extended = rc.extend_request(sessions=world.sessions, request_id=request.id,
                                 duration=timedelta(minutes=30), actor=world.person("carol"))

    assert extended.expires_at == request.expires_at + timedelta(minutes=30)
    grant = grant_row(world, grant_id)
    assert grant.state is GrantState.ACTIVE and grant.revoked_at is None
    assert grant.expires_at == extended.expires_at
    with world.sessions() as session:
        live = session.scalars(select(tables.Grant.id).where(
            tables.Grant.source_id == request.id)).all()
        event = session.scalars(select(tables.AuditEvent).where(
            tables.AuditEvent.action == "request.extended")).one()
    assert live == [grant_id]  # the same row: never deleted and re-created
    assert event.after == {"expires_at": extended.expires_at.isoformat()}


@pytest.mark.parametrize("path", [(GrantState.FAILED,),
                                  (GrantState.PROVISIONING, GrantState.FAILED)],
                         ids=["failed-from-pending", "failed-from-provisioning"])
def test_extension_moves_a_failed_create_past_the_old_expiry(
        world: World, path: tuple[GrantState, ...]) -> None:
    request = approved(world, duration=timedelta(hours=1))
    grant_id = request_grant(world, request, *path)

    extended = rc.extend_request(sessions=world.sessions, request_id=request.id,
                                 duration=timedelta(minutes=30), actor=world.person("carol"))

    grant = grant_row(world, grant_id)
    assert (grant.state, grant.failed_from) == (GrantState.FAILED,
                                                (GrantState.PENDING, *path)[-2])
    assert grant.expires_at == extended.expires_at
    # A minute past the old expiry, before sync retried the create: the sweep leaves it be.
    rewind_expiries(world, request.id, until=request.expires_at + timedelta(minutes=1))
    with transaction(world.sessions) as session:
        expire_due_grants(session, batch=100, drift_mode="report", report=ExpiryReport())
    assert grant_row(world, grant_id).state is GrantState.FAILED


def test_extension_is_capped_at_twice_the_requests_cap(world: World) -> None:
    request = approved(world)  # the cap, 4h
    first = rc.extend_request(sessions=world.sessions, request_id=request.id,
                              duration=timedelta(hours=10), actor=world.person("carol"))
    assert first.expires_at == request.decided_at + timedelta(hours=8)
    with pytest.raises(PolicyDenied, match="maximum of 8h"):
        rc.extend_request(sessions=world.sessions, request_id=request.id,
                          duration=timedelta(minutes=1), actor=world.person("carol"))


def test_extension_follows_the_review_rules(world: World) -> None:
    world.add_user("rita", ["developer", "security-reviewer"])
    own = rq.create_request(sessions=world.sessions, user="rita", resources=[STAGING_ADMIN],
                            reason="x", actor=world.person("rita"))
    with pytest.raises(PolicyDenied, match="only APPROVED"):
        rc.extend_request(sessions=world.sessions, request_id=own.id,
                          duration=timedelta(hours=1), actor=world.person("bob"))
    rq.review_request(sessions=world.sessions, request_id=own.id, actor=world.person("bob"),
                      decision="approve")
    with pytest.raises(PolicyDenied, match="own request"):
        rc.extend_request(sessions=world.sessions, request_id=own.id,
                          duration=timedelta(hours=1), actor=world.person("rita"))


def test_a_request_being_revoked_cannot_be_extended(world: World) -> None:
    request = approved(world)
    grant_id = active_grant(world, request)
    with transaction(world.sessions) as session:
        assert transition(session, grant_id=grant_id, expected=GrantState.ACTIVE,
                          to=GrantState.REVOKING)
    with pytest.raises(PolicyDenied, match="being revoked"):
        rc.extend_request(sessions=world.sessions, request_id=request.id,
                          duration=timedelta(hours=1), actor=world.person("carol"))
    with world.sessions() as session:
        assert session.get(tables.AccessRequest, request.id).expires_at == request.expires_at


# --- promotion -----------------------------------------------------------------------------


def test_promotion_is_refused_when_the_list_does_not_cover_the_request(world: World) -> None:
    world.add_list("staging-readers", owners=["bob"],
                   roles=[system_role_name(STAGING, "ReadOnlyAccess")])
    request = approved(world)
    with pytest.raises(PolicyDenied, match=f"does not grant resource {STAGING_ADMIN}"):
        rc.promote_request(sessions=world.sessions, request_id=request.id,
                           access_list="staging-readers", actor=world.person("bob"))


def test_promotion_adds_a_long_term_membership(world: World) -> None:
    world.add_list("staging-admins", owners=["bob"],
                   roles=[system_role_name(STAGING, "AdministratorAccess")])
    request = approved(world)

    promoted = rc.promote_request(sessions=world.sessions, request_id=request.id,
                                  access_list="staging-admins", actor=world.person("bob"))

    assert promoted.state is RequestState.PROMOTED
    assert promoted.promoted_to == "staging-admins"
    with world.sessions() as session:
        membership = session.scalars(select(tables.Membership).where(
            tables.Membership.list_name == "staging-admins")).one()
        actions = session.scalars(select(tables.AuditEvent.action).where(
            tables.AuditEvent.request_id == request.id).order_by(tables.AuditEvent.id)).all()
    assert (membership.member_name, membership.member_kind) == ("alice", MemberKind.USER)
    assert membership.expires_at is None
    assert actions[-2:] == ["access_list.member_added", "request.promoted"]


def test_a_role_request_is_covered_by_a_list_granting_its_assignments(world: World) -> None:
    role = system_role_name(STAGING, "PowerUserAccess")
    world.add_role("staging-power", {"allow": {"account_assignments": [
        {"account": "Staging", "permission_set": "PowerUserAccess"}]}})
    world.add_list("staging-power-users", owners=["bob"], roles=["staging-power"])
    request = approved(world, resources=[], roles=[role])
    promoted = rc.promote_request(sessions=world.sessions, request_id=request.id,
                                  access_list="staging-power-users", actor=world.person("bob"))
    assert promoted.state is RequestState.PROMOTED


def test_promotion_needs_an_owner_who_may_review(world: World) -> None:
    world.add_list("staging-admins", owners=["bob", "alice"],
                   roles=[system_role_name(STAGING, "AdministratorAccess")])
    request = approved(world)
    with pytest.raises(PolicyDenied, match="does not own"):
        rc.promote_request(sessions=world.sessions, request_id=request.id,
                           access_list="staging-admins", actor=world.person("carol"))
    with pytest.raises(PolicyDenied, match="own request"):
        rc.promote_request(sessions=world.sessions, request_id=request.id,
                           access_list="staging-admins", actor=world.person("alice"))
    as_admin = rc.promote_request(sessions=world.sessions, request_id=request.id,
                                  access_list="staging-admins", actor=OPERATOR)
    assert as_admin.state is RequestState.PROMOTED

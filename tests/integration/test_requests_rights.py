"""Rights re-checked at every decision (issue 17, holes 1, 2 and 6): approval, extension and
promotion re-evaluate the requester's right, approvals and cap against the policy in force;
an extension needs as many approvals as its request; a person's deletion or suspension ends
their requests and tokens at once; promotion into a broader list needs confirmation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select

from models.domain import MemberKind, RequestState
from models.errors import PolicyDenied
from models.ledger import tables
from models.ledger.db import transaction
from tasks.access import request_changes as rc
from tasks.access import requests as rq
from tasks.access.offboarding import revoke_user
from tasks.access.resources import delete_resource
from tasks.access.tokens import create_token, verify_token
from tests.integration.requests_support import (
    OPERATOR,
    PROD,
    ROLES,
    STAGING,
    World,
    system_role_name,
)

pytest_plugins = ["tests.integration.ledger_fixtures", "tests.integration.requests_fixtures"]

STAGING_ADMIN = f"{STAGING}/AdministratorAccess"
PROD_ADMIN_ROLE = system_role_name(PROD, "AdministratorAccess")


def file(world: World, user: str = "alice", **kw: Any) -> tables.AccessRequest:
    kw.setdefault("resources", [STAGING_ADMIN])
    return rq.create_request(sessions=world.sessions, actor=world.person(user),
                             reason="release", **kw)


def approve(world: World, request_id: str, reviewer: str) -> tables.AccessRequest:
    return rq.review_request(sessions=world.sessions, request_id=request_id,
                             actor=world.person(reviewer), decision="approve")


def set_roles(world: World, user: str, roles: list[str]) -> None:
    with transaction(world.sessions) as session:
        session.get(tables.User, user).roles = roles


def set_role_spec(world: World, name: str, spec: dict[str, Any]) -> None:
    with transaction(world.sessions) as session:
        session.get(tables.Role, name).spec = spec


def audit(world: World, request_id: str) -> list[tuple[str, str | None]]:
    with world.sessions() as session:
        return list(session.execute(select(tables.AuditEvent.action, tables.AuditEvent.reason)
                                    .where(tables.AuditEvent.request_id == request_id)
                                    .order_by(tables.AuditEvent.id)))


def test_approval_denies_a_request_whose_requester_lost_the_role(world: World) -> None:
    request = file(world)
    set_roles(world, "alice", [])  # developer taken away after filing
    decided = approve(world, request.id, "bob")
    assert decided.state is RequestState.DENIED
    action, reason = audit(world, request.id)[-1]
    assert action == "request.denied" and "right to request is gone" in reason
    assert "none of your roles allows requesting it" in reason


def test_approval_denies_a_request_whose_requester_left_the_granting_list(world: World) -> None:
    world.add_user("lee")
    world.add_list("devs", owners=["bob"], roles=["developer"], members=["lee"])
    request = file(world, "lee")
    with transaction(world.sessions) as session:
        session.execute(delete(tables.Membership).where(
            tables.Membership.list_name == "devs",
            tables.Membership.member_kind == MemberKind.USER))
    assert approve(world, request.id, "bob").state is RequestState.DENIED


def test_approval_applies_the_approvals_and_cap_in_force_now(world: World) -> None:
    request = file(world)
    assert (request.required_approvals, request.duration_seconds) == (1, 4 * 3600)
    stricter = {**ROLES["developer"], "allow": {**ROLES["developer"]["allow"], "request": {
        **ROLES["developer"]["allow"]["request"], "max_duration": "1h", "approvals": 2}}}
    set_role_spec(world, "developer", stricter)
    first = approve(world, request.id, "bob")
    assert first.state is RequestState.PENDING
    assert (first.required_approvals, first.duration_seconds) == (2, 3600)
    second = approve(world, request.id, "carol")
    assert second.state is RequestState.APPROVED
    assert second.expires_at - second.decided_at == timedelta(hours=1)
    assert "request.terms_changed" in [action for action, _ in audit(world, request.id)]


def test_an_extension_needs_as_many_approvals_as_its_request(world: World) -> None:
    request = file(world, "dave", resources=[], roles=[PROD_ADMIN_ROLE])
    assert request.required_approvals == 2
    approve(world, request.id, "bob")
    approved = approve(world, request.id, "carol")
    expires = approved.expires_at
    hour = timedelta(hours=1)

    first = rc.extend_request(sessions=world.sessions, request_id=request.id, duration=hour,
                              actor=world.person("bob"))
    assert first.expires_at == expires and first.extension_seconds == 3600
    with pytest.raises(PolicyDenied, match="already approved this extension"):
        rc.extend_request(sessions=world.sessions, request_id=request.id, duration=hour,
                          actor=world.person("bob"))
    with pytest.raises(PolicyDenied, match="by 1h awaits approval"):
        rc.extend_request(sessions=world.sessions, request_id=request.id,
                          duration=2 * hour, actor=world.person("carol"))
    view = rq.get_request(sessions=world.sessions, viewer=OPERATOR, request_id=request.id)
    assert (view.pending_extension, view.extension_approvals) == ("1h", 1)

    second = rc.extend_request(sessions=world.sessions, request_id=request.id, duration=hour,
                               actor=world.person("carol"))
    assert second.expires_at == expires + hour and second.extension_seconds is None


def test_an_extension_is_refused_and_audited_when_the_right_is_gone(world: World) -> None:
    request = file(world)
    approve(world, request.id, "bob")
    set_roles(world, "alice", [])
    with pytest.raises(PolicyDenied, match="right to request is gone"):
        rc.extend_request(sessions=world.sessions, request_id=request.id,
                          duration=timedelta(hours=1), actor=world.person("carol"))
    assert audit(world, request.id)[-1][0] == "request.extension_refused"


def test_deleting_a_user_ends_their_requests_and_tokens_in_one_transaction(
        world: World) -> None:
    pending, approved = file(world), file(world)
    approve(world, approved.id, "bob")
    _, token = create_token(sessions=world.sessions, user="alice", actor=OPERATOR)
    delete_resource(sessions=world.sessions, kind="user", name="alice", actor="admin")
    world.add_user("alice", ["developer"])  # the name again, another person
    assert verify_token(sessions=world.sessions, token=token) is None
    with world.sessions() as session:
        states = {r.id: r.state for r in session.scalars(select(tables.AccessRequest))}
        revoked = session.scalars(select(tables.ApiToken.revoked_at)).one()
    assert states == {pending.id: RequestState.DENIED, approved.id: RequestState.EXPIRED}
    assert revoked is not None
    with pytest.raises(PolicyDenied, match="only PENDING"):
        approve(world, pending.id, "carol")


def test_revoking_a_user_revokes_their_tokens_and_denies_their_requests(world: World) -> None:
    pending = file(world)
    _, token = create_token(sessions=world.sessions, user="alice", actor=OPERATOR)
    revocation = revoke_user(sessions=world.sessions, user="alice", reason="left", actor="hr")
    assert revocation.denied_requests == (pending.id,) and len(revocation.revoked_tokens) == 1
    assert verify_token(sessions=world.sessions, token=token) is None


def test_promotion_into_a_broader_list_needs_confirmation(world: World) -> None:
    admin_role = system_role_name(STAGING, "AdministratorAccess")
    world.add_list("staging-admins", owners=["bob"], roles=[admin_role])
    world.add_list("staging-all", owners=["bob"],
                   roles=[admin_role, system_role_name(STAGING, "ReadOnlyAccess")])
    world.add_list("prod-admins", owners=["carol"], roles=[PROD_ADMIN_ROLE])
    request = file(world)

    offered = rc.promotion_lists(sessions=world.sessions, request_id=request.id,
                                 viewer=world.person("bob"))
    assert [(c.access_list, c.exact, c.owned) for c in offered] == [
        ("staging-admins", True, True), ("staging-all", False, True)]
    assert offered[1].broader == [f"resource {STAGING}/ReadOnlyAccess"]
    with pytest.raises(PolicyDenied, match="grants more than request"):
        rc.promote_request(sessions=world.sessions, request_id=request.id,
                           access_list="staging-all", actor=world.person("bob"))
    promoted = rc.promote_request(sessions=world.sessions, request_id=request.id,
                                  access_list="staging-all", actor=world.person("bob"),
                                  confirm_broader=True)
    assert promoted.state is RequestState.PROMOTED
    assert audit(world, request.id)[-1][0] == "request.promoted"

"""Access requests on the real ledger (PostgreSQL and SQLite): what is requestable, creation
with duration caps and refusals, reviews, thresholds and break-glass."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.domain import RequestState
from models.errors import InputError, NotFound, PolicyDenied
from models.ledger import tables
from models.ledger.base import database_time
from tasks.access import requests as rq
from tasks.access.request_changes import extend_request
from tests.integration.requests_support import (
    OPERATOR,
    PROD,
    SANDBOX,
    STAGING,
    World,
    system_role_name,
)

pytest_plugins = ["tests.integration.ledger_fixtures", "tests.integration.requests_fixtures"]

STAGING_ADMIN = f"{STAGING}/AdministratorAccess"
PROD_ADMIN_ROLE = system_role_name(PROD, "AdministratorAccess")


def create(world: World, user: str = "alice", **kw) -> tables.AccessRequest:
    kw.setdefault("reason", "deploy hotfix")
    return rq.create_request(sessions=world.sessions, user=user, actor=OPERATOR, **kw)


def audit_actions(sessions: sessionmaker[Session], request_id: str) -> list[str]:
    with sessions() as session:
        return list(session.scalars(select(tables.AuditEvent.action).where(
            tables.AuditEvent.request_id == request_id).order_by(tables.AuditEvent.id)))


# --- requestable ---------------------------------------------------------------------------


def test_requestable_groups_permission_sets_by_account(world: World) -> None:
    view = rq.requestable_for(sessions=world.sessions, viewer=OPERATOR, user="alice")

    by_account = {a.account_name: sorted(a.permission_sets) for a in view.accounts}
    assert by_account == {
        "Production": ["ReadOnlyAccess"],  # PowerUser on Production is denied
        "Sandbox": ["PowerUserAccess", "ReadOnlyAccess"],
        "Staging": ["AdministratorAccess", "PowerUserAccess", "ReadOnlyAccess"],
    }
    assert system_role_name(STAGING, "PowerUserAccess") in view.roles
    assert system_role_name(PROD, "PowerUserAccess") not in view.roles
    assert view.max_duration == timedelta(hours=4)
    assert {row["kind"] for row in view.rows()} == {"role", "assignment"}


def test_deny_of_any_held_role_wins_over_another_roles_allow(world: World) -> None:
    world.add_role("billing-requester", {"allow": {"request": {"account_assignments": [
        {"account": "*", "permission_set": "BillingAccess"}]}}})
    world.add_user("frank", ["developer", "billing-requester"])

    view = rq.requestable_for(sessions=world.sessions, viewer=OPERATOR, user="frank")
    assert all("BillingAccess" not in a.permission_sets for a in view.accounts)
    with pytest.raises(PolicyDenied, match=f"{PROD}/BillingAccess: denied by role developer"):
        create(world, "frank", resources=[f"{PROD}/BillingAccess"])


def test_every_refused_item_is_named_with_its_reason(world: World) -> None:
    with pytest.raises(PolicyDenied) as refused:
        create(world, roles=["no-such-role", system_role_name(PROD, "PowerUserAccess")],
               resources=["999999999999/AdministratorAccess", "Production/AdministratorAccess"])
    message = str(refused.value)
    assert "role no-such-role: no such role" in message
    assert "PowerUserAccess-on-Production-111111111111: denied by role developer" in message
    assert "999999999999/AdministratorAccess: not in the catalog" in message
    assert f"{PROD}/AdministratorAccess: none of your roles allows" in message
    with world.sessions() as session:
        assert session.scalar(select(tables.AccessRequest.id)) is None


# --- creating ------------------------------------------------------------------------------


def test_resource_by_account_name_is_stored_by_account_id(world: World) -> None:
    request = create(world, resources=["Staging/AdministratorAccess"])
    assert request.resources == [STAGING_ADMIN]
    assert request.state is RequestState.PENDING
    assert request.required_approvals == 1
    assert audit_actions(world.sessions, request.id) == ["request.created"]


def test_duration_defaults_to_the_cap_and_is_capped_by_it(world: World) -> None:
    default = create(world, resources=[STAGING_ADMIN])
    asked = create(world, resources=[STAGING_ADMIN], duration=timedelta(minutes=90))
    too_long = create(world, resources=[STAGING_ADMIN], duration=timedelta(hours=10))
    assert default.duration_seconds == 4 * 3600
    assert asked.duration_seconds == 90 * 60
    assert too_long.duration_seconds == 4 * 3600


def test_the_tightest_item_cap_bounds_a_mixed_request(world: World) -> None:
    world.add_role("prod-admin-short", {"allow": {"request": {
        "account_assignments": [{"account": PROD, "permission_set": "AdministratorAccess"}],
        "max_duration": "30m"}}})
    world.add_user("gina", ["developer", "prod-admin-short"])
    request = create(world, "gina", resources=[STAGING_ADMIN, f"{PROD}/AdministratorAccess",
                                               f"{SANDBOX}/ReadOnlyAccess"])
    assert request.duration_seconds == 30 * 60


def test_unknown_or_suspended_requester_and_blank_reason_are_refused(world: World) -> None:
    world.add_user("sam", ["developer"], suspended=True)
    with pytest.raises(NotFound):
        create(world, "nobody", resources=[STAGING_ADMIN])
    with pytest.raises(PolicyDenied, match="suspended"):
        create(world, "sam", resources=[STAGING_ADMIN])
    with pytest.raises(InputError, match="reason"):
        create(world, resources=[STAGING_ADMIN], reason="  ")


def test_list_requests_filters_by_user_and_state(world: World) -> None:
    first = create(world, resources=[STAGING_ADMIN])
    create(world, "dave", roles=[PROD_ADMIN_ROLE])
    rq.review_request(sessions=world.sessions, request_id=first.id, actor=world.person("bob"),
                      decision="approve")
    approved = rq.list_requests(sessions=world.sessions, viewer=OPERATOR, state="approved")
    assert [(v.id, v.approved_by) for v in approved] == [(first.id, ["bob"])]
    assert [v.user for v in rq.list_requests(sessions=world.sessions, viewer=OPERATOR,
                                             user="dave")] == ["dave"]
    with pytest.raises(InputError, match="unknown request state"):
        rq.list_requests(sessions=world.sessions, viewer=OPERATOR, state="maybe")


# --- reviews -------------------------------------------------------------------------------


def test_nobody_reviews_their_own_request(world: World) -> None:
    world.add_user("rita", ["developer", "security-reviewer"])
    request = create(world, "rita", resources=[STAGING_ADMIN])
    with pytest.raises(PolicyDenied, match="own request"):
        rq.review_request(sessions=world.sessions, request_id=request.id,
                          actor=world.person("rita"),
                          decision="approve")


def test_reviewer_needs_review_rights_over_every_item(world: World) -> None:
    staging = create(world, resources=[STAGING_ADMIN])
    production = create(world, roles=[system_role_name(PROD, "ReadOnlyAccess")])
    with pytest.raises(PolicyDenied, match="may not review"):
        rq.review_request(sessions=world.sessions, request_id=production.id,
                          actor=world.person("erin"),
                          decision="approve")
    with pytest.raises(PolicyDenied, match="may not review"):
        rq.review_request(sessions=world.sessions, request_id=staging.id,
                          actor=world.person("dave"),
                          decision="approve")
    approved = rq.review_request(sessions=world.sessions, request_id=staging.id,
                                 actor=world.person("erin"), decision="approve")
    assert approved.state is RequestState.APPROVED


def test_two_approvals_are_needed_and_the_last_starts_the_clock(world: World) -> None:
    request = create(world, "dave", roles=[PROD_ADMIN_ROLE])
    assert request.required_approvals == 2
    first = rq.review_request(sessions=world.sessions, request_id=request.id,
                              actor=world.person("bob"),
                              decision="approve")
    assert first.state is RequestState.PENDING and first.expires_at is None
    with pytest.raises(PolicyDenied, match="already reviewed"):
        rq.review_request(sessions=world.sessions, request_id=request.id, actor=world.person("bob"),
                          decision="approve")
    with world.sessions() as session:
        before = database_time(session)
    second = rq.review_request(sessions=world.sessions, request_id=request.id,
                               actor=world.person("carol"), decision="approve")
    assert second.state is RequestState.APPROVED
    assert second.decided_at >= before
    assert second.expires_at == second.decided_at + timedelta(hours=2)
    assert audit_actions(world.sessions, request.id) == [
        "request.created", "request.reviewed", "request.reviewed", "request.approved"]


def test_a_deny_ends_the_request_at_once(world: World) -> None:
    request = create(world, "dave", roles=[PROD_ADMIN_ROLE])
    denied = rq.review_request(sessions=world.sessions, request_id=request.id,
                               actor=world.person("bob"),
                               decision="deny", reason="not on call")
    assert denied.state is RequestState.DENIED and denied.expires_at is None
    with pytest.raises(PolicyDenied, match="only PENDING"):
        rq.review_request(sessions=world.sessions, request_id=request.id,
                          actor=world.person("carol"),
                          decision="approve")
    assert audit_actions(world.sessions, request.id)[-1] == "request.denied"


def test_unknown_decision_and_request_are_input_errors(world: World) -> None:
    with pytest.raises(NotFound):
        rq.review_request(sessions=world.sessions, request_id="req-nope", actor=world.person("bob"),
                          decision="approve")
    with pytest.raises(InputError, match="approve or deny"):
        rq.review_request(sessions=world.sessions, request_id="req-nope", actor=world.person("bob"),
                          decision="maybe")


# --- break-glass ---------------------------------------------------------------------------


def test_break_glass_self_approves_capped_and_alerts(world: World) -> None:
    request = create(world, "dave", roles=[PROD_ADMIN_ROLE], break_glass=True,
                     duration=timedelta(hours=2), reason="prod down, pager 4411")
    assert request.state is RequestState.APPROVED
    assert request.duration_seconds == 3600  # break_glass_max_duration, not max_duration
    assert request.expires_at == request.decided_at + timedelta(hours=1)
    with world.sessions() as session:
        alert = session.scalars(select(tables.AuditEvent).where(
            tables.AuditEvent.request_id == request.id,
            tables.AuditEvent.action == "breakglass.used")).one()
        review = session.scalars(select(tables.RequestReview).where(
            tables.RequestReview.request_id == request.id)).one()
    assert alert.details["alert"] is True and alert.principal_name == "dave"
    assert alert.reason == "prod down, pager 4411"
    assert review.reviewer == "dave"


def test_break_glass_needs_a_break_glass_rule_for_every_item(world: World) -> None:
    with pytest.raises(PolicyDenied, match="break-glass is not allowed"):
        create(world, "alice", resources=[STAGING_ADMIN], break_glass=True)
    with pytest.raises(PolicyDenied, match="break-glass is not allowed"):
        create(world, "dave", roles=[PROD_ADMIN_ROLE], resources=[STAGING_ADMIN],
               break_glass=True)


def test_requestable_terms_are_per_item_not_per_account(world: World) -> None:
    view = rq.requestable_for(sessions=world.sessions, viewer=OPERATOR, user="dave")

    rows = {row["name"]: row for row in view.rows()}
    admin = rows[f"Production ({PROD})/AdministratorAccess"]
    read = rows[f"Production ({PROD})/ReadOnlyAccess"]
    assert (admin["max_duration"], admin["approvals"], admin["break_glass"]) == (
        "2h", 2, "up to 1h")
    assert (read["max_duration"], read["approvals"], read["break_glass"]) == ("4h", 1, "no")
    role = rows[PROD_ADMIN_ROLE]
    assert (role["kind"], role["max_duration"], role["approvals"]) == ("role", "2h", 2)
    items = {i["name"]: i for i in view.as_document()["items"]}
    assert items[f"Production ({PROD})/AdministratorAccess"]["break_glass_max_duration"] == "1h"
    assert items[f"Production ({PROD})/ReadOnlyAccess"]["break_glass_max_duration"] is None


def test_after_an_extension_the_duration_is_the_new_total(world: World) -> None:
    request = create(world, resources=[STAGING_ADMIN], duration=timedelta(hours=1))
    rq.review_request(sessions=world.sessions, request_id=request.id,
                      actor=world.person("bob"), decision="approve")
    extend_request(sessions=world.sessions, request_id=request.id,
                   duration=timedelta(minutes=30), actor=world.person("bob"))
    shown = rq.get_request(sessions=world.sessions, viewer=OPERATOR, request_id=request.id)
    assert shown.duration == "1h30m"
    assert shown.expires_at - shown.decided_at == timedelta(minutes=90)

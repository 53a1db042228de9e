"""Periodic access reviews of access lists by their owners, and which reviews are overdue."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from models.errors import NotFound, PolicyDenied
from models.ledger import tables
from models.ledger.base import database_time
from models.ledger.db import transaction
from tasks.access.reviews import overdue_reviews, review_access_list
from tests.integration.requests_support import World

pytest_plugins = ["tests.integration.ledger_fixtures", "tests.integration.requests_fixtures"]

DAY = 86400


def members(world: World, list_name: str) -> list[str]:
    with world.sessions() as session:
        return sorted(session.scalars(select(tables.Membership.member_name).where(
            tables.Membership.list_name == list_name)))


def test_only_an_owner_reviews(world: World) -> None:
    world.add_list("oncall", owners=["bob"], roles=["oncall-breakglass"],
                   members=["alice", "dave"], recurrence_seconds=30 * DAY)
    with pytest.raises(PolicyDenied, match="not an owner"):
        review_access_list(sessions=world.sessions, list_name="oncall", reviewer="carol",
                           remove=["dave"])
    with pytest.raises(NotFound):
        review_access_list(sessions=world.sessions, list_name="nope", reviewer="bob")
    assert members(world, "oncall") == ["alice", "dave"]


def test_review_removes_members_and_schedules_the_next_one(world: World) -> None:
    world.add_list("oncall", owners=["bob"], roles=["oncall-breakglass"],
                   members=["alice", "dave"], recurrence_seconds=30 * DAY)
    with world.sessions() as session:
        before = database_time(session)

    review = review_access_list(sessions=world.sessions, list_name="oncall", reviewer="bob",
                                remove=["dave"], notes="dave left the rota")

    assert review.removed == ["dave"]
    assert members(world, "oncall") == ["alice"]
    assert review.next_review_at == review.reviewed_at + timedelta(days=30)
    assert review.reviewed_at >= before
    with world.sessions() as session:
        actions = session.scalars(select(tables.AuditEvent.action).where(
            tables.AuditEvent.target == "oncall").order_by(tables.AuditEvent.id)).all()
        stored = session.get(tables.AccessList, "oncall").next_review_at
    assert actions == ["access_list.member_removed", "access_list.reviewed"]
    assert stored == review.next_review_at


def test_removing_a_non_member_changes_nothing(world: World) -> None:
    world.add_list("oncall", owners=["bob"], roles=[], members=["alice"],
                   recurrence_seconds=DAY)
    with pytest.raises(NotFound, match="ghost"):
        review_access_list(sessions=world.sessions, list_name="oncall", reviewer="bob",
                           remove=["alice", "ghost"])
    assert members(world, "oncall") == ["alice"]


OURS = {"fresh", "stale", "no-schedule"}


def test_overdue_lists_include_never_reviewed_ones_due_since_creation(world: World) -> None:
    world.add_list("fresh", owners=["bob"], roles=[], recurrence_seconds=30 * DAY)
    world.add_list("stale", owners=["bob"], roles=[], recurrence_seconds=DAY)
    world.add_list("no-schedule", owners=["bob"], roles=[])
    with transaction(world.sessions) as session:
        long_ago = database_time(session) - timedelta(days=3)
        session.execute(update(tables.AccessList).where(tables.AccessList.name.in_(OURS))
                        .values(created_at=long_ago))

    with world.sessions() as session:
        overdue = [(o.list_name, o.due_at) for o in overdue_reviews(session=session)
                   if o.list_name in OURS]  # other tests' committed lists may be due too
    assert overdue == [("stale", long_ago + timedelta(days=1))]

    review_access_list(sessions=world.sessions, list_name="stale", reviewer="bob")
    with world.sessions() as session:
        assert not {o.list_name for o in overdue_reviews(session=session)} & OURS

"""Read helpers on PostgreSQL and SQLite: views for `get`, the audit trail, holders at T."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from models.domain import PrincipalType
from models.errors import NotFound
from models.ledger import tables
from models.ledger.base import database_time
from models.ledger.enums import GrantState, SourceKind
from models.ledger.grants import transition, upsert_grant
from tasks.access import queries
from tasks.access.permissions import operator
from tasks.access.resources import apply_resources
from tests.integration.services_support import (
    example_resources,
    new_actor,
    sandbox_assignments,
    seed_system_roles,
)

pytest_plugins = ["tests.integration.services_fixtures"]

Sessions = sessionmaker[Session]

OPERATOR = operator("test:operator")


@pytest.fixture
def examples(ledger: Sessions) -> Sessions:
    seed_system_roles(ledger)
    apply_resources(sessions=ledger, loaded=example_resources(), actor="setup")
    return ledger


def test_access_lists_count_live_members_and_flag_overdue_reviews(examples: Sessions) -> None:
    with examples.begin() as session:
        session.execute(update(tables.AccessList).where(tables.AccessList.name == "finance")
                        .values(next_review_at=database_time(session) - timedelta(days=1)))
    views = {v.name: v for v in queries.list_access_lists(sessions=examples, viewer=OPERATOR)}
    sre = views["sre"]
    assert sre.member_count == 2  # frank's membership expired in 2025
    assert {m.name: m.live for m in sre.members} == {"dave": True, "erin": True, "frank": False}
    assert sre.recurrence == "90d" and not sre.review_overdue
    assert views["finance"].review_overdue
    assert views["security"].next_review_at is None and not views["security"].review_overdue
    engineering = queries.get_access_list(sessions=examples, viewer=OPERATOR, name="engineering")
    assert {m.name: m.kind for m in engineering.members} == {
        "bob": "user", "platform-admins": "access_list"}


def test_users_and_roles_show_who_holds_what(examples: Sessions) -> None:
    alice = queries.get_user(sessions=examples, viewer=OPERATOR, name="alice")
    assert alice.roles == ["developer"] and alice.lists == ["platform-admins"]
    developer = queries.get_role(sessions=examples, viewer=OPERATOR, name="developer")
    assert developer.holders == ["alice", "bob", "dave"] and not developer.system
    roles = {r.name: r for r in queries.list_roles(sessions=examples, viewer=OPERATOR)}
    admin = roles["AdministratorAccess-on-Production-111111111111"]
    assert admin.system and admin.account_id == "111111111111"
    assert admin.granted_by == ["platform-admins"]
    assert [u.name for u in queries.list_users(sessions=examples,
                                               viewer=OPERATOR)][:2] == ["alice", "bob"]
    with pytest.raises(NotFound, match="user 'zed' not found"):
        queries.get_user(sessions=examples, viewer=OPERATOR, name="zed")
    with pytest.raises(NotFound, match="role 'zed' not found"):
        queries.get_role(sessions=examples, viewer=OPERATOR, name="zed")


def test_audit_trail_filters_by_user(ledger: Sessions) -> None:
    from tests.integration.services_support import loaded, user_yaml

    actor = new_actor()
    apply_resources(sessions=ledger, loaded=loaded(user_yaml("ann") + user_yaml("ben")),
                    actor=actor)
    about_ann = queries.audit_trail(sessions=ledger, viewer=OPERATOR, user="ann")
    assert [(e["action"], e["target"]) for e in about_ann][-1] == ("resource.created", "ann")
    assert all(e["target"] != "ben" for e in about_ann)
    mine = queries.audit_trail(sessions=ledger, viewer=OPERATOR, user=actor)
    assert len(mine) == 2 and mine[0]["actor"] == actor


def test_holders_at_answers_from_grant_times(ledger: Sessions) -> None:
    seed_system_roles(ledger)
    assignment = sandbox_assignments()[0]
    with ledger.begin() as session:
        before = database_time(session)
        grant, _ = upsert_grant(
            session, principal_type=PrincipalType.GROUP, principal_name="platform-admins",
            account_id=assignment.account.id,
            permission_set_arn=assignment.permission_set.arn,
            source_kind=SourceKind.ACCESS_LIST, source_id="platform-admins")
        transition(session, grant_id=grant.id, expected=GrantState.PENDING,
                   to=GrantState.PROVISIONING)
        transition(session, grant_id=grant.id, expected=GrantState.PROVISIONING,
                   to=GrantState.ACTIVE)
    with ledger() as session:
        now = database_time(session)
    (held,) = queries.holders_at(sessions=ledger, viewer=OPERATOR, at=now,
                                 account_id=assignment.account.id)
    assert (held["principal"], held["permission_set"]) == (
        "platform-admins", assignment.permission_set.name)
    assert queries.holders_at(sessions=ledger, viewer=OPERATOR, at=before) == []

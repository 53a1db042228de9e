"""delete_resource on PostgreSQL and SQLite: refusals that name what still refers to the
resource, --force cascades, system roles, audit events."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.errors import InputError, NotFound, PolicyDenied
from models.ledger import tables
from tasks.access.resources import apply_resources, delete_resource
from tests.integration.services_support import (
    audit_actions,
    list_yaml,
    loaded,
    new_actor,
    seed_system_roles,
    user_yaml,
)

pytest_plugins = ["tests.integration.services_fixtures"]

Sessions = sessionmaker[Session]
ROLE = "kind: role\nmetadata: {name: reader}\nspec: {}\n---\n"


@pytest.fixture
def people(ledger: Sessions) -> Sessions:
    """ann owns ops; ben holds role reader and is in ops; ops grants reader; all nests ops."""
    apply_resources(sessions=ledger, actor="setup", loaded=loaded(
        ROLE + user_yaml("ann") + user_yaml("ben", roles=("reader",))
        + list_yaml("ops", owners=("ann",), users=("ann", "ben"), roles=("reader",))
        + list_yaml("all", owners=("ann",), lists=("ops",))))
    return ledger


def members_of(sessions: Sessions, list_name: str) -> list[str]:
    with sessions() as session:
        return sorted(session.scalars(select(tables.Membership.member_name).where(
            tables.Membership.list_name == list_name)))


def test_a_list_owner_is_not_deleted_without_force(people: Sessions) -> None:
    with pytest.raises(InputError, match="user 'ann' owns access list.s. all, ops") as raised:
        delete_resource(sessions=people, kind="user", name="ann", actor=new_actor())
    assert raised.value.fields == ("force",) and "--" not in raised.value.hint
    with people() as session:
        assert session.get(tables.User, "ann") is not None


def test_forced_user_delete_removes_ownerships_and_memberships(people: Sessions) -> None:
    actor = new_actor()
    result = delete_resource(sessions=people, kind="user", name="ann", actor=actor, force=True)
    rows = {(c.kind, c.name): c for c in result.changes}
    assert rows[("user", "ann")].action == "deleted"
    assert rows[("access_list", "ops")].fields == ("owners -ann", "members -ann")
    with people() as session:
        assert session.get(tables.User, "ann") is None
        assert session.get(tables.AccessList, "ops").owners == []
    assert members_of(people, "ops") == ["ben"]
    actions = audit_actions(people, actor)
    assert ("resource.deleted", "ann") in actions
    assert ("access_list.member_removed", "ops") in actions


def test_a_role_in_use_is_named_with_its_holders(people: Sessions) -> None:
    with pytest.raises(InputError, match=r"held by user\(s\) \[ben\] and granted by access "
                                         r"list\(s\) \[ops\]"):
        delete_resource(sessions=people, kind="role", name="reader", actor=new_actor())
    delete_resource(sessions=people, kind="role", name="reader", actor=new_actor(), force=True)
    with people() as session:
        assert session.get(tables.Role, "reader") is None
        assert session.get(tables.User, "ben").roles == []
        assert session.get(tables.AccessList, "ops").granted_roles == []


def test_system_roles_cannot_be_deleted_by_hand(ledger: Sessions) -> None:
    name = seed_system_roles(ledger)[0]
    with pytest.raises(PolicyDenied, match="is a system role"):
        delete_resource(sessions=ledger, kind="role", name=name, actor=new_actor(), force=True)
    with ledger() as session:
        assert session.get(tables.Role, name) is not None


def test_a_nested_list_is_not_deleted_while_nested(people: Sessions) -> None:
    with pytest.raises(InputError, match="access list 'ops' is nested in access list.s. all"):
        delete_resource(sessions=people, kind="access-list", name="ops", actor=new_actor())
    assert members_of(people, "ops") == ["ann", "ben"]
    delete_resource(sessions=people, kind="access_list", name="ops", actor=new_actor(),
                    force=True)
    assert members_of(people, "ops") == [] and members_of(people, "all") == []
    with people() as session:
        assert session.get(tables.AccessList, "ops") is None


def test_unknown_names_and_kinds(ledger: Sessions) -> None:
    with pytest.raises(NotFound, match="access-list 'nope' not found"):
        delete_resource(sessions=ledger, kind="access-list", name="nope", actor=new_actor())
    with pytest.raises(InputError, match="cannot delete a 'account'"):
        delete_resource(sessions=ledger, kind="account", name="x", actor=new_actor())

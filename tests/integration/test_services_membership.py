"""add_member / remove_member on PostgreSQL and SQLite: cycles and depth refused with the
chain named (also under concurrency), expiry updates, owner-only changes, audit events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models.errors import CycleError, DepthError, InputError, NotFound, PolicyDenied
from models.ledger import tables
from tasks.access.membership import add_member, remove_member
from tasks.access.permissions import operator, person_in
from tasks.access.resources import apply_resources
from tests.integration.ledger_support import run_together
from tests.integration.services_support import (
    audit_actions,
    list_yaml,
    loaded,
    new_actor,
    user_yaml,
)

pytest_plugins = ["tests.integration.services_fixtures"]

Sessions = sessionmaker[Session]
LATER = datetime(2031, 1, 31, tzinfo=UTC)


@pytest.fixture
def lists(ledger: Sessions) -> Sessions:
    """ann owns a, b and c; a nests b, b nests c."""
    apply_resources(sessions=ledger, actor="setup", loaded=loaded(
        user_yaml("ann") + user_yaml("ben")
        + list_yaml("a", owners=("ann",), lists=("b",))
        + list_yaml("b", owners=("ann",), lists=("c",)) + list_yaml("c", owners=("ann",))))
    return ledger


def expiry(sessions: Sessions, list_name: str, member: str) -> datetime | None:
    with sessions() as session:
        return session.scalars(select(tables.Membership.expires_at).where(
            tables.Membership.list_name == list_name,
            tables.Membership.member_name == member)).one()


def test_add_then_again_moves_the_expiry(lists: Sessions) -> None:
    actor = new_actor()
    first = add_member(sessions=lists, list_name="c", member="ben", kind="user",
                       actor=operator(actor))
    assert first.action == "added" and expiry(lists, "c", "ben") is None
    moved = add_member(sessions=lists, list_name="c", member="ben", kind="user",
                       actor=operator(actor),
                       expires=LATER)
    assert moved.action == "expiry_changed" and expiry(lists, "c", "ben") == LATER
    same = add_member(sessions=lists, list_name="c", member="ben", kind="user",
                      actor=operator(actor),
                      expires=LATER)
    assert same.action == "unchanged"
    assert audit_actions(lists, actor) == [("access_list.member_added", "c"),
                                           ("access_list.member_expiry_changed", "c")]


def test_a_cycle_is_refused_naming_it(lists: Sessions) -> None:
    with pytest.raises(CycleError) as raised:
        add_member(sessions=lists, list_name="c", member="a", kind="access_list",
                   actor=operator(new_actor()))
    assert raised.value.cycle == ["a", "b", "c", "a"]
    with pytest.raises(CycleError, match="c -> c"):
        add_member(sessions=lists, list_name="c", member="c", kind="access_list",
                   actor=operator(new_actor()))


def test_nesting_deeper_than_the_limit_is_refused(ledger: Sessions) -> None:
    chain = "".join(list_yaml(f"l{i}", lists=(f"l{i + 1}",)) for i in range(1, 10))
    apply_resources(sessions=ledger, actor="setup",
                    loaded=loaded(chain + list_yaml("l10") + list_yaml("l11")))
    with pytest.raises(DepthError) as raised:
        add_member(sessions=ledger, list_name="l10", member="l11", kind="access_list",
                   actor=operator(new_actor()))
    assert raised.value.chain[0] == "l1" and raised.value.chain[-1] == "l11"


def test_two_concurrent_halves_of_a_cycle_cannot_both_land(lists: Sessions) -> None:
    apply_resources(sessions=lists, actor="setup", loaded=loaded(
        list_yaml("x", owners=("ann",)) + list_yaml("y", owners=("ann",))))
    pairs = [("x", "y"), ("y", "x")]

    def nest(index: int) -> str:
        parent, child = pairs[index]
        try:
            add_member(sessions=lists, list_name=parent, member=child, kind="access_list",
                       actor=operator(new_actor()))
        except CycleError:
            return "refused"
        return "added"

    assert sorted(run_together(2, nest)) == ["added", "refused"]


def test_unknown_names_are_not_found(lists: Sessions) -> None:
    with pytest.raises(NotFound, match="access-list 'nope'"):
        add_member(sessions=lists, list_name="nope", member="ann", kind="user", actor=operator("x"))
    with pytest.raises(NotFound, match="user 'ghost'"):
        add_member(sessions=lists, list_name="a", member="ghost", kind="user", actor=operator("x"))
    with pytest.raises(NotFound, match="user ben of a"):
        remove_member(sessions=lists, list_name="a", member="ben", kind="user", actor=operator("x"))


def test_only_owners_may_change_when_acting_as_themselves(lists: Sessions) -> None:
    ben, ann = person_in(lists, name="ben", via="test"), person_in(lists, name="ann", via="test")
    with pytest.raises(PolicyDenied, match="'ben' is not an owner of access list 'c'"):
        add_member(sessions=lists, list_name="c", member="ben", kind="user", actor=ben)
    change = add_member(sessions=lists, list_name="c", member="ben", kind="user", actor=ann)
    assert change.action == "added"
    with pytest.raises(PolicyDenied):
        remove_member(sessions=lists, list_name="c", member="ben", kind="user", actor=ben)


def test_an_owner_cannot_add_themself_another_owner_can_and_it_notifies(
        lists: Sessions) -> None:
    apply_resources(sessions=lists, actor="setup", loaded=loaded(
        user_yaml("cid") + list_yaml("d", owners=("ann", "cid"))))
    ann, cid = person_in(lists, name="ann", via="test"), person_in(lists, name="cid", via="test")
    with pytest.raises(PolicyDenied, match="ann cannot add themself to access list 'd'"):
        add_member(sessions=lists, list_name="d", member="ann", kind="user", actor=ann)
    with pytest.raises(PolicyDenied, match="cannot add themself"):  # nor move their expiry
        add_member(sessions=lists, list_name="d", member="ann", kind="user", actor=ann,
                   expires=LATER)
    apply_resources(sessions=lists, actor="setup", loaded=loaded(
        list_yaml("anns-friends", owners=("cid",), users=("ann",))))
    with pytest.raises(PolicyDenied, match="cannot add themself"):  # nor inside a nested list
        add_member(sessions=lists, list_name="d", member="anns-friends", kind="access_list",
                   actor=ann)
    change = add_member(sessions=lists, list_name="d", member="ann", kind="user", actor=cid,
                        reason="on call this week")
    assert change.action == "added"
    with lists() as session:
        joined = session.scalars(select(tables.AuditEvent).where(
            tables.AuditEvent.action == "access_list.owner_joined")).one()
        notice = session.scalars(select(tables.NotificationOutbox).where(
            tables.NotificationOutbox.event == "access_list.owner_joined")).one()
    assert joined.principal_name == "ann" and joined.actor == cid.label
    assert notice.payload["user"] == "ann" and "d (added by" in notice.payload["reason"]
    # An operator (the admin token, the CLI) may add an owner too, also notified.
    add_member(sessions=lists, list_name="c", member="ann", kind="user",
               actor=operator("api:admin"))
    with lists() as session:
        assert session.scalar(select(func.count()).select_from(tables.NotificationOutbox).where(
            tables.NotificationOutbox.event == "access_list.owner_joined")) == 2


def test_remove_member_is_audited(lists: Sessions) -> None:
    actor = new_actor()
    change = remove_member(sessions=lists, list_name="a", member="b", kind="access_list",
                           actor=operator(actor), reason="reorganised")
    assert change.action == "removed"
    with lists() as session:
        event = session.scalars(select(tables.AuditEvent).where(
            tables.AuditEvent.actor == actor)).one()
        assert (event.action, event.reason, event.before["member"]) == (
            "access_list.member_removed", "reorganised", "b")
        assert session.scalars(select(tables.Membership).where(
            tables.Membership.list_name == "a")).all() == []


def test_expiries_must_be_future_and_aware(lists: Sessions) -> None:
    past = datetime.now(UTC) - timedelta(days=1)
    with pytest.raises(InputError, match="is in the past"):
        add_member(sessions=lists, list_name="c", member="ben", kind="user", actor=operator("x"),
                   expires=past)
    with pytest.raises(InputError, match="has no time zone"):
        add_member(sessions=lists, list_name="c", member="ben", kind="user", actor=operator("x"),
                   expires=datetime(2031, 1, 1))
    with pytest.raises(InputError, match="unknown member kind"):
        add_member(sessions=lists, list_name="c", member="ben", kind="group", actor=operator("x"))

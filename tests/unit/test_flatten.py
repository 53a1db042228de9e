"""Flattening nested access lists: reachability, expiry, cycles, depth, and a naive oracle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.domain import AccessListResource, MemberKind
from models.errors import CycleError, DepthError
from models.flatten import check_nesting, flatten, lists_of_user
from tests.unit.test_domain_builders import access_list

NOW = datetime(2026, 6, 1, tzinfo=UTC)
PAST, FUTURE = NOW - timedelta(days=1), NOW + timedelta(days=1)


def by_name(*lists: AccessListResource) -> dict[str, AccessListResource]:
    return {item.name: item for item in lists}


def naive_flatten(lists: dict[str, AccessListResource], at: datetime) -> dict[str, frozenset]:
    """The obvious recursive definition, no memo: the oracle for the fast version."""
    def reach(name: str) -> set[str]:
        users: set[str] = set()
        for member in lists[name].spec.members:
            if not member.active_at(at):
                continue
            if member.kind is MemberKind.USER:
                users.add(member.name)
            elif member.name in lists:
                users |= reach(member.name)
        return users
    return {name: frozenset(reach(name)) for name in lists}


def test_nested_lists_contribute_their_users() -> None:
    lists = by_name(access_list("sre", users=["dave", "erin"]),
                    access_list("admins", users=["alice"], lists=["sre"]),
                    access_list("eng", users=["bob"], lists=["admins"]))
    flat = flatten(lists, at=NOW)
    assert flat == {"sre": {"dave", "erin"}, "admins": {"alice", "dave", "erin"},
                    "eng": {"alice", "bob", "dave", "erin"}}


def test_expired_memberships_are_ignored_both_for_users_and_nested_lists() -> None:
    lists = by_name(access_list("sre", users=["dave", "frank"], expires={"frank": PAST}),
                    access_list("admins", users=["alice"], lists=["sre"],
                                expires={"sre": PAST, "alice": FUTURE}))
    assert flatten(lists, at=NOW) == {"sre": {"dave"}, "admins": {"alice"}}
    assert flatten(lists, at=PAST - timedelta(seconds=1))["admins"] == {"alice", "dave", "frank"}


def test_a_missing_nested_list_contributes_nobody() -> None:
    lists = by_name(access_list("admins", users=["alice"], lists=["deleted"]))
    assert flatten(lists, at=NOW) == {"admins": {"alice"}}


def test_a_cycle_is_named_in_the_error() -> None:
    lists = by_name(access_list("a", lists=["b"]), access_list("b", lists=["c"]),
                    access_list("c", lists=["a"]))
    with pytest.raises(CycleError) as caught:
        flatten(lists, at=NOW)
    assert caught.value.cycle == ["a", "b", "c", "a"]
    assert "a -> b -> c -> a" in str(caught.value)


def test_a_list_nesting_itself_is_a_cycle() -> None:
    with pytest.raises(CycleError, match="solo -> solo"):
        flatten(by_name(access_list("solo", lists=["solo"])), at=NOW)


def test_an_expired_back_edge_is_no_cycle_at_run_time_but_fails_the_structural_check() -> None:
    lists = by_name(access_list("a", lists=["b"]),
                    access_list("b", users=["u"], lists=["a"], expires={"a": PAST}))
    assert flatten(lists, at=NOW)["a"] == {"u"}
    with pytest.raises(CycleError):
        check_nesting(lists)


def chain(length: int) -> dict[str, AccessListResource]:
    names = [f"level-{i}" for i in range(1, length + 1)]
    lists = [access_list(n, lists=[child]) for n, child in zip(names, names[1:], strict=False)]
    return by_name(*lists, access_list(names[-1], users=["bob"]))


def test_ten_levels_are_allowed_eleven_are_not() -> None:
    assert flatten(chain(10), at=NOW)["level-1"] == {"bob"}
    with pytest.raises(DepthError) as caught:
        flatten(chain(11), at=NOW)
    assert caught.value.chain == [f"level-{i}" for i in range(1, 12)]
    assert flatten(chain(11), at=NOW, max_depth=11)["level-1"] == {"bob"}


def test_deep_chains_do_not_hit_the_recursion_limit() -> None:
    flat = flatten(chain(5000), at=NOW, max_depth=10_000)
    assert flat["level-1"] == {"bob"}


def test_lists_of_user_walks_up_through_nesting() -> None:
    lists = by_name(access_list("sre", users=["dave"]),
                    access_list("admins", lists=["sre"]),
                    access_list("eng", lists=["admins"], expires={"admins": PAST}),
                    access_list("other", users=["erin"]))
    assert lists_of_user(lists, user="dave", at=NOW) == {"sre", "admins"}
    assert lists_of_user(lists, user="dave", at=PAST - timedelta(1)) == {"sre", "admins", "eng"}
    assert lists_of_user(lists, user="nobody", at=NOW) == frozenset()


# --- properties --------------------------------------------------------------------------------

USERS = [f"u{i}" for i in range(6)]


@st.composite
def random_dags(draw: st.DrawFn) -> dict[str, AccessListResource]:
    """Up to 12 lists; list i may nest only lists j > i (so no cycle), memberships may expire."""
    count = draw(st.integers(min_value=1, max_value=12))
    names = [f"l{i}" for i in range(count)]
    expiry = st.sampled_from([None, PAST, FUTURE])
    lists = []
    for i, name in enumerate(names):
        users = draw(st.lists(st.sampled_from(USERS), unique=True, max_size=4))
        nested = draw(st.lists(st.sampled_from(names[i + 1:] or ["absent"]), unique=True,
                               max_size=3))
        expires = {m: draw(expiry) for m in [*users, *nested]}
        lists.append(access_list(name, users=users, lists=nested, expires=expires))
    return by_name(*lists)


@settings(max_examples=200, deadline=None)
@given(random_dags())
def test_flatten_equals_the_naive_definition_on_random_dags(lists: dict) -> None:
    flat = flatten(lists, at=NOW, max_depth=50)
    assert flat == naive_flatten(lists, NOW)
    for user in USERS:  # and the upward walk agrees with the downward one
        assert lists_of_user(lists, user=user, at=NOW) == {n for n, u in flat.items() if user in u}


@settings(max_examples=200, deadline=None)
@given(random_dags(), st.data())
def test_any_graph_with_a_cycle_raises_a_cycle_error_naming_a_real_cycle(
        lists: dict, data: st.DataObject) -> None:
    names = sorted(lists)
    # Close a cycle: pick a list and one it reaches (or itself), and nest the first in it.
    top = data.draw(st.sampled_from(names))
    reachable = sorted(_reachable(lists, top))
    bottom = data.draw(st.sampled_from(reachable))
    spec = lists[bottom].spec
    members = [m for m in spec.members if m.name != top] + [{"name": top, "kind": "access_list"}]
    lists[bottom] = AccessListResource.model_validate(
        {**lists[bottom].model_dump(), "spec": {**spec.model_dump(), "members": members}})
    with pytest.raises(CycleError) as caught:
        check_nesting(lists, max_depth=50)
    cycle = caught.value.cycle
    assert cycle[0] == cycle[-1]
    for parent, child in zip(cycle, cycle[1:], strict=False):
        assert child in {m.name for m in lists[parent].spec.members
                         if m.kind is MemberKind.ACCESS_LIST}


def _reachable(lists: dict[str, AccessListResource], start: str) -> set[str]:
    seen, stack = {start}, [start]
    while stack:
        for member in lists[stack.pop()].spec.members:
            if member.kind is MemberKind.ACCESS_LIST and member.name in lists \
                    and member.name not in seen:
                seen.add(member.name)
                stack.append(member.name)
    return seen

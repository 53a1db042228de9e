"""The import's transform on recorded Identity Center answers (tests/data/import/): pure,
no AWS, no ledger. The answers go through the adapter's own record functions first."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from models.domain import PrincipalType
from models.errors import InputError
from models.ledger.enums import SourceKind
from tasks.importing.model import (
    ImportedGrant,
    ImportPlan,
    Inventory,
    KnownAccount,
    KnownPermissionSet,
    LedgerView,
)
from tasks.importing.transform import check_default_owners, plan_import
from workers.adapters.aws.boto_adapter import (
    account_record,
    assignment_record,
    group_record,
    member_user_id,
    permission_set_record,
    user_record,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "import"


def recorded(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"{name}.json").read_text())


def inventory_from(answers: dict[str, Any]) -> Inventory:
    """An Inventory built the way fetch builds it, from recorded API answers."""
    members = {group_id: tuple(filter(None, map(member_user_id, page["GroupMemberships"])))
               for group_id, page in answers["ListGroupMemberships"].items()}
    assignments = {assignment_record(row).key: assignment_record(row)
                   for page in answers["ListAccountAssignments"]
                   for row in page["AccountAssignments"]}
    return Inventory(
        instance_arn=answers["instance_arn"],
        accounts=tuple(account_record(row, ou_path=answers["OuPaths"].get(row["Id"]))
                       for row in answers["ListAccounts"]["Accounts"]),
        permission_sets=tuple(permission_set_record(a["PermissionSet"])
                              for a in answers["DescribePermissionSet"]),
        users=tuple(map(user_record, answers["ListUsers"]["Users"])),
        groups=tuple(map(group_record, answers["ListGroups"]["Groups"])),
        members=members, assignments=tuple(assignments.values()),
    )


def view_after(plan: ImportPlan, *, owners: tuple[str, ...] = ("alice",)) -> LedgerView:
    """The ledger as it is once ``plan`` was loaded by an enrolling import."""
    return LedgerView(
        enrolled=True, default_owners=owners,
        accounts={a.id: KnownAccount(a.name, a.ou_path, True) for a in plan.accounts},
        permission_sets={p.arn: KnownPermissionSet(p.name, p.description, True)
                         for p in plan.permission_sets},
        users={u.name: u.principal_id for u in plan.users},
        lists={a.name: a.group_id for a in plan.access_lists},
        roles={r.name: (r.account_id, r.permission_set_arn) for r in plan.system_roles},
        imported_groups=frozenset(a.group_id for a in plan.access_lists),
    )


@pytest.fixture(scope="module")
def small() -> Inventory:
    return inventory_from(recorded("sandbox_small"))


@pytest.fixture(scope="module")
def edge() -> Inventory:
    return inventory_from(recorded("edge_cases"))


def ids(inventory: Inventory) -> dict[str, str]:
    """Display/user name -> id, for readable expectations."""
    found = {g.display_name: g.group_id for g in inventory.groups}
    found |= {u.user_name: u.user_id for u in inventory.users}
    found |= {p.name: p.arn for p in inventory.permission_sets}
    return found


# --- enrolment of the small organization --------------------------------------------------


def test_each_group_becomes_an_access_list_with_its_members(small: Inventory) -> None:
    plan = plan_import(small, LedgerView(), default_owners=["alice"])
    lists = {a.name: a for a in plan.access_lists}
    assert set(lists) == {"platform-admins", "developers", "finance"}
    admins = lists["platform-admins"]
    assert (admins.title, admins.description, admins.owners) == (
        "Platform Admins", "Run the platform", ("alice",))
    assert admins.group_id == ids(small)["Platform Admins"]
    assert admins.members == ("alice", "bob")
    assert lists["developers"].members == ("carol", "dave", "erin")
    assert lists["finance"].members == ("frank",)


def test_each_group_assignment_becomes_a_system_role_granted_by_its_list(
        small: Inventory) -> None:
    plan = plan_import(small, LedgerView(), default_owners=["alice"])
    lists = {a.name: a for a in plan.access_lists}
    assert lists["platform-admins"].granted_roles == (
        "AdministratorAccess-on-Production-111111111111",
        "AdministratorAccess-on-Sandbox-333333333333",
        "AdministratorAccess-on-Staging-222222222222")
    assert lists["finance"].granted_roles == ("BillingAccess-on-Production-111111111111",)
    roles = {r.name: r for r in plan.system_roles}
    assert len(roles) == 7  # frank's direct ReadOnly on Staging makes no system role
    billing = roles["BillingAccess-on-Production-111111111111"]
    rule = billing.spec["allow"]["account_assignments"]  # type: ignore[index]
    assert rule == [{"account": "111111111111", "permission_set": ids(small)["BillingAccess"]}]
    assert billing.renamed_from is None and len(billing.spec_hash) == 64


def test_assignments_become_grants_keyed_like_the_desired_state(small: Inventory) -> None:
    plan = plan_import(small, LedgerView(), default_owners=["alice"])
    n = ids(small)
    assert len(plan.grants) == 8
    assert ImportedGrant(PrincipalType.GROUP, "finance", n["Finance"], "111111111111",
                         n["BillingAccess"], SourceKind.ACCESS_LIST, "finance") in plan.grants
    direct = [g for g in plan.grants if g.principal_type is PrincipalType.USER]
    assert direct == [ImportedGrant(PrincipalType.USER, "frank", n["frank"], "222222222222",
                                    n["ReadOnlyAccess"], SourceKind.IMPORTED, "enrolment")]


def test_users_keep_their_identity_center_name_and_id(small: Inventory) -> None:
    plan = plan_import(small, LedgerView(), default_owners=["alice"])
    alice = next(u for u in plan.users if u.name == "alice")
    assert (alice.principal_id, alice.email, alice.given_name, alice.family_name) == (
        ids(small)["alice"], "alice@example.com", "Alice", "Archer")
    assert len(plan.users) == 6 and not any(u.link_only for u in plan.users)


def test_catalog_is_every_account_and_permission_set_all_new(small: Inventory) -> None:
    plan = plan_import(small, LedgerView(), default_owners=["alice"])
    assert {a.id: a.ou_path for a in plan.accounts}["111111111111"] == "/Root/Workloads/Prod"
    assert set(plan.new_accounts) == {a.id for a in plan.accounts}
    assert len(plan.permission_sets) == len(plan.new_permission_sets) == 4
    assert plan.vanished_accounts == plan.vanished_permission_sets == ()


# --- re-import --------------------------------------------------------------------------


def test_planning_again_after_enrolment_adds_nothing(small: Inventory) -> None:
    first = plan_import(small, LedgerView(), default_owners=["alice"])
    again = plan_import(small, view_after(first), default_owners=["alice"])
    assert (again.users, again.access_lists, again.grants, again.drift_groups) == ((), (), (), ())
    assert (again.new_accounts, again.new_permission_sets) == ((), ())
    assert again.system_roles == first.system_roles  # regenerated, unchanged
    assert again.renamed_roles == {}


def test_a_group_created_behind_our_back_is_drift_not_adopted(small: Inventory) -> None:
    view = view_after(plan_import(small, LedgerView(), default_owners=["alice"]))
    stranger = replace(small.groups[0], group_id="g-new", display_name="Shadow Admins")
    grown = replace(small, groups=(*small.groups, stranger),
                    members={**small.members, "g-new": (ids(small)["carol"],)})
    plan = plan_import(grown, view)
    assert [g.group_id for g in plan.drift_groups] == ["g-new"]
    assert plan.access_lists == () and plan.users == ()
    adopted = plan_import(grown, view, adopt_new_groups=True)
    (shadow,) = adopted.access_lists
    assert (shadow.name, shadow.members, shadow.owners) == ("shadow-admins", ("carol",),
                                                            ("alice",))
    assert adopted.drift_groups == ()


def test_vanished_account_and_permission_set_are_named(small: Inventory) -> None:
    view = view_after(plan_import(small, LedgerView(), default_owners=["alice"]))
    billing = ids(small)["BillingAccess"]
    shrunk = replace(small, accounts=tuple(a for a in small.accounts if a.id != "333333333333"),
                     permission_sets=tuple(p for p in small.permission_sets if p.arn != billing))
    plan = plan_import(shrunk, view)
    assert (plan.vanished_accounts, plan.vanished_permission_sets) == (("333333333333",),
                                                                       (billing,))
    assert not any(r.account_id == "333333333333" or r.permission_set_arn == billing
                   for r in plan.system_roles)


def test_renamed_permission_set_renames_its_system_roles(small: Inventory) -> None:
    first = plan_import(small, LedgerView(), default_owners=["alice"])
    billing = ids(small)["BillingAccess"]
    renamed = replace(small, permission_sets=tuple(
        replace(p, name="CostExplorer") if p.arn == billing else p
        for p in small.permission_sets))
    plan = plan_import(renamed, view_after(first))
    assert plan.renamed_roles == {"BillingAccess-on-Production-111111111111":
                                  "CostExplorer-on-Production-111111111111"}


def test_a_system_role_name_held_by_another_role_is_refused(small: Inventory) -> None:
    view = LedgerView(roles={"BillingAccess-on-Production-111111111111": None})
    with pytest.raises(InputError, match="BillingAccess-on-Production-111111111111"):
        plan_import(small, view, default_owners=["alice"])


def test_refresh_before_enrolment_touches_only_the_catalog(small: Inventory) -> None:
    plan = plan_import(small, LedgerView(), catalog_only=True)
    assert len(plan.accounts) == 4
    assert (plan.users, plan.access_lists, plan.grants, plan.system_roles) == ((), (), (), ())


# --- awkward shapes --------------------------------------------------------------------------


def test_group_names_are_slugs_made_unique(edge: Inventory) -> None:
    plan = plan_import(edge, LedgerView(), default_owners=["alice"])
    names = {a.group_id: a.name for a in plan.access_lists}
    assert names == {"g-platform": "platform-admins", "g-platform-2": "platform-admins-2",
                     "g-ops": "ops-sre-eu", "g-symbols": "group"}
    assert {a.group_id: a.title for a in plan.access_lists}["g-ops"] == "Ops & SRE (EU)"


def test_existing_list_names_are_not_reused(edge: Inventory) -> None:
    plan = plan_import(edge, LedgerView(lists={"platform-admins": None}),
                       default_owners=["alice"])
    names = {a.group_id: a.name for a in plan.access_lists}
    assert (names["g-platform"], names["g-platform-2"]) == ("platform-admins-2",
                                                            "platform-admins-3")


def test_suspended_accounts_and_missing_principals_are_left_out_and_explained(
        edge: Inventory) -> None:
    plan = plan_import(edge, LedgerView(), default_owners=["alice"])
    assert [a.id for a in plan.accounts] == ["111111111111"]
    assert {a.name: a.members for a in plan.access_lists}["platform-admins"] == ("alice",)
    assert len(plan.grants) == 4  # two groups' three pairs, plus alice's direct one, once
    assert plan.skipped == (
        "GROUP g-gone holds arn:ps:admin on 111111111111: no such group in the identity store",
        "GROUP g-ops holds arn:ps:admin on 444444444444: the account or permission set is "
        "not in the catalog",
        "group 'Platform Admins': member u-deleted is not a user of the identity store",
    )


def test_primary_email_wins(edge: Inventory) -> None:
    plan = plan_import(edge, LedgerView(), default_owners=["alice"])
    assert {u.name: u.email for u in plan.users} == {"alice": "alice@example.com",
                                                     "bob@example.com": None}


def test_a_ledger_user_of_the_same_name_is_linked_not_duplicated(edge: Inventory) -> None:
    plan = plan_import(edge, LedgerView(users={"alice": None}), default_owners=["alice"])
    alice = next(u for u in plan.users if u.principal_id == "u-alice")
    assert (alice.name, alice.link_only) == ("alice", True)


def test_a_name_taken_by_another_person_gets_a_suffix(edge: Inventory) -> None:
    plan = plan_import(edge, LedgerView(users={"alice": "u-someone-else"}),
                       default_owners=["alice"])
    assert {u.principal_id: u.name for u in plan.users}["u-alice"] == "alice-2"
    assert {a.name: a.members for a in plan.access_lists}["platform-admins"] == ("alice-2",)


def test_default_owners_must_exist_somewhere(edge: Inventory) -> None:
    check_default_owners(["alice", "carol"], edge, LedgerView(users={"carol": None}))
    with pytest.raises(InputError, match="mallory, trent"):
        check_default_owners(["alice", "mallory", "trent"], edge, LedgerView())


def test_a_refresh_does_not_bring_back_a_user_deleted_from_the_ledger(
        small: Inventory) -> None:
    view = view_after(plan_import(small, LedgerView(), default_owners=["alice"]))
    without_alice = replace(view, users={n: p for n, p in view.users.items() if n != "alice"})
    assert plan_import(small, without_alice).users == ()


def test_enrolment_leaves_groups_already_owned_by_a_list_alone(small: Inventory) -> None:
    developers = ids(small)["Developers"]
    plan = plan_import(small, LedgerView(lists={"dev": developers}), default_owners=["alice"])
    assert "developers" not in {a.name for a in plan.access_lists}
    assert not [g for g in plan.grants if g.principal_id == developers]

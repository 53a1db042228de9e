"""Policy: pattern matching, allow/deny, effective roles, requestable, review, system roles."""

from __future__ import annotations

import fnmatch
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.domain import AccountAssignment
from models.policy import (
    CatalogIndex,
    allowed_assignments,
    assignment_matches,
    effective_roles,
    may_review,
    pattern_matches,
    requestable,
    system_role,
)
from tests.unit.test_domain_builders import (
    PERMISSION_SETS,
    access_list,
    assignment,
    role,
    sandbox_catalog,
)

NOW = datetime(2026, 6, 1, tzinfo=UTC)
CATALOG = sandbox_catalog()
SYSTEM_ROLES = {a.system_role_name: system_role(a) for a in CATALOG}


@pytest.mark.parametrize(("pattern", "value", "expected"), [
    ("Production", "Production", True),
    ("Production", "production", False),
    ("*", "anything at all", True),
    ("Prod*", "Production", True),
    ("Prod*", "Staging", False),
    ("?taging", "Staging", True),
    ("[PS]*", "Sandbox", True),
    ("^dev-[0-9]+$", "dev-42", True),
    ("^dev-[0-9]+$", "dev-42x", False),  # full match, not search
    ("^(Power|ReadOnly).*$", "PowerUserAccess", True),
    ("dev-[0-9]+", "dev-42", False),  # without ^...$ it is a glob: [0-9] then a literal "+"
    ("a.b", "axb", False),  # a dot is literal outside a regex
])
def test_pattern_matches(pattern: str, value: str, expected: bool) -> None:
    assert pattern_matches(pattern, value) is expected


def test_assignment_rules_match_account_by_id_or_name_and_permission_set_by_arn_or_name() -> None:
    admin_on_prod = assignment("Production", "AdministratorAccess")
    arn = admin_on_prod.permission_set.arn
    rule = role("r", allow=[("111111111111", arn)]).spec.allow.account_assignments[0]
    assert assignment_matches(rule, admin_on_prod)
    by_name = role("r", allow=[("Production", "AdministratorAccess")])
    assert assignment_matches(by_name.spec.allow.account_assignments[0], admin_on_prod)
    other = role("r", allow=[("Production", "ReadOnlyAccess")])
    assert not assignment_matches(other.spec.allow.account_assignments[0], admin_on_prod)


def test_deny_in_one_role_wins_over_allow_in_another() -> None:
    broad = role("broad", allow=[("*", "*")])
    no_billing = role("no-billing", deny=[("*", "BillingAccess")])
    no_prod_admin = role("no-prod-admin", deny=[("^Prod.*$", "AdministratorAccess")])
    allowed = allowed_assignments(roles=[broad, no_billing, no_prod_admin], catalog=CATALOG)
    assert len(allowed) == 12 - 3 - 1
    assert "111111111111/BillingAccess" not in allowed
    assert "111111111111/AdministratorAccess" not in allowed
    assert "222222222222/AdministratorAccess" in allowed


def test_a_catalog_index_gives_the_same_answer_as_the_plain_catalog() -> None:
    roles = [role("a", allow=[("Staging", "*"), ("333333333333", "ReadOnlyAccess")],
                  deny=[("*", "PowerUserAccess")])]
    assert allowed_assignments(roles=roles, catalog=CatalogIndex(CATALOG)) == \
        allowed_assignments(roles=roles, catalog=CATALOG) == {
            "222222222222/AdministratorAccess", "222222222222/ReadOnlyAccess",
            "222222222222/BillingAccess", "333333333333/ReadOnlyAccess"}


def test_a_system_role_allows_exactly_its_assignment_and_is_marked_read_only() -> None:
    target = assignment("Staging", "PowerUserAccess")
    generated = system_role(target)
    assert generated.name == "PowerUserAccess-on-Staging-222222222222"
    assert generated.is_system and not role("people-made").is_system
    assert allowed_assignments(roles=[generated], catalog=CATALOG) == {target.id}
    rule = generated.spec.allow.account_assignments[0]
    assert (rule.account, rule.permission_set) == ("222222222222", target.permission_set.arn)


def test_effective_roles_add_what_reachable_lists_grant() -> None:
    lists = {item.name: item for item in [
        access_list("sre", users=["dave"], roles=["oncall"]),
        access_list("admins", lists=["sre"], roles=["admin"]),
        access_list("finance", users=["dave"], roles=["billing"],
                    expires={"dave": NOW - timedelta(seconds=1)}),
    ]}
    assert effective_roles(user="dave", user_roles=["developer"], lists=lists, at=NOW) == {
        "developer", "oncall", "admin"}
    assert effective_roles(user="erin", user_roles=[], lists=lists, at=NOW) == set()


DEVELOPER = role(
    "developer", allow=[("Sandbox", "*")], deny=[("*", "BillingAccess")],
    allow_extra={"request": {
        "roles": [r"^(PowerUserAccess|ReadOnlyAccess)-on-.+-\d{12}$"],
        "account_assignments": [{"account": "Stag*", "permission_set": "AdministratorAccess"}],
        "max_duration": "4h"}},
    deny_extra={"request": {"roles": ["PowerUserAccess-on-Production-*"]}},
)
BREAKGLASS = role("oncall-breakglass", allow_extra={"request": {
    "roles": ["AdministratorAccess-on-Production-111111111111"], "max_duration": "2h",
    "approvals": 2, "break_glass": True, "break_glass_max_duration": "30m"}})


def test_requestable_is_allow_request_minus_deny_request() -> None:
    result = requestable(roles=[DEVELOPER], catalog=CATALOG, all_roles=SYSTEM_ROLES)
    assert result.roles == {"PowerUserAccess-on-Staging-222222222222",
                            "PowerUserAccess-on-Sandbox-333333333333",
                            "ReadOnlyAccess-on-Production-111111111111",
                            "ReadOnlyAccess-on-Staging-222222222222",
                            "ReadOnlyAccess-on-Sandbox-333333333333"}
    assert result.assignments == {
        "222222222222/PowerUserAccess", "333333333333/PowerUserAccess",
        "111111111111/ReadOnlyAccess", "222222222222/ReadOnlyAccess",
        "333333333333/ReadOnlyAccess", "222222222222/AdministratorAccess"}
    assert result.max_duration == timedelta(hours=4)
    assert (result.approvals, result.break_glass) == (1, False)


def test_deny_of_a_held_role_removes_requestable_assignments() -> None:
    no_staging_admin = role("cautious", deny=[("Staging", "AdministratorAccess")])
    result = requestable(roles=[DEVELOPER, no_staging_admin], catalog=CATALOG,
                         all_roles=SYSTEM_ROLES)
    assert "222222222222/AdministratorAccess" not in result.assignments
    billing = role("billing-requester", allow_extra={"request": {
        "account_assignments": [{"account": "*", "permission_set": "BillingAccess"}]}})
    assert requestable(roles=[billing, DEVELOPER], catalog=CATALOG,
                       all_roles=SYSTEM_ROLES).assignments.isdisjoint(
        {a.id for a in CATALOG if a.permission_set.name == "BillingAccess"})


def test_deny_request_of_one_held_role_removes_what_another_lets_request() -> None:
    no_prod = role("no-prod", deny_extra={"request": {"roles": ["*-on-Production-*"]}})
    result = requestable(roles=[BREAKGLASS, no_prod], catalog=CATALOG, all_roles=SYSTEM_ROLES)
    assert result.roles == set() and result.assignments == set()


def test_duration_caps_are_per_item_and_break_glass_is_reported() -> None:
    result = requestable(roles=[DEVELOPER, BREAKGLASS], catalog=CATALOG, all_roles=SYSTEM_ROLES)
    assert result.cap_for(roles=["AdministratorAccess-on-Production-111111111111"]) == \
        timedelta(hours=2)
    assert result.cap_for(assignments=["222222222222/AdministratorAccess"]) == timedelta(hours=4)
    assert result.cap_for(roles=["AdministratorAccess-on-Production-111111111111"],
                          assignments=["222222222222/AdministratorAccess"]) == timedelta(hours=2)
    assert result.cap_for(assignments=["111111111111/BillingAccess"]) == timedelta(0)
    assert (result.approvals, result.break_glass) == (2, True)
    assert result.break_glass_max_duration == timedelta(minutes=30)
    assert requestable(roles=[role("plain")], catalog=CATALOG,
                       all_roles=SYSTEM_ROLES).max_duration == timedelta(0)


REVIEWER = role("security-reviewer", allow_extra={"review_requests": {"roles": ["*"]}},
                deny_extra={"review_requests": {"roles": ["BillingAccess-on-*"]}})


def test_may_review_roles_matching_review_rules_minus_deny() -> None:
    admin_prod = "AdministratorAccess-on-Production-111111111111"
    kwargs = {"all_roles": SYSTEM_ROLES, "catalog": CATALOG, "request_assignments": []}
    assert may_review(reviewer_roles=[REVIEWER], request_roles=[admin_prod], **kwargs)
    assert not may_review(reviewer_roles=[REVIEWER],
                          request_roles=[admin_prod, "BillingAccess-on-Staging-222222222222"],
                          **kwargs)
    assert not may_review(reviewer_roles=[DEVELOPER], request_roles=[admin_prod], **kwargs)
    assert not may_review(reviewer_roles=[REVIEWER], request_roles=[], **kwargs)


def test_may_review_assignments_that_reviewable_roles_allow() -> None:
    kwargs = {"all_roles": SYSTEM_ROLES, "catalog": CATALOG, "request_roles": []}
    assert may_review(reviewer_roles=[REVIEWER], request_assignments=[
        "111111111111/AdministratorAccess", "333333333333/ReadOnlyAccess"], **kwargs)
    assert not may_review(reviewer_roles=[REVIEWER],
                          request_assignments=["111111111111/BillingAccess"], **kwargs)
    assert not may_review(reviewer_roles=[REVIEWER],
                          request_assignments=["999999999999/AdministratorAccess"], **kwargs)


# --- property: deny always wins --------------------------------------------------------------

ACCOUNT_VALUES = ["111111111111", "222222222222", "333333333333", "Production", "Staging",
                  "Sandbox"]
PS_VALUES = [p.name for p in PERMISSION_SETS] + [p.arn for p in PERMISSION_SETS]
WILD = ["*", "*Access", "S*", "?taging", "^.*Only.*$", "^(Prod|Sand).*$", "^[0-9]{12}$",
        "arn:aws:sso:::permissionSet/*"]
patterns = st.one_of(st.sampled_from(ACCOUNT_VALUES + PS_VALUES), st.sampled_from(WILD))
pairs = st.lists(st.tuples(patterns, patterns), max_size=3)
catalogs = st.lists(st.sampled_from(CATALOG), unique_by=lambda a: a.id, max_size=12)


def reference_match(pattern: str, value: str) -> bool:
    """An independent reading of the pattern rules (no shared code with models.policy)."""
    if pattern.startswith("^") and pattern.endswith("$"):
        return re.fullmatch(pattern, value) is not None
    return fnmatch.fnmatchcase(value, pattern)


def reference_rule(account: str, ps: str, item: AccountAssignment) -> bool:
    return (any(reference_match(account, v) for v in (item.account.id, item.account.name))
            and any(reference_match(ps, v) for v in (item.permission_set.arn,
                                                     item.permission_set.name)))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(pairs, pairs), min_size=1, max_size=4), catalogs)
def test_deny_wins_for_any_allow(spec: list, catalog: list[AccountAssignment]) -> None:
    roles = [role(f"r{i}", allow=allow, deny=deny) for i, (allow, deny) in enumerate(spec)]
    allowed = allowed_assignments(roles=roles, catalog=catalog)
    every_allow = [p for allow, _ in spec for p in allow]
    every_deny = [p for _, deny in spec for p in deny]
    expected = {item.id for item in catalog
                if any(reference_rule(a, p, item) for a, p in every_allow)
                and not any(reference_rule(a, p, item) for a, p in every_deny)}
    assert allowed == expected
    # and adding roles that only deny never adds access
    denier = role("denier", deny=every_allow[:1])
    assert allowed_assignments(roles=[*roles, denier], catalog=catalog) <= allowed

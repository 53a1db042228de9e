"""The pure request decisions: resource ids, terms, duration caps, extension limit, coverage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from models.domain import Account, AccountAssignment, PermissionSet, RoleResource
from models.errors import InputError, PolicyDenied
from models.policy import CatalogIndex, system_role
from tasks.access.requests_policy import (
    RequestTerms,
    extended_expiry,
    granted_duration,
    request_terms,
    resolve_resource,
    uncovered_items,
)

PROD = Account(id="111111111111", name="Production")
OPS = Account(id="444444444444", name="team/ops")  # AWS allows "/" in account names
TWIN_A = Account(id="555555555555", name="twin")
TWIN_B = Account(id="666666666666", name="twin")
ADMIN = PermissionSet(arn="arn:ps-admin", name="AdministratorAccess")
READ = PermissionSet(arn="arn:ps-read", name="ReadOnlyAccess")
CATALOG = CatalogIndex(AccountAssignment(account=a, permission_set=p)
                       for a in (PROD, OPS, TWIN_A, TWIN_B) for p in (ADMIN, READ))
SYSTEM = {r.name: r for r in (system_role(a) for a in CATALOG)}
PROD_ADMIN = "AdministratorAccess-on-Production-111111111111"


def role(name: str, **spec) -> RoleResource:
    return RoleResource.model_validate({"kind": "role", "metadata": {"name": name},
                                        "spec": spec})


def test_resource_ids_resolve_by_account_id_or_name() -> None:
    assert resolve_resource("111111111111/ReadOnlyAccess", CATALOG) == "111111111111/ReadOnlyAccess"
    assert resolve_resource("Production/ReadOnlyAccess", CATALOG) == "111111111111/ReadOnlyAccess"
    assert resolve_resource("team/ops/ReadOnlyAccess", CATALOG) == "444444444444/ReadOnlyAccess"
    assert resolve_resource("twin/ReadOnlyAccess", CATALOG) is None  # two accounts share it
    assert resolve_resource("Production/NoSuchSet", CATALOG) is None
    assert resolve_resource("ReadOnlyAccess", CATALOG) is None


def test_approvals_are_the_most_any_permitting_rule_asks_for() -> None:
    lenient = role("lenient", allow={"request": {"roles": ["*-on-Production-*"],
                                                 "approvals": 1}})
    strict = role("strict", allow={"request": {"roles": [PROD_ADMIN], "approvals": 3}})
    unrelated = role("unrelated", allow={"request": {"account_assignments": [
        {"account": "twin", "permission_set": "*"}], "approvals": 5}})
    terms = request_terms(held=[lenient, strict, unrelated], catalog=CATALOG,
                          all_roles=SYSTEM, roles=[PROD_ADMIN], assignments=[])
    assert terms.approvals == 3


def test_break_glass_cap_is_the_shorter_of_the_rule_caps() -> None:
    glass = role("glass", allow={"request": {"roles": [PROD_ADMIN], "max_duration": "2h",
                                             "break_glass": True,
                                             "break_glass_max_duration": "30m"}})
    terms = request_terms(held=[glass], catalog=CATALOG, all_roles=SYSTEM, roles=[PROD_ADMIN],
                          assignments=[])
    assert terms == RequestTerms(max_duration=timedelta(hours=2), approvals=1,
                                 break_glass_max_duration=timedelta(minutes=30))
    plain = role("plain", allow={"request": {"roles": [PROD_ADMIN]}})
    terms = request_terms(held=[plain], catalog=CATALOG, all_roles=SYSTEM, roles=[PROD_ADMIN],
                          assignments=[])
    assert terms.break_glass_max_duration is None


def test_refusal_names_the_denying_role() -> None:
    asker = role("asker", allow={"request": {"roles": ["*"]}})
    blocker = role("blocker", deny={"request": {"roles": ["*-on-Production-*"]}})
    with pytest.raises(PolicyDenied, match=f"role {PROD_ADMIN}: denied by role blocker"):
        request_terms(held=[asker, blocker], catalog=CATALOG, all_roles=SYSTEM,
                      roles=[PROD_ADMIN], assignments=[])


def test_granted_duration_defaults_to_and_is_capped_by_the_cap() -> None:
    terms = RequestTerms(max_duration=timedelta(hours=4), approvals=1,
                         break_glass_max_duration=timedelta(hours=1))
    assert granted_duration(terms, None, break_glass=False) == timedelta(hours=4)
    assert granted_duration(terms, timedelta(hours=9), break_glass=False) == timedelta(hours=4)
    assert granted_duration(terms, timedelta(minutes=5), break_glass=True) == timedelta(minutes=5)
    assert granted_duration(terms, None, break_glass=True) == timedelta(hours=1)
    with pytest.raises(InputError):
        granted_duration(terms, timedelta(0), break_glass=False)
    no_glass = RequestTerms(max_duration=timedelta(hours=4), approvals=1,
                            break_glass_max_duration=None)
    with pytest.raises(PolicyDenied, match="break-glass"):
        granted_duration(no_glass, None, break_glass=True)


def test_extension_stops_at_twice_the_cap_from_approval() -> None:
    approved_at = datetime(2027, 1, 1, tzinfo=UTC)
    expires = approved_at + timedelta(hours=1)
    cap = timedelta(hours=1)
    assert extended_expiry(decided_at=approved_at, expires_at=expires,
                           duration=timedelta(minutes=20), cap=cap) == \
        expires + timedelta(minutes=20)
    assert extended_expiry(decided_at=approved_at, expires_at=expires,
                           duration=timedelta(hours=5), cap=cap) == approved_at + 2 * cap
    with pytest.raises(PolicyDenied, match="maximum of 2h"):
        extended_expiry(decided_at=approved_at, expires_at=approved_at + 2 * cap,
                        duration=timedelta(minutes=1), cap=cap)


def test_uncovered_items_names_what_the_list_lacks() -> None:
    list_roles = [SYSTEM[PROD_ADMIN]]
    read_role = "ReadOnlyAccess-on-Production-111111111111"
    missing = uncovered_items(roles=[PROD_ADMIN, read_role],
                              assignments=["111111111111/AdministratorAccess",
                                           "444444444444/ReadOnlyAccess"],
                              list_roles=list_roles, all_roles=SYSTEM, catalog=CATALOG)
    assert missing == [f"role {read_role}", "resource 444444444444/ReadOnlyAccess"]
    reviewer_only = role("reviewer", allow={"review_requests": {"roles": ["*"]}})
    assert uncovered_items(roles=["reviewer"], assignments=[], list_roles=list_roles,
                           all_roles={**SYSTEM, "reviewer": reviewer_only},
                           catalog=CATALOG) == ["role reviewer"]

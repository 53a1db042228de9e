"""Builders shared by the domain tests: the sandbox catalog, and terse roles and lists.

The catalog matches the sandbox fixture: accounts Production / Staging / Sandbox and four
permission sets, so the example resources in ops/examples/resources refer to real things.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from models.domain import (
    AccessListResource,
    Account,
    AccountAssignment,
    PermissionSet,
    RoleResource,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "ops" / "examples"

ACCOUNTS = [
    Account(id="111111111111", name="Production", ou_path="/root/workloads"),
    Account(id="222222222222", name="Staging", ou_path="/root/workloads"),
    Account(id="333333333333", name="Sandbox", ou_path="/root/sandbox"),
]
PERMISSION_SETS = [
    PermissionSet(arn=f"arn:aws:sso:::permissionSet/ssoins-sandbox/ps-{short}", name=name)
    for short, name in [("admin", "AdministratorAccess"), ("read", "ReadOnlyAccess"),
                        ("power", "PowerUserAccess"), ("billing", "BillingAccess")]
]


def sandbox_catalog() -> list[AccountAssignment]:
    """Every (account, permission set) pair of the sandbox: 12 assignments."""
    return [AccountAssignment(account=a, permission_set=p)
            for a in ACCOUNTS for p in PERMISSION_SETS]


def assignment(account_name: str, ps_name: str) -> AccountAssignment:
    """One catalog entry by names, e.g. ``assignment("Production", "ReadOnlyAccess")``."""
    return next(a for a in sandbox_catalog()
                if a.account.name == account_name and a.permission_set.name == ps_name)


def _rules(pairs: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"account": account, "permission_set": ps} for account, ps in pairs]


def role(name: str, *, allow: Iterable[tuple[str, str]] = (),
         deny: Iterable[tuple[str, str]] = (), allow_extra: dict | None = None,
         deny_extra: dict | None = None) -> RoleResource:
    """A role from (account, permission_set) pattern pairs plus raw allow/deny extras
    (``request`` / ``review_requests`` dicts)."""
    return RoleResource.model_validate({
        "kind": "role", "metadata": {"name": name},
        "spec": {"allow": {"account_assignments": _rules(allow), **(allow_extra or {})},
                 "deny": {"account_assignments": _rules(deny), **(deny_extra or {})}},
    })


def access_list(name: str, *, users: Iterable[str] = (), lists: Iterable[str] = (),
                roles: Iterable[str] = (),
                expires: dict[str, datetime] | None = None) -> AccessListResource:
    """A list with user and nested-list members; ``expires`` maps a member name to its expiry."""
    expires = expires or {}
    members = [{"name": u, "kind": "user", "expires": expires.get(u)} for u in users]
    members += [{"name": n, "kind": "access_list", "expires": expires.get(n)} for n in lists]
    return AccessListResource.model_validate({
        "kind": "access_list", "metadata": {"name": name},
        "spec": {"title": name.title(), "owners": [{"name": "owner"}], "members": members,
                 "grants": {"roles": list(roles)}},
    })

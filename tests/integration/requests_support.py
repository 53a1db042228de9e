"""A small world for the access-request tests: three accounts, four permission sets, their
system roles, and roles / users / access lists written straight into the ledger.

The fixtures that build it are in ``requests_fixtures``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from models.domain import (
    Account,
    AccountAssignment,
    MemberKind,
    PermissionSet,
    RoleResource,
)
from models.ledger import tables
from models.ledger.db import transaction
from models.ledger.enums import Origin
from models.policy import system_role
from tasks.access.permissions import Actor, operator, person_in

ACCOUNTS = {"111111111111": "Production", "222222222222": "Staging", "333333333333": "Sandbox"}
PERMISSION_SETS = {name: f"arn:aws:sso:::permissionSet/ssoins-rq/ps-{name.lower()}"
                   for name in ("AdministratorAccess", "ReadOnlyAccess", "PowerUserAccess",
                                "BillingAccess")}
PROD, STAGING, SANDBOX = "111111111111", "222222222222", "333333333333"

# The example roles' shapes (ops/examples/resources/roles.yaml), plus a plain approver.
ROLES: dict[str, dict[str, Any]] = {
    "developer": {"allow": {
        "account_assignments": [{"account": "Sandbox", "permission_set": "*"}],
        "request": {"roles": [r"^(PowerUserAccess|ReadOnlyAccess)-on-.+-\d{12}$"],
                    "account_assignments": [{"account": "Stag*",
                                             "permission_set": "AdministratorAccess"}],
                    "max_duration": "4h"}},
        "deny": {"account_assignments": [{"account": "*", "permission_set": "BillingAccess"}],
                 "request": {"roles": ["PowerUserAccess-on-Production-*"]}}},
    "oncall-breakglass": {"allow": {"request": {
        "roles": ["AdministratorAccess-on-Production-111111111111"], "max_duration": "2h",
        "approvals": 2, "break_glass": True, "break_glass_max_duration": "1h"}}},
    "security-reviewer": {"allow": {"review_requests": {"roles": ["*"]}},
                          "deny": {"review_requests": {"roles": ["BillingAccess-on-*"]}}},
    "staging-reviewer": {"allow": {"review_requests": {"roles": ["*-on-Staging-*"]}}},
}


@dataclass(frozen=True)
class World:
    """Names the tests refer to."""

    sessions: sessionmaker[Session]

    def person(self, name: str) -> Actor:
        """The active user ``name`` acting (what their token or ``--reviewer`` gives)."""
        return as_person(self.sessions, name)

    def add_user(self, name: str, roles: Sequence[str] = (), *, suspended: bool = False) -> None:
        with transaction(self.sessions) as session:
            session.add(tables.User(name=name, email=f"{name}@example.com", given_name=name,
                                    family_name="Test", roles=list(roles),
                                    suspended=suspended))

    def add_role(self, name: str, spec: dict[str, Any]) -> None:
        role = RoleResource.model_validate({"kind": "role", "metadata": {"name": name},
                                            "spec": spec})
        with transaction(self.sessions) as session:
            session.add(tables.Role(name=name, spec=role.spec.model_dump(mode="json")))

    def add_list(self, name: str, *, owners: list[str], roles: list[str],
                 members: Sequence[str] = (), nested: Sequence[str] = (),
                 recurrence_seconds: int | None = None) -> None:
        with transaction(self.sessions) as session:
            session.add(tables.AccessList(name=name, title=name, owners=list(owners),
                                          granted_roles=list(roles),
                                          recurrence_seconds=recurrence_seconds))
            session.flush()
            for member in members:
                session.add(tables.Membership(list_name=name, member_name=member,
                                              member_kind=MemberKind.USER))
            for child in nested:
                session.add(tables.Membership(list_name=name, member_name=child,
                                              member_kind=MemberKind.ACCESS_LIST))


OPERATOR = operator("test:operator")  # the admin token's / CLI's authority


def as_person(sessions: sessionmaker[Session], name: str) -> Actor:
    """The active user ``name`` as the acting person (what a token or --reviewer gives)."""
    return person_in(sessions, name=name, via="test")


def assignment(account_id: str, permission_set: str) -> AccountAssignment:
    return AccountAssignment(
        account=Account(id=account_id, name=ACCOUNTS[account_id]),
        permission_set=PermissionSet(arn=PERMISSION_SETS[permission_set], name=permission_set))


def system_role_name(account_id: str, permission_set: str) -> str:
    return assignment(account_id, permission_set).system_role_name


def add_catalog(session: Session) -> None:
    """Hide every other account, then add this world's accounts, sets and system roles."""
    session.execute(update(tables.Account).values(present=False))
    session.execute(update(tables.PermissionSet).values(present=False))
    for account_id, name in ACCOUNTS.items():
        session.merge(tables.Account(id=account_id, name=name, present=True))
    for name, arn in PERMISSION_SETS.items():
        session.merge(tables.PermissionSet(arn=arn, name=name, present=True))
    for account_id in ACCOUNTS:
        for permission_set in PERMISSION_SETS:
            role = system_role(assignment(account_id, permission_set))
            session.merge(tables.Role(
                name=role.name, spec=role.spec.model_dump(mode="json"), origin=Origin.SYSTEM,
                system_account_id=account_id,
                system_permission_set_arn=PERMISSION_SETS[permission_set]))
    session.flush()

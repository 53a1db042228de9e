"""Read views of what the import brought in: accounts, permission sets, and the catalog of
account assignments (every present account x every present permission set), for
``grantledger get accounts|permission-sets|assignments`` and the API."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.domain import Account, AccountAssignment, PermissionSet
from models.errors import NotFound
from models.ledger import tables

Sessions = sessionmaker[Session]


@dataclass(frozen=True)
class AccountView:
    id: str
    name: str
    ou_path: str
    present: bool
    last_seen_at: datetime | None


@dataclass(frozen=True)
class PermissionSetView:
    name: str
    arn: str
    description: str
    present: bool
    last_seen_at: datetime | None


@dataclass(frozen=True)
class AssignmentView:
    """One requestable resource: ``id`` is ``<account-id>/<permission-set-name>``."""

    id: str
    account_id: str
    account_name: str
    permission_set: str
    permission_set_arn: str
    system_role: str
    granted_by: list[str]  # access lists granting the system role


def list_accounts(*, sessions: Sessions) -> list[AccountView]:
    """Every account the ledger knows, by id; vanished ones have ``present`` false."""
    with sessions() as session:
        rows = session.scalars(select(tables.Account).order_by(tables.Account.id))
        return [AccountView(r.id, r.name, r.ou_path, r.present, r.last_seen_at) for r in rows]


def get_account(*, sessions: Sessions, name: str) -> AccountView:
    """One account by id or name; ``NotFound`` otherwise."""
    found = [a for a in list_accounts(sessions=sessions) if name in (a.id, a.name)]
    if not found:
        raise NotFound("account", name)
    return found[0]


def list_permission_sets(*, sessions: Sessions) -> list[PermissionSetView]:
    """Every permission set the ledger knows, by name."""
    with sessions() as session:
        rows = session.scalars(select(tables.PermissionSet)
                               .order_by(tables.PermissionSet.name, tables.PermissionSet.arn))
        return [PermissionSetView(r.name, r.arn, r.description, r.present, r.last_seen_at)
                for r in rows]


def get_permission_set(*, sessions: Sessions, name: str) -> PermissionSetView:
    """One permission set by name or ARN; ``NotFound`` otherwise."""
    found = [p for p in list_permission_sets(sessions=sessions) if name in (p.name, p.arn)]
    if not found:
        raise NotFound("permission-set", name)
    return found[0]


def list_assignments(*, sessions: Sessions) -> list[AssignmentView]:
    """The catalog: each present (account, permission set) pair and its system role."""
    with sessions() as session:
        accounts = session.scalars(select(tables.Account).where(tables.Account.present)
                                   .order_by(tables.Account.id)).all()
        sets = session.scalars(select(tables.PermissionSet).where(tables.PermissionSet.present)
                               .order_by(tables.PermissionSet.name)).all()
        granted_by: defaultdict[str, list[str]] = defaultdict(list)
        for name, roles in session.execute(select(tables.AccessList.name,
                                                  tables.AccessList.granted_roles)):
            for role in roles:
                granted_by[role].append(name)
    return [_assignment_view(AccountAssignment(
        account=Account.model_construct(id=a.id, name=a.name, ou_path=a.ou_path),
        permission_set=PermissionSet.model_construct(arn=p.arn, name=p.name,
                                                     description=p.description)),
        granted_by) for a in accounts for p in sets]


def get_assignment(*, sessions: Sessions, name: str) -> AssignmentView:
    """One assignment by id (``<account-id>/<permission-set-name>``) or system role name."""
    found = [a for a in list_assignments(sessions=sessions) if name in (a.id, a.system_role)]
    if not found:
        raise NotFound("assignment", name)
    return found[0]


def _assignment_view(assignment: AccountAssignment,
                     granted_by: dict[str, list[str]]) -> AssignmentView:
    role = assignment.system_role_name
    return AssignmentView(
        id=assignment.id, account_id=assignment.account.id,
        account_name=assignment.account.name, permission_set=assignment.permission_set.name,
        permission_set_arn=assignment.permission_set.arn, system_role=role,
        granted_by=sorted(granted_by.get(role, [])))

"""Request policy on the ledger: roles, access lists and catalog loaded from the ledger, and
the pure decisions the request services make with them (what may be requested, on which
terms, what an access list covers, how far an extension may go).

Everything below ``load_policy`` is pure: it takes domain objects and returns values or
raises ``PolicyDenied`` naming each refused item and why. Rules and reasons:
ops/decisions/requests.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.domain import (
    AccessListResource,
    Account,
    AccountAssignment,
    Metadata,
    PermissionSet,
    RoleResource,
    RoleSpec,
    format_duration,
)
from models.errors import InputError, LedgerError, PolicyDenied
from models.ledger import tables
from models.ledger.base import database_time
from models.policy import (
    CatalogIndex,
    Requestable,
    allowed_assignments,
    assignment_matches,
    effective_roles,
    pattern_matches,
    requestable,
)
from tasks.sync.snapshot import load_lists as load_snapshot_lists

EXTENSION_FACTOR = 2  # a request may live at most twice its cap, extensions included

# --- the policy as the ledger holds it ----------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """Roles, access lists and the catalog from the ledger, read at one database time."""

    roles: dict[str, RoleResource]
    lists: dict[str, AccessListResource]
    catalog: CatalogIndex
    now: datetime

    def held_roles(self, user: tables.User) -> list[RoleResource]:
        """The user's roles, direct and through access lists, that exist."""
        names = effective_roles(user=user.name, user_roles=user.roles, lists=self.lists,
                                at=self.now)
        return [self.roles[name] for name in sorted(names) if name in self.roles]


def load_policy(session: Session) -> Policy:
    """Everything policy decisions need, in four queries."""
    return Policy(roles=_load_roles(session), lists=load_lists(session),
                  catalog=_load_catalog(session), now=database_time(session))


def _load_roles(session: Session) -> dict[str, RoleResource]:
    roles = {}
    for row in session.scalars(select(tables.Role)):
        try:
            spec = RoleSpec.model_validate(row.spec)
        except ValueError as err:
            raise LedgerError(f"role {row.name!r} in the ledger is unreadable: {err}") from err
        roles[row.name] = RoleResource(kind="role", metadata=Metadata(name=row.name), spec=spec)
    return roles


def load_lists(session: Session) -> dict[str, AccessListResource]:
    """Every access list with its members, as the policy functions take them."""
    return load_snapshot_lists(session)[0]


def _load_catalog(session: Session) -> CatalogIndex:
    """Every present account x every present permission set (any set may go on any account)."""
    accounts = [Account.model_construct(id=a.id, name=a.name, ou_path=a.ou_path)
                for a in session.scalars(select(tables.Account).where(tables.Account.present))]
    permission_sets = [
        PermissionSet.model_construct(arn=p.arn, name=p.name, description=p.description)
        for p in session.scalars(select(tables.PermissionSet).where(tables.PermissionSet.present))]
    return CatalogIndex(AccountAssignment.model_construct(account=a, permission_set=p)
                        for a in accounts for p in permission_sets)


# --- what may be requested, and on which terms (pure) --------------------------------------


@dataclass(frozen=True)
class RequestTerms:
    """How a request for some items may be granted."""

    max_duration: timedelta
    approvals: int
    break_glass_max_duration: timedelta | None  # None: no break-glass rule covers every item


def resolve_resource(text: str, catalog: CatalogIndex) -> str | None:
    """``<account-id or account-name>/<permission-set-name>`` -> the canonical assignment id.

    None when nothing, or more than one account (a shared name), matches.
    """
    account, _, permission_set = text.strip().rpartition("/")
    found = {a.id for a in catalog.by_account.get(account, ())
             if a.permission_set.name == permission_set}
    return found.pop() if len(found) == 1 else None


def request_terms(*, held: Sequence[RoleResource], catalog: CatalogIndex,
                  all_roles: dict[str, RoleResource], roles: Iterable[str],
                  assignments: Iterable[str]) -> RequestTerms:
    """Cap, approvals and break-glass limit of a request by the holder of ``held``.

    Raises ``PolicyDenied`` naming every item that may not be requested, and why.
    """
    roles, assignments = sorted(set(roles)), sorted(set(assignments))
    offer = requestable(roles=held, catalog=catalog, all_roles=all_roles)
    refusals = [f"role {r}: {_role_refusal(r, held, all_roles)}"
                for r in roles if r not in offer.roles]
    refusals += [f"{a}: {_assignment_refusal(a, held, catalog)}"
                 for a in assignments if a not in offer.assignments]
    if refusals:
        raise PolicyDenied("cannot request " + "; ".join(refusals))
    approvals = max((role.spec.allow.request.approvals for role in held
                     if role.spec.allow.request and _offers_any(role, roles, assignments,
                                                                catalog, all_roles)),
                    default=1)
    return RequestTerms(max_duration=offer.cap_for(roles=roles, assignments=assignments),
                        approvals=approvals,
                        break_glass_max_duration=_break_glass_cap(held, catalog, all_roles,
                                                                  roles, assignments))


def _offers_any(role: RoleResource, roles: list[str], assignments: list[str],
                catalog: CatalogIndex, all_roles: dict[str, RoleResource]) -> bool:
    alone = requestable(roles=[role], catalog=catalog, all_roles=all_roles)
    return bool(alone.roles.intersection(roles) or alone.assignments.intersection(assignments))


def _break_glass_cap(held: Sequence[RoleResource], catalog: CatalogIndex,
                     all_roles: dict[str, RoleResource], roles: list[str],
                     assignments: list[str]) -> timedelta | None:
    # Items were checked against every held role (denies included); here only whether
    # break-glass rules alone cover them all.
    glass = [r for r in held if r.spec.allow.request and r.spec.allow.request.break_glass]
    offer = requestable(roles=glass, catalog=catalog, all_roles=all_roles)
    if not glass or not (set(roles) <= offer.roles and set(assignments) <= offer.assignments):
        return None
    return min(offer.cap_for(roles=roles, assignments=assignments),
               offer.break_glass_max_duration)


def _role_refusal(name: str, held: Sequence[RoleResource],
                  all_roles: dict[str, RoleResource]) -> str:
    if name not in all_roles:
        return "no such role"
    for role in held:
        deny = role.spec.deny.request
        if deny and any(pattern_matches(p, name) for p in deny.roles):
            return f"denied by role {role.name}"
    return "none of your roles allows requesting it"


def _assignment_refusal(item: str, held: Sequence[RoleResource], catalog: CatalogIndex) -> str:
    assignment = next((a for a in catalog if a.id == item), None)
    if assignment is None:
        return "not in the catalog (unknown or ambiguous account, or unknown permission set)"
    for role in held:
        deny = role.spec.deny
        rules = [*deny.account_assignments, *(deny.request.account_assignments
                                              if deny.request else [])]
        if any(assignment_matches(rule, assignment) for rule in rules):
            return f"denied by role {role.name}"
    return "none of your roles allows requesting it"


def granted_duration(terms: RequestTerms, asked: timedelta | None, *,
                     break_glass: bool) -> timedelta:
    """The duration a request gets: what was asked (default: the cap), at most the cap."""
    if asked is not None and asked <= timedelta(0):
        raise InputError(f"duration {asked} must be longer than zero")
    cap = terms.break_glass_max_duration if break_glass else terms.max_duration
    if cap is None or cap <= timedelta(0):
        raise PolicyDenied("break-glass is not allowed for these items" if break_glass
                           else "these items allow no request duration")
    return cap if asked is None else min(asked, cap)


# --- requestable, for people ---------------------------------------------------------------


@dataclass(frozen=True)
class RequestableAccount:
    """One account (an "app") and the permission sets on it the user may request."""

    account_id: str
    account_name: str
    permission_sets: dict[str, timedelta]  # permission set name -> longest duration


@dataclass(frozen=True)
class RequestableItem:
    """One role or assignment a user may request, on the terms a request for it alone gets."""

    kind: str  # role | assignment
    name: str  # the role, or "<account-name> (<id>)/<permission-set-name>"
    terms: RequestTerms

    def as_row(self) -> dict[str, Any]:
        glass = self.terms.break_glass_max_duration
        return {"kind": self.kind, "name": self.name,
                "max_duration": format_duration(self.terms.max_duration),
                "approvals": self.terms.approvals,
                "break_glass": f"up to {format_duration(glass)}" if glass else "no"}

    def as_document(self) -> dict[str, Any]:
        glass = self.terms.break_glass_max_duration
        return {**self.as_row(), "break_glass": bool(glass),
                "break_glass_max_duration": format_duration(glass) if glass else None}


@dataclass(frozen=True)
class RequestableView:
    user: str
    roles: dict[str, timedelta]  # role name -> longest duration
    accounts: list[RequestableAccount]
    max_duration: timedelta
    approvals: int
    break_glass: bool
    break_glass_max_duration: timedelta | None
    items: list[RequestableItem] = field(default_factory=list)  # per item terms

    def rows(self) -> list[dict[str, Any]]:
        """One row per requestable role and assignment, each with its own terms."""
        return [item.as_row() for item in self.items]

    def as_document(self) -> dict[str, Any]:
        """JSON-ready, durations written as people write them (``4h``)."""
        return {
            "user": self.user, "max_duration": format_duration(self.max_duration),
            "approvals": self.approvals, "break_glass": self.break_glass,
            "break_glass_max_duration": (format_duration(self.break_glass_max_duration)
                                         if self.break_glass_max_duration else None),
            "roles": {name: format_duration(cap) for name, cap in self.roles.items()},
            "accounts": [{"account_id": a.account_id, "account_name": a.account_name,
                          "permission_sets": {name: format_duration(cap)
                                              for name, cap in a.permission_sets.items()}}
                         for a in self.accounts],
            "items": [item.as_document() for item in self.items],
        }


TermsOf = Callable[..., RequestTerms]  # request_terms with held/catalog/all_roles bound


def requestable_view(user: str, offer: Requestable, catalog: CatalogIndex,
                     terms: TermsOf | None = None) -> RequestableView:
    """Group an offer by account, like the seed's apps with permission sets inside; with
    ``terms``, each item's own cap, approvals and break-glass limit."""
    accounts: dict[str, RequestableAccount] = {}
    items = [RequestableItem("role", name, terms(roles=[name], assignments=[]))
             for name in sorted(offer.role_caps)] if terms else []
    for assignment in sorted(catalog, key=lambda a: (a.account.name, a.permission_set.name)):
        if assignment.id not in offer.assignments:
            continue
        account = assignment.account
        entry = accounts.setdefault(account.id, RequestableAccount(account.id, account.name, {}))
        entry.permission_sets[assignment.permission_set.name] = \
            offer.assignment_caps[assignment.id]
        if terms:
            items.append(RequestableItem(
                "assignment", f"{account.name} ({account.id})/{assignment.permission_set.name}",
                terms(roles=[], assignments=[assignment.id])))
    return RequestableView(
        user=user, roles=dict(sorted(offer.role_caps.items())), accounts=list(accounts.values()),
        max_duration=offer.max_duration, approvals=offer.approvals,
        break_glass=offer.break_glass,
        break_glass_max_duration=offer.break_glass_max_duration if offer.break_glass else None,
        items=items)


# --- promotion -----------------------------------------------------------------------------


def uncovered_items(*, roles: Iterable[str], assignments: Iterable[str],
                    list_roles: Sequence[RoleResource], all_roles: dict[str, RoleResource],
                    catalog: CatalogIndex) -> list[str]:
    """What a request asks for that an access list granting ``list_roles`` does not give.

    A role is covered when the list grants it, or grants every assignment it allows.
    """
    granted = allowed_assignments(roles=list_roles, catalog=catalog)
    names = {role.name for role in list_roles}
    missing = [f"role {name}" for name in roles if name not in names
               and not _covered_role(all_roles.get(name), granted, catalog)]
    return missing + [f"resource {item}" for item in assignments if item not in granted]


def broader_items(*, roles: Iterable[str], assignments: Iterable[str],
                  list_roles: Sequence[RoleResource], all_roles: dict[str, RoleResource],
                  catalog: CatalogIndex) -> list[str]:
    """What an access list granting ``list_roles`` gives beyond a request: assignments not
    asked for, and roles not asked for that carry rights of their own (request, review,
    audit) or assignments beyond the request."""
    roles = set(roles)
    wanted = set(assignments)
    for name in roles:
        if name in all_roles:
            wanted |= allowed_assignments(roles=[all_roles[name]], catalog=catalog)
    extra = sorted(allowed_assignments(roles=list_roles, catalog=catalog) - wanted)
    rights = [f"role {role.name}" for role in list_roles if role.name not in roles
              and (role.spec.allow.request or role.spec.allow.review_requests
                   or role.spec.options.auditor)]
    return rights + [f"resource {item}" for item in extra]


def _covered_role(role: RoleResource | None, granted: set[str], catalog: CatalogIndex) -> bool:
    wanted = allowed_assignments(roles=[role], catalog=catalog) if role else set()
    return bool(wanted) and wanted <= granted


def extended_expiry(*, decided_at: datetime, expires_at: datetime, duration: timedelta,
                    cap: timedelta) -> datetime:
    """``expires_at + duration``, but a request lives at most ``EXTENSION_FACTOR x cap`` from
    its approval; ``PolicyDenied`` when that leaves nothing to add."""
    latest = decided_at + EXTENSION_FACTOR * cap
    if expires_at >= latest:
        raise PolicyDenied(
            f"the request already lives its maximum of {format_duration(latest - decided_at)} "
            f"({EXTENSION_FACTOR} x its cap {format_duration(cap)})",
            hint="create a new request, or promote it to an access list for long-term access")
    return min(expires_at + duration, latest)


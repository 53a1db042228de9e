"""Read helpers for `get` and `audit`: views of users, roles and access lists, and the trail.

Views are plain frozen dataclasses (``dataclasses.asdict`` gives the JSON the CLI and the API
print). Times that decide something ("is this review overdue?", "is this membership live?")
come from the database clock, like everywhere in the ledger.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models.domain import MemberKind, format_duration
from models.errors import NotFound
from models.flatten import NestingGraph
from models.ledger import audit, tables
from models.ledger.base import database_time
from models.ledger.enums import Origin
from tasks.access.permissions import (
    Actor,
    may_see_user,
    require_auditor,
    require_user_visible,
    visible_lists,
)

Sessions = sessionmaker[Session]


@dataclass(frozen=True)
class UserView:
    name: str
    email: str | None
    given_name: str | None
    family_name: str | None
    roles: list[str]
    traits: dict[str, Any]
    lists: list[str]  # the access lists the user is a direct member of
    origin: str
    suspended: bool
    principal_id: str | None


@dataclass(frozen=True)
class RoleView:
    name: str
    origin: str
    system: bool
    account_id: str | None
    permission_set_arn: str | None
    holders: list[str]  # users holding the role directly
    granted_by: list[str]  # access lists granting it
    spec: dict[str, Any]


@dataclass(frozen=True)
class MemberView:
    name: str
    kind: str
    expires: datetime | None
    live: bool


@dataclass(frozen=True)
class AccessListView:
    name: str
    title: str
    description: str
    owners: list[str]
    granted_roles: list[str]
    member_count: int  # live direct memberships (users and nested lists)
    members: list[MemberView]
    group_id: str | None
    recurrence: str | None
    next_review_at: datetime | None
    review_overdue: bool
    origin: str


# --- users ---------------------------------------------------------------------------------


def list_users(*, sessions: Sessions, viewer: Actor) -> list[UserView]:
    """Every user the viewer may see (auditors: all; a person: themself), by name."""
    statement = select(tables.User).order_by(tables.User.name)
    if not viewer.auditor:
        statement = statement.where(tables.User.id == viewer.user_id)
    with sessions() as session:
        lists_of = _direct_lists(session, MemberKind.USER)
        return [_user_view(row, lists_of[row.name]) for row in session.scalars(statement)]


def get_user(*, sessions: Sessions, viewer: Actor, name: str) -> UserView:
    """One user; ``NotFound`` when there is none of that name the viewer may see."""
    require_user_visible(viewer, name)
    with sessions() as session:
        row = session.get(tables.User, name)
        if row is None:
            raise NotFound("user", name)
        return _user_view(row, _direct_lists(session, MemberKind.USER, name)[name])


def user_named_by_email(*, sessions: Sessions, email: str) -> str | None:
    """The user whose email is ``email`` (case-insensitive), or None: how people of another
    system (Slack) are matched to ledger users. Two users with one email match nobody."""
    with sessions() as session:
        names = list(session.scalars(select(tables.User.name).where(
            func.lower(tables.User.email) == email.strip().lower()).limit(2)))
    return names[0] if len(names) == 1 else None


def emails_of(*, sessions: Sessions, names: Iterable[str]) -> dict[str, str]:
    """The email of each named user that has one."""
    with sessions() as session:
        rows = session.execute(select(tables.User.name, tables.User.email).where(
            tables.User.name.in_(sorted(set(names))), tables.User.email.is_not(None)))
        return {name: email for name, email in rows if email}


def _user_view(row: tables.User, lists: list[str]) -> UserView:
    return UserView(
        name=row.name, email=row.email, given_name=row.given_name, family_name=row.family_name,
        roles=list(row.roles), traits=dict(row.traits), lists=sorted(lists),
        origin=str(row.origin), suspended=row.suspended, principal_id=row.principal_id,
    )


def _direct_lists(session: Session, kind: MemberKind,
                  member: str | None = None) -> defaultdict[str, list[str]]:
    """member name -> the lists it is directly in (whether or not the membership expired)."""
    statement = select(tables.Membership.member_name, tables.Membership.list_name).where(
        tables.Membership.member_kind == kind)
    if member is not None:
        statement = statement.where(tables.Membership.member_name == member)
    found: defaultdict[str, list[str]] = defaultdict(list)
    for member_name, list_name in session.execute(statement):
        found[member_name].append(list_name)
    return found


# --- roles ---------------------------------------------------------------------------------


def list_roles(*, sessions: Sessions, viewer: Actor) -> list[RoleView]:
    """Every role (system roles included), by name, with who holds or grants it. Roles are
    the policy everyone requests under; holders are shown to auditors, to others only
    themself."""
    with sessions() as session:
        holders, granted_by = role_references(session)
        rows = session.scalars(select(tables.Role).order_by(tables.Role.name))
        return [_role_view(row, holders[row.name], granted_by[row.name], viewer)
                for row in rows]


def get_role(*, sessions: Sessions, viewer: Actor, name: str) -> RoleView:
    """One role; ``NotFound`` when there is none of that name."""
    with sessions() as session:
        row = session.get(tables.Role, name)
        if row is None:
            raise NotFound("role", name)
        holders, granted_by = role_references(session)
        return _role_view(row, holders[name], granted_by[name], viewer)


def _role_view(row: tables.Role, holders: list[str], granted_by: list[str],
               viewer: Actor) -> RoleView:
    if not viewer.auditor:
        holders = [name for name in holders if may_see_user(viewer, name)]
    return RoleView(
        name=row.name, origin=str(row.origin), system=row.origin is Origin.SYSTEM,
        account_id=row.system_account_id, permission_set_arn=row.system_permission_set_arn,
        holders=sorted(holders), granted_by=sorted(granted_by), spec=dict(row.spec),
    )


def role_references(session: Session) -> tuple[defaultdict[str, list[str]],
                                                 defaultdict[str, list[str]]]:
    """role -> users holding it directly, and role -> access lists granting it."""
    holders: defaultdict[str, list[str]] = defaultdict(list)
    granted_by: defaultdict[str, list[str]] = defaultdict(list)
    for user, roles in session.execute(select(tables.User.name, tables.User.roles)):
        for role in roles:
            holders[role].append(user)
    for access_list, roles in session.execute(
            select(tables.AccessList.name, tables.AccessList.granted_roles)):
        for role in roles:
            granted_by[role].append(access_list)
    return holders, granted_by


# --- access lists --------------------------------------------------------------------------


def list_access_lists(*, sessions: Sessions, viewer: Actor,
                      names: Collection[str] | None = None) -> list[AccessListView]:
    """The access lists the viewer may see (auditors: all; a person: those they own or are
    in), or those of ``names`` among them, by name, with members, granted roles and review
    status."""
    with sessions() as session:
        now = database_time(session)
        members = _members(session, names=names)
        visible = visible_lists(session, viewer)
        statement = select(tables.AccessList).order_by(tables.AccessList.name)
        if names is not None:
            statement = statement.where(tables.AccessList.name.in_(list(names)))
        return [_access_list_view(row, members[row.name], now)
                for row in session.scalars(statement)
                if visible is None or row.name in visible]


def access_list_names(*, sessions: Sessions, involving: str | None = None) -> list[str]:
    """The names of every access list, or of those user ``involving`` owns or is a direct
    member of (reading names only: one page of views is then loaded by name)."""
    with sessions() as session:
        rows = session.execute(select(tables.AccessList.name, tables.AccessList.owners)
                               .order_by(tables.AccessList.name)).all()
        if involving is None:
            return [name for name, _ in rows]
        member_of = set(session.scalars(select(tables.Membership.list_name).where(
            tables.Membership.member_name == involving,
            tables.Membership.member_kind == MemberKind.USER)))
        return [name for name, owners in rows if involving in owners or name in member_of]


def get_access_list(*, sessions: Sessions, viewer: Actor, name: str) -> AccessListView:
    """One access list; ``NotFound`` when there is none of that name the viewer may see."""
    with sessions() as session:
        row = session.get(tables.AccessList, name)
        visible = visible_lists(session, viewer)
        if row is None or (visible is not None and name not in visible):
            raise NotFound("access-list", name)
        return _access_list_view(row, _members(session, name)[name], database_time(session))


def _members(session: Session, list_name: str | None = None, *,
             names: Collection[str] | None = None,
             ) -> defaultdict[str, list[tables.Membership]]:
    statement = select(tables.Membership).order_by(
        tables.Membership.member_kind, tables.Membership.member_name)
    if list_name is not None:
        statement = statement.where(tables.Membership.list_name == list_name)
    if names is not None:
        statement = statement.where(tables.Membership.list_name.in_(list(names)))
    found: defaultdict[str, list[tables.Membership]] = defaultdict(list)
    for membership in session.scalars(statement):
        found[membership.list_name].append(membership)
    return found


def _access_list_view(row: tables.AccessList, memberships: list[tables.Membership],
                      now: datetime) -> AccessListView:
    members = [MemberView(name=m.member_name, kind=str(m.member_kind), expires=m.expires_at,
                          live=m.expires_at is None or now < m.expires_at)
               for m in memberships]
    recurrence = (format_duration(timedelta(seconds=row.recurrence_seconds))
                  if row.recurrence_seconds else None)
    return AccessListView(
        name=row.name, title=row.title, description=row.description, owners=list(row.owners),
        granted_roles=list(row.granted_roles), member_count=sum(m.live for m in members),
        members=members, group_id=row.group_id, recurrence=recurrence,
        next_review_at=row.next_review_at,
        review_overdue=row.next_review_at is not None and row.next_review_at <= now,
        origin=str(row.origin),
    )


# --- nesting (shared by the write services) --------------------------------------------------


def ledger_nesting(session: Session) -> NestingGraph:
    """The ledger's list-in-list edges (expired or not); users are left out (not needed to
    find cycles, depth or the lists a change reaches)."""
    children: dict[str, list[str]] = {
        name: [] for name in session.scalars(select(tables.AccessList.name))}
    edges = select(tables.Membership.list_name, tables.Membership.member_name).where(
        tables.Membership.member_kind == MemberKind.ACCESS_LIST)
    for parent, child in session.execute(edges):
        children.setdefault(parent, []).append(child)
    return NestingGraph(users={}, children={k: tuple(v) for k, v in children.items()})


def with_ancestors(graph: NestingGraph, lists: Iterable[str]) -> set[str]:
    """``lists`` plus every list that nests one of them, at any depth: their flattened groups
    all change when one of ``lists`` changes."""
    parents: defaultdict[str, list[str]] = defaultdict(list)
    for parent, children in graph.children.items():
        for child in children:
            parents[child].append(parent)
    reached, pending = set(lists), list(lists)
    while pending:
        for parent in parents.get(pending.pop(), ()):
            if parent not in reached:
                reached.add(parent)
                pending.append(parent)
    return reached


# --- audit ---------------------------------------------------------------------------------


def audit_trail(*, sessions: Sessions, viewer: Actor, user: str | None = None,
                account_id: str | None = None, since: datetime | None = None,
                until: datetime | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Audit events, oldest first, as JSON-ready dicts (see ``models.ledger.audit.events``);
    the admin and auditors only."""
    require_auditor(viewer, "the audit trail")
    with sessions() as session:
        found = audit.events(session, user=user, account_id=account_id, since=since,
                             until=until, limit=limit)
        return [event_row(event) for event in found]


def event_row(event: tables.AuditEvent) -> dict[str, Any]:
    """One audit event as a flat dict (one JSON line for a SIEM)."""
    return {
        "id": event.id, "at": event.at, "actor": event.actor, "action": event.action,
        "target_kind": event.target_kind, "target": event.target,
        "principal_name": event.principal_name, "account_id": event.account_id,
        "request_id": event.request_id, "reason": event.reason,
        "before": event.before, "after": event.after, "details": event.details,
    }


def holders_at(*, sessions: Sessions, viewer: Actor, at: datetime,
               account_id: str | None = None) -> list[dict[str, Any]]:
    """Who held which assignment at ``at`` (from grant activation and revocation times);
    the admin and auditors only."""
    require_auditor(viewer, "who held access")
    with sessions() as session:
        return [
            {"account_id": h.account_id, "permission_set": h.permission_set_name,
             "principal_type": h.principal_type, "principal": h.principal_name,
             "source": f"{h.source_kind}:{h.source_id}", "since": h.activated_at,
             "until": h.revoked_at, "permission_set_arn": h.permission_set_arn,
             "grant_id": h.grant_id}
            for h in audit.holders_at(session, at=at, account_id=account_id)
        ]

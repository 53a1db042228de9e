"""Access-list membership: add and remove one member (a user or a nested list), audited.

Nesting stays a DAG no deeper than ``settings.max_nesting_depth``: adding a list is checked
against every list-in-list edge of the ledger, under a lock (``lock_nesting``) so that two
concurrent changes cannot each close half of a cycle. After the commit the sync is told
which lists changed: the list itself and every list nesting it, since each one's flattened
Identity Center group changes with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from models.domain import MemberKind
from models.errors import InputError, NotFound
from models.flatten import MAX_DEPTH, NestingGraph, flatten, flatten_graph
from models.ledger import audit, tables
from models.ledger.base import database_time
from models.ledger.db import transaction
from tasks import events
from tasks.access.permissions import Actor, may_add_self, may_change_members
from tasks.access.queries import ledger_nesting, with_ancestors
from tasks.access.requests_policy import load_lists

Sessions = sessionmaker[Session]
# Any constant works: it only has to be the same for every nesting change.
NESTING_LOCK_KEY = 0x67_6C_6E_65_73_74  # "glnest"


@dataclass(frozen=True)
class MembershipChange:
    list_name: str
    member: str
    kind: str  # user | access_list
    action: str  # added | expiry_changed | unchanged | removed
    expires: datetime | None = None

    def as_row(self) -> dict[str, object]:
        return {"list": self.list_name, "member": self.member, "kind": self.kind,
                "action": self.action, "expires": self.expires}


def lock_nesting(session: Session) -> None:
    """Serialize changes to list nesting until the transaction ends (PostgreSQL advisory
    lock; SQLite's BEGIN IMMEDIATE already serializes every writer)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": NESTING_LOCK_KEY})


def add_member(*, sessions: Sessions, list_name: str, member: str, kind: str,
               expires: datetime | None = None, actor: Actor,
               reason: str | None = None,
               max_nesting_depth: int = MAX_DEPTH) -> MembershipChange:
    """Add ``member`` to ``list_name``, or move its expiry if it is a member already.

    A person must own the list and may not add themself (another owner or an operator
    does, audited and notified as ``access_list.owner_joined``). Raises ``NotFound``,
    ``PolicyDenied``, ``CycleError``, ``DepthError``, ``InputError``.
    """
    member_kind = _member_kind(kind)
    if expires is not None and expires.tzinfo is None:
        raise InputError(f"expiry {expires.isoformat()} has no time zone",
                         hint="give one, e.g. 2027-01-31T00:00:00Z")
    with transaction(sessions) as session:
        target = _owned_list(session, list_name, actor)
        may_add_self(actor, target, member, reached=_users_reached(session, member, member_kind))
        _require_member(session, member, member_kind)
        if expires is not None and expires <= database_time(session):
            raise InputError(f"expiry {expires.isoformat()} is in the past",
                             hint="give a later time, or remove the member instead")
        graph = None
        if member_kind is MemberKind.ACCESS_LIST:
            lock_nesting(session)
            graph = ledger_nesting(session)
            check_new_nesting(graph, parent=list_name, child=member,
                              max_depth=max_nesting_depth)
        change = _upsert(session, list_name, member, member_kind, expires, actor=actor.label,
                         reason=reason)
        if member_kind is MemberKind.USER and member in target.owners \
                and change.action != "unchanged":  # an operator or a co-owner did it
            _audit_owner_joined(session, target, member, actor=actor, reason=reason)
        lists = with_ancestors(graph or ledger_nesting(session), [list_name])
    if change.action != "unchanged":
        events.desired_state_changed(lists=sorted(lists), reason="membership")
    return change


def remove_member(*, sessions: Sessions, list_name: str, member: str, kind: str,
                  actor: Actor, reason: str | None = None) -> MembershipChange:
    """Remove ``member`` from ``list_name``; ``NotFound`` if it is not a member."""
    member_kind = _member_kind(kind)
    with transaction(sessions) as session:
        _owned_list(session, list_name, actor)
        membership = _membership(session, list_name, member, member_kind)
        if membership is None:
            raise NotFound("member", f"{member_kind.value} {member} of {list_name}",
                           hint=f"see the members with: grantledger get access-lists {list_name}")
        _remove(session, membership, actor=actor.label, reason=reason)
        lists = with_ancestors(ledger_nesting(session), [list_name])
    events.desired_state_changed(lists=sorted(lists), reason="membership")
    return MembershipChange(list_name, member, member_kind.value, "removed")


def check_new_nesting(graph: NestingGraph, *, parent: str, child: str, max_depth: int) -> None:
    """Raise ``CycleError`` / ``DepthError`` if nesting ``child`` in ``parent`` breaks the DAG."""
    children = dict(graph.children)
    children[parent] = (*children.get(parent, ()), child)
    flatten_graph(NestingGraph(users={}, children=children), max_depth=max_depth)


def remove_memberships_of(session: Session, member: str, kind: MemberKind, *, actor: str,
                          reason: str) -> list[str]:
    """Remove ``member`` from every list it is in (its deletion's cascade); those lists."""
    found = session.scalars(select(tables.Membership).where(
        tables.Membership.member_name == member, tables.Membership.member_kind == kind)).all()
    for membership in found:
        _remove(session, membership, actor=actor, reason=reason)
    return sorted(m.list_name for m in found)


def _member_kind(kind: str) -> MemberKind:
    try:
        return MemberKind(kind.replace("-", "_"))
    except ValueError:
        raise InputError(f"unknown member kind {kind!r}",
                         hint="a member is a 'user' or an 'access_list'") from None


def _owned_list(session: Session, list_name: str, actor: Actor) -> tables.AccessList:
    row = session.get(tables.AccessList, list_name)
    if row is None:
        raise NotFound("access-list", list_name)
    may_change_members(actor, row)
    return row


def _users_reached(session: Session, member: str, kind: MemberKind) -> frozenset[str]:
    """The users a nested list brings with it (none for a user member)."""
    if kind is MemberKind.USER:
        return frozenset()
    return flatten(load_lists(session), at=database_time(session)).get(member, frozenset())


def _audit_owner_joined(session: Session, target: tables.AccessList, member: str, *,
                        actor: Actor, reason: str | None) -> None:
    # An owner holding their own list's access is the one membership nobody else reviews:
    # it is a notifiable event (models.ledger.outbox), whoever made it.
    audit.record(session, actor=actor.label, action="access_list.owner_joined",
                 target_kind="access_list", target=target.name, principal_name=member,
                 reason=f"{target.name} (added by "
                        f"{actor.label}){': ' + reason if reason else ''}",
                 details={"owners": list(target.owners), "roles": list(target.granted_roles)})


def _require_member(session: Session, member: str, kind: MemberKind) -> None:
    table = tables.User if kind is MemberKind.USER else tables.AccessList
    if session.get(table, member) is None:
        raise NotFound("user" if kind is MemberKind.USER else "access-list", member)


def _membership(session: Session, list_name: str, member: str,
                kind: MemberKind) -> tables.Membership | None:
    return session.scalars(select(tables.Membership).where(
        tables.Membership.list_name == list_name, tables.Membership.member_name == member,
        tables.Membership.member_kind == kind)).one_or_none()


def _upsert(session: Session, list_name: str, member: str, kind: MemberKind,
            expires: datetime | None, *, actor: str, reason: str | None) -> MembershipChange:
    membership = _membership(session, list_name, member, kind)
    if membership is not None and membership.expires_at == expires:
        return MembershipChange(list_name, member, kind.value, "unchanged", expires)
    if membership is None:
        action, before = "added", None
        session.add(tables.Membership(list_name=list_name, member_name=member,
                                      member_kind=kind, expires_at=expires, added_by=actor))
    else:
        action, before = "expiry_changed", {"expires": _iso(membership.expires_at)}
        membership.expires_at = expires
    session.flush()
    audit.record(session, actor=actor, action=f"access_list.member_{action}",
                 target_kind="access_list", target=list_name, reason=reason, before=before,
                 after={"member": member, "kind": kind.value, "expires": _iso(expires)},
                 principal_name=member if kind is MemberKind.USER else None)
    return MembershipChange(list_name, member, kind.value, action, expires)


def _remove(session: Session, membership: tables.Membership, *, actor: str,
            reason: str | None) -> None:
    audit.record(session, actor=actor, action="access_list.member_removed",
                 target_kind="access_list", target=membership.list_name, reason=reason,
                 before={"member": membership.member_name, "kind": membership.member_kind.value,
                         "expires": _iso(membership.expires_at)},
                 principal_name=(membership.member_name
                                 if membership.member_kind is MemberKind.USER else None))
    session.delete(membership)
    session.flush()


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None

"""Applying and deleting resources (users, roles, access lists) in the ledger.

``apply_resources`` writes a validated batch whole or not at all, in one transaction. Before
anything is written, names are checked against the batch plus what the ledger holds (system
roles included) and nesting against the batch's lists plus the ledger's; every mistake is
raised together as ``ResourceErrors``, located at the offending document. Each created or
changed resource gets one audit event with its columns before and after. Once the
transaction has committed, the sync is told which users and lists to look at again.

A resource document owns the row it names: applying it over an imported row makes the row
``origin=resource``. System roles belong to import and are refused here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from models.domain import MemberKind
from models.errors import InputError, NotFound, PolicyDenied, ResourceErrors
from models.flatten import MAX_DEPTH
from models.ledger import audit, tables
from models.ledger.base import database_time
from models.ledger.db import transaction
from models.ledger.enums import Origin
from models.resources import LoadedResource
from tasks import events
from tasks.access.membership import lock_nesting, remove_memberships_of
from tasks.access.queries import ledger_nesting, role_references, with_ancestors
from tasks.access.requests import close_requests_of
from tasks.access.resources_rules import (
    Columns,
    LedgerNames,
    audit_document,
    batch_errors,
    field_diff,
    member_key,
    next_review,
    resource_columns,
    spec_hash,
)
from tasks.access.tokens import revoke_tokens_of

Sessions = sessionmaker[Session]
TABLES: dict[str, type[tables.User] | type[tables.Role] | type[tables.AccessList]] = {
    "user": tables.User, "role": tables.Role, "access_list": tables.AccessList,
}


@dataclass(frozen=True)
class ResourceChange:
    """What happened (or would happen) to one resource, and which fields changed."""

    kind: str
    name: str
    action: str  # created | updated | unchanged | deleted
    fields: tuple[str, ...] = ()

    def as_row(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "action": self.action,
                "changes": ", ".join(self.fields)}


@dataclass(frozen=True)
class ApplyResult:
    changes: list[ResourceChange]
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        return any(change.action != "unchanged" for change in self.changes)


def read_ledger_names(session: Session) -> LedgerNames:
    """The names a batch may refer to besides its own, and the ledger's list nesting."""
    roles = session.execute(select(tables.Role.name, tables.Role.origin)).all()
    nesting = ledger_nesting(session)
    return LedgerNames(
        users=frozenset(session.scalars(select(tables.User.name))),
        roles=frozenset(name for name, _ in roles),
        system_roles=frozenset(name for name, origin in roles if origin is Origin.SYSTEM),
        lists=frozenset(nesting.children), nesting=nesting,
    )


# --- apply -----------------------------------------------------------------------------------


def check_resources(*, sessions: Sessions, loaded: list[LoadedResource],
                    max_nesting_depth: int = MAX_DEPTH) -> None:
    """Raise ``ResourceErrors`` if ``loaded`` could not be applied to the ledger as it is."""
    with sessions() as session:
        errors = batch_errors(loaded, read_ledger_names(session),
                              max_depth=max_nesting_depth)
    if errors:
        raise ResourceErrors(errors)


def apply_resources(*, sessions: Sessions, loaded: list[LoadedResource], actor: str,
                    dry_run: bool = False, max_nesting_depth: int = MAX_DEPTH) -> ApplyResult:
    """Create or update every resource of ``loaded`` in one transaction, or none of them."""
    with transaction(sessions) as session:
        if any(item.kind == "access_list" for item in loaded):
            lock_nesting(session)  # two batches must not each close half of a cycle
        errors = batch_errors(loaded, read_ledger_names(session),
                              max_depth=max_nesting_depth)
        if errors:
            raise ResourceErrors(errors)
        now = database_time(session)
        changes = [_apply_one(session, item, actor=actor, now=now, dry_run=dry_run)
                   for item in loaded]
        result = ApplyResult(changes=changes, dry_run=dry_run)
        # A dry run wrote nothing, so the commit that ends the block is empty.
        if dry_run or not result.changed:
            return result
        users, lists = _affected(session, changes)
    announce(users=users, lists=lists, reason="apply")
    return result


def _apply_one(session: Session, item: LoadedResource, *, actor: str, now: datetime,
               dry_run: bool) -> ResourceChange:
    row = session.get(TABLES[item.kind], item.name)
    before = row_columns(session, item.kind, row) if row is not None else None
    after = resource_columns(item.resource)
    fields = field_diff(before, after)
    action = "created" if before is None else ("updated" if fields else "unchanged")
    if action != "unchanged" and not dry_run:
        _write(session, item.kind, item.name, row, after, actor=actor, now=now)
        audit.record(session, actor=actor, action=f"resource.{action}", target_kind=item.kind,
                     target=item.name, before=audit_document(before),
                     after=audit_document(after),
                     principal_name=item.name if item.kind == "user" else None,
                     details={"file": item.file, "line": item.line, "fields": list(fields)})
    return ResourceChange(item.kind, item.name, action, fields)


def row_columns(session: Session, kind: str, row: Any) -> Columns:
    """The same columns as ``resource_columns``, read from a ledger row."""
    if kind == "user":
        return {"email": row.email, "given_name": row.given_name,
                "family_name": row.family_name, "roles": list(row.roles),
                "traits": dict(row.traits), "origin": row.origin}
    if kind == "role":
        return {"spec": dict(row.spec), "origin": row.origin}
    memberships = session.scalars(select(tables.Membership).where(
        tables.Membership.list_name == row.name))
    members = [{"name": m.member_name, "kind": m.member_kind.value, "expires": m.expires_at}
               for m in memberships]
    return {"title": row.title, "description": row.description, "owners": list(row.owners),
            "granted_roles": list(row.granted_roles),
            "recurrence_seconds": row.recurrence_seconds, "origin": row.origin,
            "members": sorted(members, key=member_key)}


def _write(session: Session, kind: str, name: str, row: Any, after: Columns, *,
           actor: str, now: datetime) -> None:
    if row is None:
        row = TABLES[kind](name=name)
        session.add(row)
    columns = {key: value for key, value in after.items() if key != "members"}
    if kind == "access_list" and (row.recurrence_seconds != columns["recurrence_seconds"]
                                  or row.next_review_at is None):
        row.next_review_at = next_review(row.next_review_at, columns["recurrence_seconds"],
                                         now)
    if kind == "role":
        row.spec_hash = spec_hash(columns["spec"])
    for key, value in columns.items():
        setattr(row, key, value)
    session.flush()  # the list row exists before its memberships point at it
    if kind == "access_list":
        _replace_members(session, name, after["members"], actor=actor)


def _replace_members(session: Session, list_name: str, wanted: list[Columns], *,
                     actor: str) -> None:
    existing = {(m.member_kind.value, m.member_name): m for m in session.scalars(
        select(tables.Membership).where(tables.Membership.list_name == list_name))}
    expiries = {member_key(m): m["expires"] for m in wanted}
    for key, membership in existing.items():
        if key not in expiries:
            session.delete(membership)
    for (kind, name), expires in expiries.items():
        if (kind, name) not in existing:
            session.add(tables.Membership(list_name=list_name, member_name=name,
                                          member_kind=MemberKind(kind), expires_at=expires,
                                          added_by=actor))
        elif existing[(kind, name)].expires_at != expires:
            existing[(kind, name)].expires_at = expires
    session.flush()


def _affected(session: Session, changes: list[ResourceChange]) -> tuple[set[str], set[str]]:
    """The users and lists whose desired state may have moved: changed users, holders and
    granting lists of changed roles, changed lists and every list nesting them."""
    changed = {(c.kind, c.name) for c in changes if c.action != "unchanged"}
    roles = {name for kind, name in changed if kind == "role"}
    holders, granted_by = role_references(session)
    users = {name for kind, name in changed if kind == "user"}
    users |= {user for role in roles for user in holders[role]}
    lists = with_ancestors(ledger_nesting(session),
                           {name for kind, name in changed if kind == "access_list"})
    return users, lists | {name for role in roles for name in granted_by[role]}


def announce(*, users: Iterable[str], lists: Iterable[str], reason: str) -> None:
    """Tell the sync which principals to look at again (after the commit, never before)."""
    users, lists = sorted(users), sorted(lists)
    if users or lists:
        events.desired_state_changed(users=users, lists=lists, reason=reason)


# --- delete --------------------------------------------------------------------------------

KIND_ALIASES = {"user": "user", "role": "role", "access_list": "access_list",
                "access-list": "access_list"}


def delete_resource(*, sessions: Sessions, kind: str, name: str, actor: str,
                    force: bool = False) -> ApplyResult:
    """Delete one user, role or access list, all or nothing.

    Refused while something still refers to it (lists it owns, users or lists holding the
    role, lists nesting the list), naming them; ``force`` removes those references too.
    """
    if kind not in KIND_ALIASES:
        raise InputError(f"cannot delete a {kind!r}", hint="kinds: user, role, access-list")
    deleter = _DELETERS[KIND_ALIASES[kind]]
    with transaction(sessions) as session:
        lock_nesting(session)
        changes, users, lists = deleter(session, name, actor=actor, force=force)
    announce(users=users, lists=lists, reason="delete")
    return ApplyResult(changes=_merged(changes))


Deleted = tuple[list[ResourceChange], set[str], set[str]]


def _delete_user(session: Session, name: str, *, actor: str, force: bool) -> Deleted:
    row = _existing(session, "user", name)
    owned = sorted(n for n, owners in session.execute(
        select(tables.AccessList.name, tables.AccessList.owners)) if name in owners)
    if owned and not force:
        raise InputError(f"user {name!r} owns access list(s) {', '.join(owned)}",
                         hint=f"give them other owners first, or force the delete to remove "
                              f"{name} from their owners", fields=("force",))
    changes = [_drop_value(session, "access_list", n, "owners", name, actor=actor)
               for n in owned]
    graph = ledger_nesting(session)
    member_of = remove_memberships_of(session, name, MemberKind.USER, actor=actor,
                                      reason=f"user {name} deleted")
    changes += [ResourceChange("access_list", n, "updated", (f"members -{name}",))
                for n in member_of]
    # The person ends here: nothing of theirs may act or be granted, whoever gets the name.
    close_requests_of(session, user_id=row.id, actor=actor, reason=f"user {name} deleted")
    revoke_tokens_of(session, user_id=row.id, actor=actor, reason=f"user {name} deleted")
    _delete_row(session, "user", row, actor=actor)
    return [ResourceChange("user", name, "deleted"), *changes], {name}, with_ancestors(
        graph, member_of)


def _delete_role(session: Session, name: str, *, actor: str, force: bool) -> Deleted:
    row = _existing(session, "role", name)
    if row.origin is Origin.SYSTEM:
        raise PolicyDenied(f"role {name!r} is a system role: import creates and removes it "
                           "with its account assignment",
                           hint="to stop granting it, remove it from the lists that grant it")
    holders, granted_by = role_references(session)
    users, lists = sorted(holders[name]), sorted(granted_by[name])
    if (users or lists) and not force:
        raise InputError(f"role {name!r} is still held by user(s) [{', '.join(users)}] and "
                         f"granted by access list(s) [{', '.join(lists)}]",
                         hint="remove it from them first, or force the delete to remove it "
                              "too", fields=("force",))
    changes = [_drop_value(session, "user", n, "roles", name, actor=actor) for n in users]
    changes += [_drop_value(session, "access_list", n, "granted_roles", name, actor=actor)
                for n in lists]
    _delete_row(session, "role", row, actor=actor)
    return [ResourceChange("role", name, "deleted"), *changes], set(users), set(lists)


def _delete_access_list(session: Session, name: str, *, actor: str, force: bool) -> Deleted:
    row = _existing(session, "access_list", name)
    graph = ledger_nesting(session)
    parents = sorted(p for p, children in graph.children.items() if name in children)
    if parents and not force:
        raise InputError(f"access list {name!r} is nested in access list(s) "
                         f"{', '.join(parents)}",
                         hint=f"remove it from {parents[0]} first, or force the delete",
                         fields=("force",))
    remove_memberships_of(session, name, MemberKind.ACCESS_LIST, actor=actor,
                          reason=f"access list {name} deleted")
    _delete_row(session, "access_list", row, actor=actor)
    changes = [ResourceChange("access_list", p, "updated", (f"members -{name}",))
               for p in parents]
    return ([ResourceChange("access_list", name, "deleted"), *changes], set(),
            with_ancestors(graph, [name]))


_DELETERS: dict[str, Callable[..., Deleted]] = {
    "user": _delete_user, "role": _delete_role, "access_list": _delete_access_list,
}


def _existing(session: Session, kind: str, name: str) -> Any:
    row = session.get(TABLES[kind], name)
    if row is None:
        raise NotFound(kind.replace("_", "-"), name)
    return row


def _drop_value(session: Session, kind: str, name: str, column: str, value: str, *,
                actor: str) -> ResourceChange:
    """Remove ``value`` from a list column of one row (a forced delete's cascade), audited."""
    row = session.get(TABLES[kind], name)
    before = list(getattr(row, column))
    setattr(row, column, [item for item in before if item != value])
    audit.record(session, actor=actor, action="resource.updated", target_kind=kind,
                 target=name, before={column: before}, after={column: getattr(row, column)},
                 reason=f"forced delete of {value}",
                 principal_name=name if kind == "user" else None)
    return ResourceChange(kind, name, "updated", (f"{column} -{value}",))


def _delete_row(session: Session, kind: str, row: Any, *, actor: str) -> None:
    before = row_columns(session, kind, row)
    if kind == "access_list":
        session.execute(delete(tables.Membership).where(tables.Membership.list_name == row.name))
    session.delete(row)
    session.flush()
    audit.record(session, actor=actor, action="resource.deleted", target_kind=kind,
                 target=row.name, before=audit_document(before),
                 principal_name=row.name if kind == "user" else None)


def _merged(changes: list[ResourceChange]) -> list[ResourceChange]:
    """One change per resource: a list that lost an owner and a member is one line."""
    merged: dict[tuple[str, str], ResourceChange] = {}
    for change in changes:
        key = (change.kind, change.name)
        if key in merged:
            first = merged[key]
            change = ResourceChange(change.kind, change.name, first.action,
                                    first.fields + change.fields)
        merged[key] = change
    return list(merged.values())

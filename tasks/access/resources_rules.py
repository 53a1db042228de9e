"""The pure half of applying resources: ledger columns from documents, field diffs, and
every check a batch must pass before anything is written (``batch_errors``).

Nothing here touches the database; ``tasks.access.resources`` reads the ledger, calls
these, and writes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from models.domain import (
    SYSTEM_LABEL,
    AccessListResource,
    ListMember,
    MemberKind,
    RoleResource,
    UserResource,
)
from models.errors import CycleError, DepthError, ResourceError
from models.flatten import NestingGraph, flatten_graph
from models.ledger.enums import Origin
from models.resources import AnyResource, LoadedResource, check_references

Columns = dict[str, Any]


# --- columns and diffs ----------------------------------------------------------------------


def resource_columns(resource: AnyResource) -> Columns:
    """The ledger columns a document sets: what apply compares, writes and audits."""
    if isinstance(resource, UserResource):
        person = resource.spec
        return {"email": person.email, "given_name": person.given_name,
                "family_name": person.family_name, "roles": list(person.roles),
                "traits": {k: list(v) for k, v in person.traits.items()},
                "origin": Origin.RESOURCE}
    if isinstance(resource, RoleResource):
        return {"spec": resource.spec.model_dump(mode="json"), "origin": Origin.RESOURCE}
    spec = resource.spec
    members = [{"name": m.name, "kind": m.kind.value, "expires": m.expires} for m in spec.members]
    return {
        "title": spec.title, "description": spec.description,
        "owners": [owner.name for owner in spec.owners], "granted_roles": list(spec.grants.roles),
        "recurrence_seconds": int(spec.recurrence.total_seconds()) if spec.recurrence else None,
        "origin": Origin.RESOURCE, "members": sorted(members, key=member_key),
    }


def member_key(member: Mapping[str, Any]) -> tuple[str, str]:
    return member["kind"], member["name"]


def field_diff(before: Columns | None, after: Columns) -> tuple[str, ...]:
    """The changed fields, short: ``("email", "members +dave -frank ~erin", "spec.deny")``."""
    if before is None:
        return ()
    changed: list[str] = []
    for key, value in after.items():
        if before.get(key) == value:
            continue
        if key == "members":
            changed.append(_members_diff(before.get(key) or [], value))
        elif key == "spec":
            old = before.get(key) or {}
            changed += [f"spec.{k}" for k in sorted(set(old) | set(value))
                        if old.get(k) != value.get(k)]
        else:
            changed.append(key)
    return tuple(changed)


def _members_diff(before: list[Columns], after: list[Columns]) -> str:
    old = {member_key(m): m["expires"] for m in before}
    new = {member_key(m): m["expires"] for m in after}
    parts = [f"+{key[1]}" for key in sorted(new.keys() - old.keys())]
    parts += [f"-{key[1]}" for key in sorted(old.keys() - new.keys())]
    parts += [f"~{key[1]}" for key in sorted(new.keys() & old.keys()) if old[key] != new[key]]
    return "members " + " ".join(parts)


def spec_hash(spec: Mapping[str, Any]) -> str:
    """sha256 of a role spec in canonical JSON: tells a hand edit from the generated spec."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def next_review(current: datetime | None, recurrence_seconds: int | None,
                now: datetime) -> datetime | None:
    """When a list is next due for review after its recurrence is set or changed: one period
    from now, but never later than a review that was already due sooner."""
    if not recurrence_seconds:
        return None
    candidate = now + timedelta(seconds=recurrence_seconds)
    return candidate if current is None else min(current, candidate)


def audit_document(columns: Columns | None) -> Any:
    return None if columns is None else json.loads(json.dumps(columns, default=str))


# --- checks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerNames:
    """What a batch may refer to besides itself."""

    users: frozenset[str]
    roles: frozenset[str]
    system_roles: frozenset[str]
    lists: frozenset[str]
    nesting: NestingGraph


def batch_errors(loaded: list[LoadedResource], ledger: LedgerNames, *,
                 max_depth: int) -> list[ResourceError]:
    """Every reason not to apply ``loaded`` on top of ``ledger``, each located."""
    errors = _duplicates(loaded) + _system_role_edits(loaded, ledger.system_roles)
    errors += check_references(loaded, known_roles=ledger.roles, known_users=ledger.users,
                               known_lists=ledger.lists, max_depth=max_depth)
    # Only once every name resolves: a missing list would otherwise hide or fake a cycle.
    return errors or _nesting_with_ledger(loaded, ledger.nesting, max_depth=max_depth)


def _duplicates(loaded: list[LoadedResource]) -> list[ResourceError]:
    seen: set[tuple[str, str]] = set()
    errors = []
    for item in loaded:
        if (item.kind, item.name) in seen:
            errors.append(item.error(("metadata", "name"),
                                     f"duplicate {item.kind} {item.name!r} in this batch"))
        seen.add((item.kind, item.name))
    return errors


def _system_role_edits(loaded: list[LoadedResource],
                       system_roles: frozenset[str]) -> list[ResourceError]:
    errors = []
    for item in loaded:
        if not isinstance(item.resource, RoleResource):
            continue
        if item.name in system_roles:
            errors.append(item.error(
                ("metadata", "name"), f"role {item.name!r} is a system role: read-only (it mirrors "
                "an Identity Center assignment; the import refresh restores it)",
                hint="grant it through an access list, or write a role with another name"))
        elif item.resource.is_system:
            errors.append(item.error(
                ("metadata", "labels", SYSTEM_LABEL), "only import creates system roles",
                hint=f"remove the label {SYSTEM_LABEL}"))
    return errors


def _nesting_with_ledger(loaded: list[LoadedResource], ledger: NestingGraph, *,
                         max_depth: int) -> list[ResourceError]:
    """Cycles and depth over the ledger's lists with the batch's lists replacing theirs."""
    batch = {item.name: item for item in loaded if isinstance(item.resource, AccessListResource)}
    children = dict(ledger.children)
    for name, item in batch.items():
        children[name] = tuple(m.name for m in _nested(item))
    try:
        flatten_graph(NestingGraph(users={}, children=children), max_depth=max_depth)
    except CycleError as err:
        return [_locate_chain(err.cycle, batch, err)]
    except DepthError as err:
        return [_locate_chain(err.chain, batch, err)]
    return []


def _nested(item: LoadedResource) -> list[ListMember]:
    if not isinstance(item.resource, AccessListResource):
        return []
    return [m for m in item.resource.spec.members if m.kind is MemberKind.ACCESS_LIST]


def _locate_chain(chain: list[str], batch: Mapping[str, LoadedResource],
                  err: CycleError | DepthError) -> ResourceError:
    # The ledger was valid before, so the chain runs through at least one edge the batch
    # writes: point at that member entry.
    for parent, child in zip(chain, chain[1:], strict=False):
        item = batch.get(parent)
        if item is None or not isinstance(item.resource, AccessListResource):
            continue
        for index, member in enumerate(item.resource.spec.members):
            if member.name == child and member.kind is MemberKind.ACCESS_LIST:
                return item.error(("spec", "members", index, "name"), err.message,
                                  hint=err.hint)
    return ResourceError(err.message, hint=err.hint)

"""Transform: what Identity Center holds + what the ledger knows -> an ``ImportPlan``. Pure.

- each adopted group -> an access list (slug of its display name, made unique; title = the
  display name; owners = the default owners; members = the group's users; group id kept);
- each (account, permission set) assigned to an adopted group -> a system role
  ``<ps-name>-on-<account-name>-<account-id>`` granted by that list;
- assignments found -> grants, already ACTIVE, keyed exactly as the sync engine's desired
  state will key them, so that enrolment changes nothing in AWS and the first sync is a no-op.

Which groups are adopted: all of them at enrolment (the first import); afterwards only with
``adopt_new_groups``. Otherwise a group grantledger neither created nor imported is drift:
reported, never silently taken over.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from models.domain import (
    Account,
    AccountAssignment,
    PermissionSet,
    PrincipalType,
)
from models.errors import InputError
from models.ledger.enums import SourceKind
from models.policy import system_role
from models.ports.identity_center import AssignmentRecord, GroupRecord, UserRecord
from tasks.importing.model import (
    ENROLMENT_SOURCE,
    USABLE_ACCOUNT_STATES,
    ImportedGrant,
    ImportedList,
    ImportedUser,
    ImportPlan,
    Inventory,
    LedgerView,
    SystemRoleRow,
)
from tasks.importing.names import list_name_for, unique_name, user_name_for

Pair = tuple[str, str]  # (account id, permission set ARN)


@dataclass(frozen=True)
class Catalog:
    """Accounts and permission sets present in AWS now, by id / ARN."""

    accounts: Mapping[str, Account]
    permission_sets: Mapping[str, PermissionSet]

    def has(self, pair: Pair) -> bool:
        return pair[0] in self.accounts and pair[1] in self.permission_sets

    def assignment(self, pair: Pair) -> AccountAssignment:
        return AccountAssignment(account=self.accounts[pair[0]],
                                 permission_set=self.permission_sets[pair[1]])


def plan_import(inventory: Inventory, view: LedgerView, *, default_owners: Sequence[str] = (),
                adopt_new_groups: bool = False, catalog_only: bool = False) -> ImportPlan:
    """Every change this import makes. ``catalog_only``: accounts, permission sets and
    system-role renames, no groups or users (a scheduled refresh before enrolment).
    Adopted lists are owned by ``default_owners``, else by those chosen at enrolment."""
    catalog = catalog_of(inventory)
    catalog_plan = ImportPlan(
        accounts=tuple(catalog.accounts.values()),
        permission_sets=tuple(catalog.permission_sets.values()),
        new_accounts=tuple(i for i in catalog.accounts if not _known_present(view.accounts, i)),
        new_permission_sets=tuple(a for a in catalog.permission_sets
                                  if not _known_present(view.permission_sets, a)),
        vanished_accounts=_vanished(view.accounts, catalog.accounts),
        vanished_permission_sets=_vanished(view.permission_sets, catalog.permission_sets),
    )
    if catalog_only:
        roles = system_role_rows(set(), catalog=catalog, view=view)
        return _replace(catalog_plan, system_roles=roles)
    return _plan_principals(inventory, view, catalog, catalog_plan,
                            default_owners=default_owners or view.default_owners,
                            adopt_new_groups=adopt_new_groups)


def catalog_of(inventory: Inventory) -> Catalog:
    """Usable accounts and every permission set, sorted for stable output."""
    accounts = {a.id: Account(id=a.id, name=a.name or a.id, ou_path=a.ou_path or "")
                for a in sorted(inventory.accounts, key=lambda a: a.id)
                if a.status in USABLE_ACCOUNT_STATES}
    permission_sets = {p.arn: PermissionSet(arn=p.arn, name=p.name,
                                            description=p.description or "")
                       for p in sorted(inventory.permission_sets, key=lambda p: (p.name, p.arn))}
    return Catalog(accounts=accounts, permission_sets=permission_sets)


def _plan_principals(inventory: Inventory, view: LedgerView, catalog: Catalog,
                     catalog_plan: ImportPlan, *, default_owners: Sequence[str],
                     adopt_new_groups: bool) -> ImportPlan:
    adopted, drift = split_groups(inventory.groups, view, adopt_new_groups=adopt_new_groups)
    wanted = users_wanted(inventory, view, adopted=adopted, owners=default_owners)
    names, users = plan_users(inventory.users, view, wanted=wanted)
    by_group = group_pairs(inventory.assignments, catalog)
    roles = system_role_rows({p for g in adopted for p in by_group[g.group_id]},
                             catalog=catalog, view=view)
    list_names = name_lists(adopted, view)
    owners = tuple(dict.fromkeys(resolve_owner(o, inventory=inventory, view=view, names=names)
                                 for o in default_owners))
    role_names = {(r.account_id, r.permission_set_arn): r.name for r in roles}
    lists = tuple(_access_list(g, name=list_names[g.group_id], owners=owners,
                               members=inventory.members.get(g.group_id, ()), names=names,
                               roles=[role_names[pair] for pair in by_group[g.group_id]])
                  for g in adopted)
    grants = imported_grants(inventory.assignments, catalog=catalog, lists=list_names,
                             users=names if not view.enrolled else {})
    skipped = explain_skipped(inventory, catalog=catalog, adopted=adopted, names=names,
                              enrolled=view.enrolled)
    return _replace(catalog_plan, users=users, system_roles=roles, access_lists=lists,
                    grants=grants, drift_groups=tuple(drift),
                    vanished_groups=vanished_groups(inventory.groups, view), skipped=skipped)


def _access_list(group: GroupRecord, *, name: str, owners: tuple[str, ...],
                 members: Iterable[str], names: Mapping[str, str],
                 roles: Iterable[str]) -> ImportedList:
    return ImportedList(
        name=name, title=group.display_name or name, description=group.description or "",
        group_id=group.group_id, owners=owners,
        members=tuple(sorted({names[uid] for uid in members if uid in names})),
        granted_roles=tuple(sorted(roles)))


# --- groups ------------------------------------------------------------------------------


def split_groups(groups: Iterable[GroupRecord], view: LedgerView, *,
                 adopt_new_groups: bool) -> tuple[list[GroupRecord], list[GroupRecord]]:
    """(groups to adopt, groups to report as drift). A group is known when a list carries
    its id (imported, or created by our SCIM push) or an import adopted it before."""
    known = {gid for gid in view.lists.values() if gid} | view.imported_groups
    unknown = [g for g in sorted(groups, key=lambda g: (g.display_name, g.group_id))
               if g.group_id not in known]
    return (unknown, []) if adopt_new_groups or not view.enrolled else ([], unknown)


def name_lists(groups: Iterable[GroupRecord], view: LedgerView) -> dict[str, str]:
    """group id -> a new access-list name, unique among the ledger's lists and each other."""
    taken = set(view.lists)
    names: dict[str, str] = {}
    for group in groups:
        names[group.group_id] = unique_name(list_name_for(group.display_name), taken)
        taken.add(names[group.group_id])
    return names


def vanished_groups(groups: Iterable[GroupRecord], view: LedgerView) -> tuple[str, ...]:
    """Access lists whose Identity Center group no longer exists."""
    present = {g.group_id for g in groups}
    return tuple(sorted(name for name, gid in view.lists.items()
                        if gid and gid not in present))


def group_pairs(assignments: Iterable[AssignmentRecord],
                catalog: Catalog) -> defaultdict[str, set[Pair]]:
    """group id -> the (account, permission set) pairs assigned to it, within the catalog."""
    pairs: defaultdict[str, set[Pair]] = defaultdict(set)
    for a in assignments:
        pair = (a.account_id, a.permission_set_arn)
        if a.principal_type == PrincipalType.GROUP and catalog.has(pair):
            pairs[a.principal_id].add(pair)
    return pairs


# --- users -------------------------------------------------------------------------------


def users_wanted(inventory: Inventory, view: LedgerView, *, adopted: Sequence[GroupRecord],
                 owners: Sequence[str]) -> set[str]:
    """User ids to bring into the ledger: all at enrolment; afterwards only the members of
    adopted groups and owners who are not ledger users yet."""
    if not view.enrolled:
        return {u.user_id for u in inventory.users}
    if not adopted:  # nothing to own or join: a user deleted from the ledger stays deleted
        return set()
    wanted = {uid for g in adopted for uid in inventory.members.get(g.group_id, ())}
    wanted |= {u.user_id for u in inventory.users
               if u.user_name in owners and u.user_name not in view.users}
    return wanted


def plan_users(users: Iterable[UserRecord], view: LedgerView, *,
               wanted: set[str]) -> tuple[dict[str, str], tuple[ImportedUser, ...]]:
    """(user id -> ledger user name for every wanted user, the users to insert or link).

    A ledger user already holding the principal id keeps its name; one of the same name
    without a principal id is linked (it is that person); anyone else gets a unique name.
    """
    by_principal = {pid: name for name, pid in view.users.items() if pid}
    taken = set(view.users)
    names: dict[str, str] = {}
    rows: list[ImportedUser] = []
    for user in sorted(users, key=lambda u: (u.user_name, u.user_id)):
        if user.user_id not in wanted:
            continue
        if user.user_id in by_principal:
            names[user.user_id] = by_principal[user.user_id]
            continue
        base = user_name_for(user.user_name, user_id=user.user_id)
        link = base in view.users and view.users[base] is None and base not in names.values()
        name = base if link else unique_name(base, taken)
        taken.add(name)
        names[user.user_id] = name
        rows.append(ImportedUser(name=name, principal_id=user.user_id, email=user.email,
                                 given_name=user.given_name, family_name=user.family_name,
                                 link_only=link))
    return names, tuple(rows)


def resolve_owner(owner: str, *, inventory: Inventory, view: LedgerView,
                  names: Mapping[str, str]) -> str:
    """The ledger name of a default owner given by ledger name or Identity Center user name
    (they differ only when an imported user had to be renamed)."""
    if owner in view.users or owner in names.values():
        return owner
    found = next((names[u.user_id] for u in inventory.users
                  if u.user_name == owner and u.user_id in names), None)
    return found or owner


def check_default_owners(owners: Sequence[str], inventory: Inventory,
                         view: LedgerView) -> None:
    """InputError naming every owner that is neither a ledger user nor an Identity Center
    user (by user name)."""
    known = set(view.users) | {u.user_name for u in inventory.users}
    unknown = [owner for owner in owners if owner not in known]
    if unknown:
        raise InputError(
            f"default owner(s) not found in Identity Center or the ledger: {', '.join(unknown)}",
            hint="name users that exist (see: grantledger import --preview)",
        )


# --- system roles and grants -------------------------------------------------------------


def system_role_rows(pairs: set[Pair], *, catalog: Catalog,
                     view: LedgerView) -> tuple[SystemRoleRow, ...]:
    """The system roles for ``pairs`` plus every existing one still in the catalog, named
    from today's account and permission set names (a rename renames the role)."""
    existing = {pair: name for name, pair in view.roles.items() if pair is not None}
    wanted = sorted(p for p in pairs | set(existing) if catalog.has(p))
    rows = tuple(_system_role_row(catalog.assignment(p), existing.get(p)) for p in wanted)
    _refuse_name_clashes(rows, view)
    return rows


def _system_role_row(assignment: AccountAssignment, current: str | None) -> SystemRoleRow:
    role = system_role(assignment)
    spec = role.spec.model_dump(mode="json", exclude_defaults=True)
    return SystemRoleRow(
        name=role.name, account_id=assignment.account.id,
        permission_set_arn=assignment.permission_set.arn, spec=spec, spec_hash=spec_hash(spec),
        renamed_from=current if current not in (None, role.name) else None,
    )


def spec_hash(spec: Mapping[str, object]) -> str:
    """sha256 of a role spec in canonical JSON: an edit changes it."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _refuse_name_clashes(rows: Sequence[SystemRoleRow], view: LedgerView) -> None:
    freed = {row.renamed_from for row in rows if row.renamed_from}
    for row in rows:
        holder = view.roles.get(row.name, (row.account_id, row.permission_set_arn))
        if holder != (row.account_id, row.permission_set_arn) and row.name not in freed:
            raise InputError(
                f"role {row.name!r} exists and is not the system role for permission set "
                f"{row.permission_set_arn} on account {row.account_id}",
                hint="rename or delete that role: system role names are reserved",
            )


def imported_grants(assignments: Iterable[AssignmentRecord], *, catalog: Catalog,
                    lists: Mapping[str, str],
                    users: Mapping[str, str]) -> tuple[ImportedGrant, ...]:
    """Grants for the assignments of adopted groups (as their list's grants) and, at
    enrolment, for direct user assignments (source ``imported``/``enrolment``)."""
    grants: dict[tuple[str, ...], ImportedGrant] = {}
    for a in assignments:
        if not catalog.has((a.account_id, a.permission_set_arn)):
            continue
        grant = _grant_for(a, lists=lists, users=users)
        if grant is not None:
            grants[(grant.principal_type, grant.principal_name, a.account_id,
                    a.permission_set_arn)] = grant
    return tuple(grants[key] for key in sorted(grants))


def _grant_for(a: AssignmentRecord, *, lists: Mapping[str, str],
               users: Mapping[str, str]) -> ImportedGrant | None:
    if a.principal_type == PrincipalType.GROUP and a.principal_id in lists:
        name = lists[a.principal_id]
        return ImportedGrant(PrincipalType.GROUP, name, a.principal_id, a.account_id,
                             a.permission_set_arn, SourceKind.ACCESS_LIST, name)
    if a.principal_type == PrincipalType.USER and a.principal_id in users:
        return ImportedGrant(PrincipalType.USER, users[a.principal_id], a.principal_id,
                             a.account_id, a.permission_set_arn, SourceKind.IMPORTED,
                             ENROLMENT_SOURCE)
    return None


def explain_skipped(inventory: Inventory, *, catalog: Catalog, adopted: Sequence[GroupRecord],
                    names: Mapping[str, str], enrolled: bool) -> tuple[str, ...]:
    """One line for each thing found that the import leaves out, and why."""
    notes = [] if enrolled else _unknown_holders(inventory, catalog=catalog, names=names)
    notes += [f"group {g.display_name!r}: member {uid} is not a user of the identity store"
              for g in adopted for uid in inventory.members.get(g.group_id, ())
              if uid not in names]
    return tuple(sorted(notes))


def _unknown_holders(inventory: Inventory, *, catalog: Catalog,
                     names: Mapping[str, str]) -> list[str]:
    groups = {g.group_id for g in inventory.groups}
    notes = []
    for a in inventory.assignments:
        what = f"{a.principal_type} {a.principal_id} holds {a.permission_set_arn} on {a.account_id}"
        known = groups if a.principal_type == PrincipalType.GROUP else names
        if not catalog.has((a.account_id, a.permission_set_arn)):
            notes.append(f"{what}: the account or permission set is not in the catalog")
        elif a.principal_id not in known:
            notes.append(f"{what}: no such {a.principal_type.lower()} in the identity store")
    return notes


# --- small helpers -----------------------------------------------------------------------


def _known_present(known: Mapping[str, object], key: str) -> bool:
    return key in known and bool(getattr(known[key], "present", False))


def _vanished(known: Mapping[str, object], found: Mapping[str, object]) -> tuple[str, ...]:
    return tuple(sorted(key for key in known
                        if _known_present(known, key) and key not in found))


def _replace(plan: ImportPlan, **changes: object) -> ImportPlan:
    return replace(plan, **changes)  # type: ignore[arg-type]

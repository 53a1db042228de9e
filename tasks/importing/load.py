"""Load: read what the ledger knows (``read_view``) and write an ``ImportPlan`` into it.

Every function here runs inside the import's one transaction; the caller commits. Writes are
bulk upserts (``INSERT ... ON CONFLICT``), so running the same plan twice changes nothing,
and rows are only updated when a value differs, so a re-import leaves ``updated_at`` alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, insert, or_, select, update
from sqlalchemy.orm import Session

from models.domain import MemberKind
from models.ledger import kv, tables
from models.ledger.audit import record_many
from models.ledger.base import db_now
from models.ledger.enums import GrantState, Origin
from models.ledger.grants import KEY_COLUMNS
from models.ledger.upsert import dialect_insert
from tasks.importing.model import (
    ImportPlan,
    KnownAccount,
    KnownPermissionSet,
    LedgerView,
    SystemRoleRow,
)

ENROLLED_KEY = "enrolled"  # set once, by the first import with default owners
IMPORTED_GROUPS_KEY = "import.groups"  # every group id an import adopted, ever
DRIFT_KEY = "import.drift"  # group ids reported as drift by the last run
LAST_RUN_KEY = "import.last"  # the last run's summary (for status)

ACCOUNTS = cast(Table, tables.Account.__table__)
PERMISSION_SETS = cast(Table, tables.PermissionSet.__table__)
USERS = cast(Table, tables.User.__table__)
ROLES = cast(Table, tables.Role.__table__)
LISTS = cast(Table, tables.AccessList.__table__)
MEMBERSHIPS = cast(Table, tables.Membership.__table__)
GRANTS = cast(Table, tables.Grant.__table__)


@dataclass
class Loaded:
    """What the load wrote (new rows), for the summary and the audit trail."""

    users: list[str] = field(default_factory=list)
    system_roles: list[str] = field(default_factory=list)
    access_lists: list[str] = field(default_factory=list)
    grants: int = 0


def is_enrolled(session: Session) -> bool:
    """Whether an import with default owners has run (enrolment happened)."""
    return bool(kv.read_state(session, ENROLLED_KEY))


def read_view(session: Session) -> LedgerView:
    """What the import decides with, from the ledger as it is in this transaction."""
    enrolment = kv.read_state(session, ENROLLED_KEY) or {}
    roles = session.execute(select(tables.Role.name, tables.Role.origin,
                                   tables.Role.system_account_id,
                                   tables.Role.system_permission_set_arn))
    return LedgerView(
        enrolled=bool(enrolment),
        default_owners=tuple(enrolment.get("default_owners", ())),
        accounts={row.id: KnownAccount(row.name, row.ou_path, row.present)
                  for row in session.scalars(select(tables.Account))},
        permission_sets={row.arn: KnownPermissionSet(row.name, row.description, row.present)
                         for row in session.scalars(select(tables.PermissionSet))},
        users=dict(session.execute(select(tables.User.name, tables.User.principal_id)).all()),
        lists=dict(session.execute(select(tables.AccessList.name,
                                          tables.AccessList.group_id)).all()),
        roles={name: (account, arn) if origin is Origin.SYSTEM and account and arn else None
               for name, origin, account, arn in roles},
        imported_groups=frozenset(kv.read_state(session, IMPORTED_GROUPS_KEY, [])),
        reported_drift=frozenset(kv.read_state(session, DRIFT_KEY, [])),
    )


def load_plan(session: Session, plan: ImportPlan, *, view: LedgerView, now: datetime,
              actor: str) -> Loaded:
    """Write everything the plan adds or renames (vanished things: see ``cleanup``)."""
    load_catalog(session, plan, now=now)
    loaded = Loaded(users=load_users(session, plan))
    loaded.system_roles = load_system_roles(session, plan.system_roles, view=view, actor=actor)
    loaded.access_lists = load_access_lists(session, plan, actor=actor)
    loaded.grants = load_grants(session, plan, now=now, actor=actor)
    return loaded


def load_catalog(session: Session, plan: ImportPlan, *, now: datetime) -> None:
    """Upsert every account and permission set AWS has now, marked present and seen."""
    if plan.accounts:
        accounts = dialect_insert(session, ACCOUNTS)
        session.execute(accounts.on_conflict_do_update(index_elements=["id"], set_={
            "name": accounts.excluded.name, "ou_path": accounts.excluded.ou_path,
            "present": True, "last_seen_at": accounts.excluded.last_seen_at,
        }), [{"id": a.id, "name": a.name, "ou_path": a.ou_path, "present": True,
              "last_seen_at": now} for a in plan.accounts])
    if plan.permission_sets:
        sets = dialect_insert(session, PERMISSION_SETS)
        session.execute(sets.on_conflict_do_update(index_elements=["arn"], set_={
            "name": sets.excluded.name, "description": sets.excluded.description,
            "present": True, "last_seen_at": sets.excluded.last_seen_at,
        }), [{"arn": p.arn, "name": p.name, "description": p.description, "present": True,
              "last_seen_at": now} for p in plan.permission_sets])


def load_users(session: Session, plan: ImportPlan) -> list[str]:
    """Insert new users (origin imported); link same-named ledger users to their UserId."""
    new = [u for u in plan.users if not u.link_only]
    if new:
        session.execute(dialect_insert(session, USERS).on_conflict_do_nothing(), [
            {"name": u.name, "principal_id": u.principal_id, "email": u.email,
             "given_name": u.given_name, "family_name": u.family_name, "roles": [],
             "traits": {}, "origin": Origin.IMPORTED} for u in new])
    links = [{"n": u.name, "pid": u.principal_id} for u in plan.users if u.link_only]
    if links:
        session.execute(update(USERS).where(USERS.c.name == bindparam("n"),
                                            USERS.c.principal_id.is_(None))
                        .values(principal_id=bindparam("pid"), updated_at=db_now()), links)
    return [u.name for u in new]


def load_system_roles(session: Session, rows: Iterable[SystemRoleRow], *, view: LedgerView,
                      actor: str) -> list[str]:
    """Rename what was renamed (and every reference to it), then upsert the specs."""
    rows = list(rows)
    renames = {row.renamed_from: row.name for row in rows if row.renamed_from}
    if renames:
        rename_roles(session, renames, actor=actor)
    if rows:
        audit_restored_roles(session, rows, actor=actor)
        roles = dialect_insert(session, ROLES)
        changed = or_(ROLES.c.spec_hash.is_distinct_from(roles.excluded.spec_hash),
                      ROLES.c.origin != Origin.SYSTEM.value)
        session.execute(roles.on_conflict_do_update(index_elements=["name"], where=changed, set_={
            "spec": roles.excluded.spec, "spec_hash": roles.excluded.spec_hash,
            "origin": roles.excluded.origin, "updated_at": db_now(),
            "system_account_id": roles.excluded.system_account_id,
            "system_permission_set_arn": roles.excluded.system_permission_set_arn,
        }), [{"name": r.name, "spec": r.spec, "spec_hash": r.spec_hash, "origin": Origin.SYSTEM,
              "system_account_id": r.account_id,
              "system_permission_set_arn": r.permission_set_arn} for r in rows])
    return [r.name for r in rows if r.name not in view.roles and not r.renamed_from]


def audit_restored_roles(session: Session, rows: list[SystemRoleRow], *, actor: str) -> None:
    """Audit each system role whose ledger copy differs from what Identity Center implies
    (edited behind grantledger's back): the upsert that follows restores it."""
    wanted = {r.name: r for r in rows}
    edited = session.execute(select(ROLES.c.name, ROLES.c.spec, ROLES.c.spec_hash).where(
        ROLES.c.name.in_(wanted), ROLES.c.origin == Origin.SYSTEM.value)).all()
    record_many(session, [{"actor": actor, "action": "role.restored", "target_kind": "role",
                           "target": name, "before": spec, "after": wanted[name].spec,
                           "reason": "system role differed from Identity Center"}
                          for name, spec, spec_hash in edited
                          if spec_hash != wanted[name].spec_hash])


def rename_roles(session: Session, renames: Mapping[str, str], *, actor: str) -> None:
    """Rename roles and rewrite the access lists and users that name them."""
    for old, new in renames.items():
        session.execute(update(ROLES).where(ROLES.c.name == old)
                        .values(name=new, updated_at=db_now()))
    for table, column in ((LISTS, LISTS.c.granted_roles), (USERS, USERS.c.roles)):
        for name, roles in session.execute(select(table.c.name, column)):
            if any(role in renames for role in roles):
                session.execute(update(table).where(table.c.name == name).values(
                    {column.key: [renames.get(role, role) for role in roles],
                     "updated_at": db_now()}))
    record_many(session, [{"actor": actor, "action": "role.renamed", "target_kind": "role",
                             "target": new, "before": {"name": old}, "after": {"name": new},
                             "reason": "account or permission set renamed in AWS"}
                            for old, new in renames.items()])


def load_access_lists(session: Session, plan: ImportPlan, *, actor: str) -> list[str]:
    """Insert one access list per adopted group, with its members."""
    if not plan.access_lists:
        return []
    session.execute(insert(LISTS), [
        {"name": a.name, "title": a.title, "description": a.description,
         "owners": list(a.owners), "granted_roles": list(a.granted_roles),
         "group_id": a.group_id, "origin": Origin.IMPORTED} for a in plan.access_lists])
    members = [{"list_name": a.name, "member_name": member, "member_kind": MemberKind.USER,
                "added_by": actor} for a in plan.access_lists for member in a.members]
    if members:
        session.execute(dialect_insert(session, MEMBERSHIPS).on_conflict_do_nothing(), members)
    record_many(session, [{
        "actor": actor, "action": "access_list.imported", "target_kind": "access_list",
        "target": a.name, "reason": f"Identity Center group {a.title!r}",
        "after": {"title": a.title, "group_id": a.group_id, "owners": list(a.owners),
                  "members": list(a.members), "granted_roles": list(a.granted_roles)},
    } for a in plan.access_lists])
    return [a.name for a in plan.access_lists]


def load_grants(session: Session, plan: ImportPlan, *, now: datetime, actor: str) -> int:
    """Insert the found assignments as ACTIVE grants; a live grant of the same key stays."""
    if not plan.grants:
        return 0
    statement = (dialect_insert(session, GRANTS)
                 .on_conflict_do_nothing(index_elements=list(KEY_COLUMNS),
                                         index_where=tables.LIVE_GRANT)
                 .returning(GRANTS.c.principal_name, GRANTS.c.account_id,
                            GRANTS.c.permission_set_arn, GRANTS.c.source_kind))
    rows = [{"principal_type": g.principal_type, "principal_name": g.principal_name,
             "principal_id": g.principal_id, "account_id": g.account_id,
             "permission_set_arn": g.permission_set_arn, "source_kind": g.source_kind,
             "source_id": g.source_id, "state": GrantState.ACTIVE, "starts_at": now,
             "activated_at": now} for g in plan.grants]
    inserted = session.execute(statement, rows).all()
    record_many(session, [{
        "actor": actor, "action": "grant.imported", "target_kind": "grant",
        "target": f"{name}@{account}/{arn}", "principal_name": name, "account_id": account,
        "reason": "found in Identity Center at import", "details": {"source_kind": source},
    } for name, account, arn, source in inserted])
    return len(inserted)

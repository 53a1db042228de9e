"""`grantledger uninstall`: remove from AWS what grantledger created there, and nothing else.

Ours:
- account assignments held in AWS and backed by a live grant grantledger created: its source
  is not ``imported`` and its assignment was not found at enrolment (the import audits each
  assignment it found as ``grant.imported``: those existed before grantledger and stay);
- SCIM users and groups whose externalId carries our ownership marker
  (``workers.adapters.scim.directory.is_owned``), except objects the ledger has as imported and
  principals that still hold an assignment we keep (deleting them would orphan it).
Never: imported objects, foreign assignments (no grant explains them), adopted objects.

``plan_uninstall`` reads the ledger and AWS and changes nothing (``--dry-run``).
``apply_uninstall``: one transaction revokes our grants and records the deletes (the expiry
path); the deletes then run to the end in this process (the same submit/poll functions the
workers run, so it works with the workers stopped, as they should be); then the groups, then
the users, are deleted through SCIM. Every step is audited; ``grantledger.uninstalled`` and
the kv document ``uninstalled`` close it. Desired state is left as it is: a sync run after
an uninstall creates everything again.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models.domain import AssignmentKey
from models.errors import ScimError
from models.ledger import audit, tables
from models.ledger.db import transaction
from models.ledger.enums import GrantState, OperationState, Origin, SourceKind
from models.ledger.kv import write_state
from models.ledger.locks import RECONCILE_LOCK, serialize
from models.ports.runtime import Runtime
from models.ports.scim import ScimGroup, ScimUser
from tasks import events
from tasks.access.offboarding import revoke_grants
from tasks.events import Next, submit
from tasks.provisioning.poll_round import run_inline
from tasks.sync.planner import GrantView, NameKey
from tasks.sync.snapshot import GROUP, USER, assignment_key_of, grant_view, load_principal_ids

ACTOR = "system:uninstall"
IMPORT_EVENT = "grant.imported"


@dataclass(frozen=True)
class OwnedAssignment:
    key: AssignmentKey
    principal_name: str
    grant_ids: tuple[int, ...]


@dataclass(frozen=True)
class UninstallPlan:
    """What an uninstall removes, and how much it leaves because it is not ours."""

    assignments: tuple[OwnedAssignment, ...] = ()
    groups: tuple[ScimGroup, ...] = ()
    users: tuple[ScimUser, ...] = ()
    kept: dict[str, int] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # account id / ps ARN -> name

    def rows(self) -> list[dict[str, Any]]:
        """One row per object to remove, for people (``--dry-run``)."""
        rows = [{"kind": "assignment", "name": f"{a.key.principal_type}:{a.principal_name}",
                 "id": a.key.principal_id, "account": _named(a.key.account_id, self.names),
                 "permission_set": self.names.get(a.key.permission_set_arn,
                                                  a.key.permission_set_arn)}
                for a in self.assignments]
        rows += [{"kind": "group", "name": g.display_name, "id": g.id} for g in self.groups]
        rows += [{"kind": "user", "name": u.user_name, "id": u.id} for u in self.users]
        return rows


@dataclass
class UninstallResult:
    """What was removed; ``blocked``: grants not revoked (id, principal, account, permission
    set, why); ``left``: SCIM objects kept because a blocked grant still needs them."""

    removed: dict[str, int] = field(default_factory=dict)
    blocked: list[dict[str, Any]] = field(default_factory=list)
    left: list[dict[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"removed": self.removed, "blocked": self.blocked, "left": self.left,
                "errors": self.errors}


# --- planning ----------------------------------------------------------------------------------


def plan_uninstall(*, runtime: Runtime) -> UninstallPlan:
    """What ``apply_uninstall`` would remove; reads the ledger, AWS and SCIM, writes nothing."""
    with runtime.sessions() as session:
        imported = imported_assignments(session)
        grants = [grant_view(g) for g in session.scalars(
            select(tables.Grant).where(tables.Grant.state != GrantState.REVOKED))]
        principal_ids = load_principal_ids(session)
        protected = imported_principal_ids(session)
        names = catalog_names(session)
    ours = owned_assignments(grants, imported=imported, principal_ids=principal_ids)
    held = held_assignments(runtime.identity_center, {a.key for a in ours})
    assignments = tuple(a for a in ours if a.key in held)
    # A principal of ours that still holds something we keep must stay, or it is orphaned.
    protected |= {key.principal_id for key in held - {a.key for a in assignments}}
    groups = [g for g in runtime.directory.list_groups() if g.owned and g.id not in protected]
    users = [u for u in runtime.directory.list_users() if u.owned and u.id not in protected]
    kept = {"assignments_found_at_enrolment": len({g.name_key for g in grants} & imported),
            "principals_kept": len(protected)}
    return UninstallPlan(assignments=assignments, groups=tuple(sorted(groups, key=_by_name)),
                         users=tuple(sorted(users, key=lambda u: u.user_name)), kept=kept,
                         names=names)


def owned_assignments(grants: Iterable[GrantView], *, imported: set[NameKey],
                      principal_ids: Mapping[tuple[str, str], str | None]
                      ) -> list[OwnedAssignment]:
    """Pure: the assignments grantledger's own grants stand for, by AWS key."""
    by_key: dict[AssignmentKey, list[GrantView]] = defaultdict(list)
    for grant in grants:
        if grant.source_kind == SourceKind.IMPORTED.value or grant.name_key in imported:
            continue
        key = assignment_key_of(grant, principal_ids)
        if key is not None:
            by_key[key].append(grant)
    return [OwnedAssignment(key, members[0].principal_name, tuple(g.id for g in members))
            for key, members in sorted(by_key.items())]


def imported_assignments(session: Session) -> set[NameKey]:
    """Every assignment the enrolment import found in AWS (its ``grant.imported`` events)."""
    rows = session.execute(select(
        tables.AuditEvent.target, tables.AuditEvent.principal_name,
        tables.AuditEvent.account_id, tables.AuditEvent.details,
    ).where(tables.AuditEvent.action == IMPORT_EVENT))
    found = set()
    for target, name, account_id, details in rows:
        prefix = f"{name}@{account_id}/"  # the import's target: "<name>@<account>/<ps arn>"
        if name and account_id and target.startswith(prefix):
            # Group assignments are imported with source access_list, users' with imported.
            kind = GROUP if (details or {}).get("source_kind") == "access_list" else USER
            found.add((kind, name, account_id, target[len(prefix):]))
    return found


def imported_principal_ids(session: Session) -> set[str]:
    """Identity Center ids of the users and groups the ledger has from the import."""
    users = session.scalars(select(tables.User.principal_id).where(
        tables.User.origin == Origin.IMPORTED, tables.User.principal_id.is_not(None)))
    groups = session.scalars(select(tables.AccessList.group_id).where(
        tables.AccessList.origin == Origin.IMPORTED, tables.AccessList.group_id.is_not(None)))
    return {*users, *groups}


def held_assignments(identity_center: Any, keys: Iterable[AssignmentKey]) -> set[AssignmentKey]:
    """Everything AWS holds for the principals of ``keys`` (one listing per principal)."""
    held: set[AssignmentKey] = set()
    for principal_type, principal_id in sorted({(k.principal_type, k.principal_id)
                                                for k in keys}):
        held.update(r.key for r in identity_center.list_assignments_for_principal(
            principal_type=str(principal_type), principal_id=principal_id))
    return held


def catalog_names(session: Session) -> dict[str, str]:
    names = dict(session.execute(select(tables.Account.id, tables.Account.name)).all())
    names.update(session.execute(select(tables.PermissionSet.arn,
                                        tables.PermissionSet.name)).all())
    return names


# --- applying ----------------------------------------------------------------------------------


def apply_uninstall(*, runtime: Runtime, plan: UninstallPlan, actor: str,
                    timeout: float = 600.0) -> UninstallResult:
    """Remove what ``plan`` names: assignments (settled here), then groups, then users.
    A grant that cannot be revoked is named and keeps only its own principal (when its
    account and permission set still exist); everything else is still removed."""
    result = UninstallResult()
    work = _revoke(runtime, plan, actor)
    unsettled = settle_operations(runtime=runtime, work=work, timeout=timeout)
    with runtime.sessions() as session:
        result.blocked, needed = blocked_grants(session, plan, unsettled=bool(unsettled))
    blocked_ids = {b["grant_id"] for b in result.blocked}
    result.removed["assignments"] = sum(1 for a in plan.assignments
                                        if not blocked_ids & set(a.grant_ids))
    if result.blocked:
        result.errors.append(f"{len(result.blocked)} grant(s) not revoked: "
                             + "; ".join(_blocked_line(b) for b in result.blocked))
    groups = _keep_needed(plan.groups, needed, result, kind="group")
    users = _keep_needed(plan.users, needed, result, kind="user")
    result.removed["groups"] = _delete_groups(runtime, groups, actor, result)
    result.removed["users"] = _delete_users(runtime, users, actor, result)
    with transaction(runtime.sessions) as session:
        summary = {"removed": result.removed, "kept": plan.kept, "errors": result.errors}
        write_state(session, "uninstalled", {**summary, "by": actor})
        audit.record(session, actor=actor, action="grantledger.uninstalled",
                     target_kind="install", target="grantledger", details=summary)
    return result


def blocked_grants(session: Session, plan: UninstallPlan, *, unsettled: bool
                   ) -> tuple[list[dict[str, Any]], set[str]]:
    """The plan's grants still not REVOKED, and the principal ids they may still need in
    AWS (an assignment on a vanished account or permission set needs nobody)."""
    ids = [i for a in plan.assignments for i in a.grant_ids]
    rows = session.execute(
        select(tables.Grant, tables.Account.present, tables.PermissionSet.present)
        .join(tables.Account, tables.Account.id == tables.Grant.account_id)
        .join(tables.PermissionSet, tables.PermissionSet.arn == tables.Grant.permission_set_arn)
        .where(tables.Grant.id.in_(ids), tables.Grant.state != GrantState.REVOKED)
        .order_by(tables.Grant.id)).all()
    blocked = [{"grant_id": grant.id,
                "principal": f"{grant.principal_type.value}:{grant.principal_name}",
                "account": _named(grant.account_id, plan.names),
                "permission_set": plan.names.get(grant.permission_set_arn,
                                                 grant.permission_set_arn),
                "state": grant.state.value, "why": _why(grant, unsettled=unsettled)}
               for grant, _, _ in rows]
    needed = {grant.principal_id for grant, account_present, ps_present in rows
              if grant.principal_id and account_present and ps_present}
    return blocked, needed


def _why(grant: tables.Grant, *, unsettled: bool) -> str:
    if grant.failure_reason:
        return grant.failure_reason
    if unsettled:
        return "its delete did not settle within --timeout (see `grantledger get operations`)"
    return f"the grant is {grant.state.value}"


def _blocked_line(blocked: Mapping[str, Any]) -> str:
    return (f"grant {blocked['grant_id']} {blocked['principal']} on {blocked['account']} "
            f"{blocked['permission_set']} ({blocked['why']})")


def _keep_needed(principals: Iterable[Any], needed: set[str], result: UninstallResult, *,
                 kind: str) -> list[Any]:
    """The principals that may go; those a blocked grant still needs are recorded as left."""
    going = []
    for principal in principals:
        name = principal.display_name if kind == "group" else principal.user_name
        if principal.id in needed:
            result.left.append({"kind": kind, "name": name, "id": principal.id,
                                "why": "holds an assignment whose grant was not revoked"})
        else:
            going.append(principal)
    return going


def _revoke(runtime: Runtime, plan: UninstallPlan, actor: str) -> list[Next]:
    ids = sorted(i for a in plan.assignments for i in a.grant_ids)
    with transaction(runtime.sessions) as session:
        serialize(session, RECONCILE_LOCK)
        grants = [grant_view(g) for g in session.scalars(
            select(tables.Grant).where(tables.Grant.id.in_(ids),
                                       tables.Grant.state != GrantState.REVOKED)
            .order_by(tables.Grant.id).with_for_update())]
        applied = revoke_grants(session, grants, reason="grantledger uninstall", actor=actor,
                                drift_mode="report")
    return [submit(operation_id) for operation_id in applied.submit]


def settle_operations(*, runtime: Runtime, work: Iterable[Next], timeout: float) -> list[int]:
    """Run submits and status polls in this process, each when due, until all settled;
    the operation ids still open at ``timeout``."""
    counter = itertools.count()
    queue = [(time.monotonic() + item.countdown, next(counter), item) for item in work]
    submitted = {int(item.args[0]) for _, _, item in queue
                 if item.task == events.PROVISION_SUBMIT}
    heapq.heapify(queue)
    deadline = time.monotonic() + timeout
    while queue and time.monotonic() < deadline:
        due, _, item = heapq.heappop(queue)
        time.sleep(max(0.0, min(due, deadline) - time.monotonic()))
        for follow in run_inline(runtime, item):
            heapq.heappush(queue, (time.monotonic() + follow.countdown, next(counter), follow))
    with runtime.sessions() as session:
        return sorted(session.scalars(select(tables.Operation.id).where(
            tables.Operation.id.in_(submitted),
            tables.Operation.state.in_([OperationState.QUEUED, OperationState.SUBMITTED]))))


def _delete_groups(runtime: Runtime, groups: Iterable[ScimGroup], actor: str,
                   result: UninstallResult) -> int:
    deleted = 0
    for group in groups:
        if _try(result, f"group {group.display_name}",
                lambda g=group: runtime.directory.delete_group(group_id=g.id)):
            deleted += 1
            with transaction(runtime.sessions) as session:
                session.execute(update(tables.AccessList).where(
                    tables.AccessList.group_id == group.id).values(group_id=None))
                _audit_deleted(session, actor, "group", group.display_name, group.id)
    return deleted


def _delete_users(runtime: Runtime, users: Iterable[ScimUser], actor: str,
                  result: UninstallResult) -> int:
    deleted = 0
    for user in users:
        if _try(result, f"user {user.user_name}",
                lambda u=user: runtime.directory.delete_user(user_id=u.id)):
            deleted += 1
            with transaction(runtime.sessions) as session:
                session.execute(update(tables.User).where(
                    tables.User.principal_id == user.id).values(principal_id=None,
                                                                scim_external_id=None))
                _audit_deleted(session, actor, "user", user.user_name, user.id)
    return deleted


def _try(result: UninstallResult, what: str, action: Any) -> bool:
    try:
        action()
    except ScimError as err:  # one object refused: record it and go on with the others
        result.errors.append(f"{what}: {err}")
        return False
    return True


def _audit_deleted(session: Session, actor: str, kind: str, name: str, object_id: str) -> None:
    audit.record(session, actor=actor, action=f"scim.{kind}_deleted", target_kind=kind,
                 target=name, reason="grantledger uninstall", details={"id": object_id})


def _named(account_id: str, names: Mapping[str, str]) -> str:
    return f"{account_id} ({names[account_id]})" if account_id in names else account_id


def _by_name(group: ScimGroup) -> str:
    return group.display_name

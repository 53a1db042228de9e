"""The applier: a plan's changes -> grant transitions and recorded operations.

Runs in the caller's transaction. A change that calls AWS becomes an ``Operation`` row
(QUEUED) *first*, with an idempotency key built from the assignment and the change's
generation, so two syncs planning the same try find one row; its grants move
PENDING/FAILED -> PROVISIONING (or FAILED -> REVOKING) in the same transaction. The caller
commits, then enqueues ``grantledger.provision.submit`` for the new operations (``submit``).

Also the shared ledger helpers of the engine: bulk grant transitions (``move_grants``) and
bulk audit events (``record_many``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Gauge
from sqlalchemy import update
from sqlalchemy.orm import Session

from models.domain import PrincipalType
from models.ledger.audit import record_many
from models.ledger.base import database_time
from models.ledger.enums import GrantState, OperationKind, OperationState
from models.ledger.grants import check_transition, is_backed, lock_assignment, transition_values
from models.ledger.kv import read_state, write_state
from models.ledger.operations import get_or_create_operation
from models.ledger.tables import Grant, Operation
from tasks.sync.planner import Change, ChangeKind, GrantView

PENDING, PROVISIONING, ACTIVE = GrantState.PENDING, GrantState.PROVISIONING, GrantState.ACTIVE
REVOKING, REVOKED, FAILED = GrantState.REVOKING, GrantState.REVOKED, GrantState.FAILED
CHUNK = 1000
CREATING = (PENDING, PROVISIONING)  # failed_from of a grant whose create failed
REVOKING_ONLY = (REVOKING,)  # failed_from of a grant whose delete failed
FOREIGN_KEY = "drift.foreign"

FOREIGN_ASSIGNMENTS = Gauge("grantledger_foreign_assignments",
                            "Assignments in AWS that no grant explains (last sync)",
                            multiprocess_mode="mostrecent")  # a worker: the latest sync's


# --- shared ledger helpers -------------------------------------------------------------------


def grant_event(grant: GrantView, *, actor: str, action: str, reason: str | None = None,
                request_id: str | None = None, before: Any = None,
                after: Any = None) -> dict[str, Any]:
    """The audit event for something that happened to one grant."""
    return {"actor": actor, "action": action, "target_kind": "grant", "target": str(grant.id),
            "reason": reason, "request_id": request_id, "principal_name": grant.principal_name,
            "account_id": grant.account_id, "before": before, "after": after,
            "details": {"principal_type": grant.principal_type,
                        "permission_set_arn": grant.permission_set_arn,
                        "source": f"{grant.source_kind}:{grant.source_id}"}}


def change_event(change: Change, *, actor: str, action: str, grant_id: int | None = None,
                 reason: str | None = None) -> dict[str, Any]:
    """The audit event for one change (about one of its grants, or the assignment)."""
    principal_type, principal_id, account_id, arn = change.key
    return {"actor": actor, "action": action,
            "target_kind": "grant" if grant_id is not None else "assignment",
            "target": str(grant_id) if grant_id is not None else
            f"{principal_type}:{principal_id}@{account_id}/{arn}",
            "reason": reason or change.reason, "principal_name": change.principal_name,
            "account_id": account_id,
            "details": {"principal_type": str(principal_type), "principal_id": principal_id,
                        "permission_set_arn": arn, "change": change.kind.value}}


def move_grants(session: Session, ids: Iterable[int], *, expected: GrantState,
                to: GrantState, reason: str | None = None,
                failed_from: Collection[GrantState] | None = None) -> list[int]:
    """Conditional bulk transition (``WHERE id IN ... AND state = expected``); ids moved.

    ``failed_from`` narrows FAILED grants to those that failed creating (``CREATING``) or
    revoking (``REVOKING_ONLY``): a grant that changed direction since it was planned for
    must not be moved as if it had not.
    """
    check_transition(expected, to)
    ids = sorted(set(ids))
    condition = [Grant.state == expected]
    if failed_from is not None:
        condition.append(Grant.failed_from.in_(list(failed_from)))
    moved: list[int] = []
    for start in range(0, len(ids), CHUNK):
        statement = (update(Grant)
                     .where(Grant.id.in_(ids[start:start + CHUNK]), *condition)
                     .values(transition_values(expected, to, reason))
                     .returning(Grant.id)
                     .execution_options(synchronize_session=False))
        moved.extend(session.scalars(statement))
    return moved


# --- applying a plan -------------------------------------------------------------------------


@dataclass
class Applied:
    """What applying changes did: counts, and the new operations to submit."""

    counts: Counter[str] = field(default_factory=Counter)
    submit: list[int] = field(default_factory=list)

    def merge(self, other: Applied) -> None:
        self.counts.update(other.counts)
        self.submit.extend(other.submit)


def apply_changes(session: Session, changes: Iterable[Change], *, actor: str) -> Applied:
    """Apply changes in order, in the caller's transaction (foreign reports excluded:
    see ``record_foreign``)."""
    applied = Applied()
    for change in changes:
        if change.kind is ChangeKind.ACTIVATE:
            _activate(session, change, actor, applied)
        elif change.kind is ChangeKind.RETIRE:
            _retire(session, change, actor, applied)
        elif change.kind is ChangeKind.CREATE:
            _create(session, change, applied)
        elif change.kind in (ChangeKind.DELETE, ChangeKind.FOREIGN_REMOVE):
            _delete(session, change, actor, applied)
    return applied


def _activate(session: Session, change: Change, actor: str, applied: Applied) -> None:
    ids = change.grant_ids
    move_grants(session, ids, expected=PENDING, to=PROVISIONING)
    move_grants(session, ids, expected=FAILED, to=PROVISIONING, failed_from=CREATING)
    moved = move_grants(session, ids, expected=PROVISIONING, to=ACTIVE)
    applied.counts["activated"] += len(moved)
    record_many(session, [change_event(change, actor=actor, action="grant.activated",
                                       grant_id=grant_id) for grant_id in moved])


def _retire(session: Session, change: Change, actor: str, applied: Applied) -> None:
    ids = change.grant_ids
    move_grants(session, ids, expected=FAILED, to=REVOKING, failed_from=REVOKING_ONLY)
    moved = move_grants(session, ids, expected=REVOKING, to=REVOKED)
    applied.counts["retired"] += len(moved)
    record_many(session, [change_event(change, actor=actor, action="grant.revoked",
                                       grant_id=grant_id) for grant_id in moved])


def _create(session: Session, change: Change, applied: Applied) -> None:
    moved = move_grants(session, change.grant_ids, expected=PENDING, to=PROVISIONING)
    moved += move_grants(session, change.grant_ids, expected=FAILED, to=PROVISIONING,
                         failed_from=CREATING)
    if change.grant_ids and not moved:
        return  # the plan is stale: those grants moved on since it was made
    if not change.grant_ids and not _still_backed(session, change):
        return  # a re-create planned on grants revoked since (a user revoked meanwhile)
    if change.operation_id is not None:
        applied.counts["joined"] += 1
        return
    operation, created = record_operation(session, change, OperationKind.CREATE_ASSIGNMENT)
    if created:
        applied.counts["created"] += 1
        applied.submit.append(operation.id)


def _still_backed(session: Session, change: Change) -> bool:
    # A revocation holds the assignment lock until it commits: wait for it, then look.
    principal_type, _, account_id, arn = change.key
    kind, name = PrincipalType(str(principal_type)), change.principal_name or ""
    lock_assignment(session, principal_type=kind, principal_name=name, account_id=account_id,
                    permission_set_arn=arn)
    return is_backed(session, principal_type=kind, principal_name=name, account_id=account_id,
                     permission_set_arn=arn)


def _delete(session: Session, change: Change, actor: str, applied: Applied) -> None:
    move_grants(session, change.grant_ids, expected=FAILED, to=REVOKING,
                failed_from=REVOKING_ONLY)
    if change.operation_id is not None:
        applied.counts["joined"] += 1
        return
    operation, created = record_operation(session, change, OperationKind.DELETE_ASSIGNMENT)
    if not created:
        return
    applied.counts["foreign_removed" if change.kind is ChangeKind.FOREIGN_REMOVE
                   else "deleted"] += 1
    applied.submit.append(operation.id)
    if change.kind is ChangeKind.FOREIGN_REMOVE:
        record_many(session, [change_event(change, actor=actor,
                                           action="assignment.foreign_removing")])


def idempotency_key(change: Change, kind: OperationKind) -> str:
    """``create_assignment:USER:<principal id>:<account>:<ps arn>:<generation>``."""
    principal_type, principal_id, account_id, arn = change.key
    return f"{kind.value}:{principal_type}:{principal_id}:{account_id}:{arn}:{change.generation}"


def record_operation(session: Session, change: Change,
                     kind: OperationKind) -> tuple[Operation, bool]:
    """The operation for this change, recorded QUEUED if new: (operation, created).

    A key that names an operation already settled (a generation reused: a re-create of an
    ACTIVE grant, a stale or foreign delete planned again) gets a time suffix instead.
    """
    principal_type, principal_id, account_id, arn = change.key
    fields: dict[str, Any] = {
        "kind": kind, "principal_type": principal_type, "principal_id": principal_id,
        "account_id": account_id, "permission_set_arn": arn,
        "grant_id": min(change.grant_ids) if change.grant_ids else None,
        "payload": {"principal_name": change.principal_name, "grant_ids": list(change.grant_ids),
                    "reason": change.reason, "change": change.kind.value}}
    key = idempotency_key(change, kind)
    operation, created = get_or_create_operation(session, idempotency_key=key, **fields)
    if not created and operation.state in (OperationState.SUCCEEDED, OperationState.FAILED):
        key = f"{key}:{database_time(session).isoformat()}"
        operation, created = get_or_create_operation(session, idempotency_key=key, **fields)
    return operation, created


# --- drift bookkeeping -----------------------------------------------------------------------


def record_foreign(session: Session, changes: Iterable[Change], *, actor: str,
                   in_scope: Any = None) -> int:
    """Remember the foreign assignments found (kv ``drift.foreign``, shown by status) and
    audit each one the first time it is seen. ``in_scope(principal_id)``: which recorded
    entries this sync looked at (None: all, a full sync); the others are kept."""
    found = {_foreign_id(c): c for c in changes
             if c.kind in (ChangeKind.FOREIGN_REPORT, ChangeKind.FOREIGN_QUARANTINE)}
    known = {entry["id"]: entry for entry in read_state(session, FOREIGN_KEY, {}).get(
        "assignments", [])}
    kept = {i: e for i, e in known.items()
            if in_scope is not None and not in_scope(e["principal_id"])}
    now = database_time(session).isoformat()
    new = [c for i, c in found.items() if i not in known]
    for foreign_id, change in found.items():
        kept[foreign_id] = known.get(foreign_id) or _foreign_entry(foreign_id, change, now)
    record_many(session, [change_event(change, actor=actor, action=(
        "assignment.quarantined" if change.kind is ChangeKind.FOREIGN_QUARANTINE
        else "assignment.foreign")) for change in new])
    write_state(session, FOREIGN_KEY, {"assignments": [kept[i] for i in sorted(kept)]})
    FOREIGN_ASSIGNMENTS.set(len(kept))
    return len(new)


def _foreign_id(change: Change) -> str:
    return "|".join(map(str, change.key))


def _foreign_entry(foreign_id: str, change: Change, now: str) -> dict[str, Any]:
    principal_type, principal_id, account_id, arn = change.key
    return {"id": foreign_id, "principal_type": str(principal_type),
            "principal_id": principal_id, "account_id": account_id, "permission_set_arn": arn,
            "principal_name": change.principal_name, "first_seen": now,
            "quarantined": change.kind is ChangeKind.FOREIGN_QUARANTINE}

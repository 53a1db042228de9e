"""Cleanup: what vanished from AWS, what appeared behind our back, and the import's memory.

- An account or permission set the ledger had present and AWS no longer lists is marked
  ``present = false``, and every live grant on it turns FAILED with the reason (nothing is
  deleted: the rows are history, and the access they describe is gone with its target).
- A group in Identity Center that grantledger neither created nor imported is drift: audited
  the first time it is seen, listed in every summary, never adopted silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models.ledger import kv, tables
from models.ledger.audit import record_many
from models.ledger.base import db_now
from models.ledger.enums import GrantState
from models.ledger.grants import transition
from tasks.importing.load import (
    ACCOUNTS,
    DRIFT_KEY,
    ENROLLED_KEY,
    IMPORTED_GROUPS_KEY,
    PERMISSION_SETS,
)
from tasks.importing.model import ImportPlan, LedgerView


def account_gone_reason(account_id: str, name: str) -> str:
    return f"account {account_id} ({name}) no longer exists in the Organization"


def permission_set_gone_reason(arn: str, name: str) -> str:
    return f"permission set {name} ({arn}) no longer exists"


def retire_vanished(session: Session, plan: ImportPlan, *, view: LedgerView,
                    actor: str) -> int:
    """Mark vanished accounts and permission sets absent and fail their live grants;
    returns how many grants failed."""
    reasons = {("account", i): account_gone_reason(i, view.accounts[i].name)
               for i in plan.vanished_accounts}
    reasons |= {("permission_set", a): permission_set_gone_reason(a, view.permission_sets[a].name)
                for a in plan.vanished_permission_sets}
    if not reasons:
        return 0
    session.execute(update(ACCOUNTS).where(ACCOUNTS.c.id.in_(plan.vanished_accounts))
                    .values(present=False))
    session.execute(update(PERMISSION_SETS)
                    .where(PERMISSION_SETS.c.arn.in_(plan.vanished_permission_sets))
                    .values(present=False))
    record_many(session, [{"actor": actor, "action": f"{kind}.vanished", "target_kind": kind,
                             "target": key, "reason": reason,
                             "account_id": key if kind == "account" else None}
                            for (kind, key), reason in reasons.items()])
    return fail_grants(session, reasons, actor=actor)


def fail_grants(session: Session, reasons: Mapping[tuple[str, str], str], *, actor: str) -> int:
    """Turn every live grant on a vanished account or permission set FAILED, with the reason.

    ``failed_from`` keeps the state the grant was in (ACTIVE included: its target vanished,
    no AWS operation failed); a grant that was FAILED already keeps its ``failed_from`` and
    gets the new reason. Conditional on the state read, like every grant transition.
    """
    accounts = [key for kind, key in reasons if kind == "account"]
    arns = [key for kind, key in reasons if kind == "permission_set"]
    live = session.scalars(select(tables.Grant).where(
        tables.Grant.state != GrantState.REVOKED,
        tables.Grant.account_id.in_(accounts) | tables.Grant.permission_set_arn.in_(arns),
    ).order_by(tables.Grant.id)).all()
    failed = [grant for grant in live if _fail(session, grant, reasons)]
    record_many(session, [{
        "actor": actor, "action": "grant.failed", "target_kind": "grant", "target": str(g.id),
        "principal_name": g.principal_name, "account_id": g.account_id,
        "reason": _reason(g, reasons), "before": {"state": str(g.state)},
        "after": {"state": GrantState.FAILED.value},
    } for g in failed])
    return len(failed)


def _reason(grant: tables.Grant, reasons: Mapping[tuple[str, str], str]) -> str:
    return (reasons.get(("account", grant.account_id))
            or reasons[("permission_set", grant.permission_set_arn)])


def _fail(session: Session, grant: tables.Grant, reasons: Mapping[tuple[str, str], str]) -> bool:
    reason = _reason(grant, reasons)
    if grant.state is not GrantState.FAILED:
        return transition(session, grant_id=grant.id, expected=grant.state,
                          to=GrantState.FAILED, reason=reason)
    # already FAILED (a create or delete that failed): keep failed_from, take the new reason
    values: dict[str, Any] = {"failure_reason": reason, "updated_at": db_now()}
    statement = (update(tables.Grant)
                 .where(tables.Grant.id == grant.id, tables.Grant.state == grant.state)
                 .values(values).returning(tables.Grant.id)
                 .execution_options(synchronize_session=False))
    return session.execute(statement).first() is not None


def report_drift(session: Session, plan: ImportPlan, *, view: LedgerView, actor: str) -> None:
    """Audit groups seen as drift for the first time; remember the current drift set."""
    current = sorted(g.group_id for g in plan.drift_groups)
    fresh = [g for g in plan.drift_groups if g.group_id not in view.reported_drift]
    if fresh:
        record_many(session, [{
            "actor": actor, "action": "import.drift", "target_kind": "identity_center",
            "target": "groups", "reason": "groups found in Identity Center that grantledger "
            "neither created nor imported; adopt them with: grantledger import "
            "--adopt-new-groups",
            "details": {"groups": [{"group_id": g.group_id, "display_name": g.display_name}
                                   for g in fresh]},
        }])
    if set(current) != view.reported_drift:
        kv.write_state(session, DRIFT_KEY, current)


def remember_adoption(session: Session, plan: ImportPlan, *, view: LedgerView, actor: str,
                      default_owners: Iterable[str], instance_arn: str) -> bool:
    """Record adopted group ids, and the enrolment itself the first time; True if this run
    enrolled."""
    adopted = {a.group_id for a in plan.access_lists}
    if adopted - view.imported_groups:
        kv.write_state(session, IMPORTED_GROUPS_KEY, sorted(view.imported_groups | adopted))
    if view.enrolled:
        return False
    enrolment = {"by": actor, "at": _now(session).isoformat(),
                 "default_owners": list(default_owners), "instance_arn": instance_arn}
    kv.write_state(session, ENROLLED_KEY, enrolment)
    record_many(session, [{"actor": actor, "action": "import.enrolled",
                             "target_kind": "identity_center", "target": instance_arn,
                             "after": enrolment}])
    return True


def _now(session: Session) -> datetime:
    """The database's clock."""
    now = session.scalar(select(db_now()))
    if now is None:
        raise RuntimeError("the database returned no time")
    return now

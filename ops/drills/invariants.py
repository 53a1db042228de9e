"""What must hold after every fault, once the system recovered by itself.

1. ``due-revocations``: every grant past its ``expires_at`` (database clock) is REVOKED.
2. ``granted-once``: AWS never created an assignment that already existed (between two
   successful creates of one assignment there is a successful delete), and the ledger never
   holds two live grants for one assignment and source.
3. ``ledger-equals-aws``: the ACTIVE grants' assignments are exactly the assignments AWS
   holds for our principals (none missing, none without a live grant).
4. ``operations-ended``: every operation is SUCCEEDED, or FAILED with a reason.
5. ``desired-reached``: the workload's long-term assignments are ACTIVE and its expired
   requests' grants REVOKED.
6. ``not-early``: no request grant was revoked before its expiry (database clock).

The checks are pure functions over plain rows (:class:`LedgerView`); ``read_view`` is the
one place that reads the ledger and the sandbox.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from models.ledger import tables
from models.ledger.base import database_time
from models.ledger.enums import GrantState, OperationState, SourceKind
from ops.drills.workload import Workload
from workers.sandbox.identity_center import CREATE, DELETE, SUCCEEDED

Key = tuple[str, str, str, str]  # (principal type, principal id, account id, ps arn)
LIVE = {GrantState.PENDING, GrantState.PROVISIONING, GrantState.ACTIVE, GrantState.REVOKING,
        GrantState.FAILED}


@dataclass(frozen=True)
class Violation:
    invariant: str
    detail: str

    def __str__(self) -> str:
        return f"{self.invariant}: {self.detail}"


@dataclass(frozen=True)
class GrantRow:
    id: int
    key: Key | None  # None while the principal has no id yet
    name: str
    source: tuple[str, str]
    state: GrantState
    expires_at: datetime | None
    revoked_at: datetime | None
    permission_set: str


@dataclass(frozen=True)
class LedgerView:
    """The ledger and AWS at one moment."""

    now: datetime
    grants: list[GrantRow]
    operations: list[tuple[int, str, str | None]]  # (id, state, failure reason)
    ours: set[str]  # principal ids of our users and groups
    aws: set[Key]  # every assignment that exists
    aws_history: list[tuple[float, str, Key]]  # settled SUCCEEDED (time, kind, key)


def read_view(runtime: Any, sandbox: Any) -> LedgerView:
    """Read the ledger (one transaction) and the sandbox's ground truth."""
    with runtime.sessions() as session:
        now = database_time(session)
        users = dict(session.execute(select(tables.User.name, tables.User.principal_id)).all())
        groups = dict(session.execute(
            select(tables.AccessList.name, tables.AccessList.group_id)).all())
        names = {arn: name for arn, name in session.execute(
            select(tables.PermissionSet.arn, tables.PermissionSet.name))}
        grants = [_grant_row(g, users, groups, names)
                  for g in session.scalars(select(tables.Grant))]
        operations = [(o.id, str(o.state), o.failure_reason) for o in session.scalars(
            select(tables.Operation))]
    history = [(op.created_at, op.kind, op.key)
               for kind in (CREATE, DELETE)
               for op in sandbox.center.operations(kind, status=SUCCEEDED)]
    return LedgerView(now=now, grants=grants, operations=operations,
                      ours={i for i in [*users.values(), *groups.values()] if i},
                      aws=set(sandbox.assignments()), aws_history=sorted(history))


def _grant_row(grant: tables.Grant, users: dict[str, str | None],
               groups: dict[str, str | None], names: dict[str, str]) -> GrantRow:
    kind = str(grant.principal_type)
    principal_id = (users if kind == "USER" else groups).get(grant.principal_name)
    key = (kind, principal_id, grant.account_id, grant.permission_set_arn) \
        if principal_id else None
    return GrantRow(grant.id, key, grant.principal_name, (str(grant.source_kind),
                    grant.source_id), GrantState(grant.state), grant.expires_at,
                    grant.revoked_at, names.get(grant.permission_set_arn, "?"))


def due_revocations(view: LedgerView) -> list[Violation]:
    return [Violation("due-revocations", f"grant {g.id} ({g.name}, {g.permission_set}) "
                      f"expired at {g.expires_at:%H:%M:%S} and is {g.state.value}")
            for g in view.grants
            if g.expires_at is not None and g.expires_at <= view.now
            and g.state is not GrantState.REVOKED]


def granted_once(view: LedgerView) -> list[Violation]:
    found = []
    present: dict[Key, bool] = defaultdict(bool)
    for _, kind, key in view.aws_history:
        if kind == CREATE and present[key]:
            found.append(Violation("granted-once", f"{key} created again while it existed"))
        present[key] = kind == CREATE
    live = Counter((g.key, g.source) for g in view.grants if g.state in LIVE and g.key)
    found += [Violation("granted-once", f"{n} live grants for {key} from {source}")
              for (key, source), n in live.items() if n > 1]
    return found


def ledger_equals_aws(view: LedgerView) -> list[Violation]:
    active = {g.key for g in view.grants if g.state is GrantState.ACTIVE and g.key}
    held = {key for key in view.aws if key[1] in view.ours}
    missing = [Violation("ledger-equals-aws", f"ACTIVE grant's assignment missing in AWS: "
                         f"{key}") for key in sorted(active - held)]
    extra = [Violation("ledger-equals-aws", f"assignment in AWS without an ACTIVE grant: {key}")
             for key in sorted(held - active)]
    return missing + extra


def operations_ended(view: LedgerView) -> list[Violation]:
    return [Violation("operations-ended", f"operation {op_id} is {state}"
                      + (" without a reason" if state == OperationState.FAILED.value else ""))
            for op_id, state, reason in view.operations
            if state != OperationState.SUCCEEDED.value
            and not (state == OperationState.FAILED.value and reason)]


def desired_reached(view: LedgerView, workload: Workload) -> list[Violation]:
    active = {(g.key[0], g.name, g.key[2], g.permission_set) for g in view.grants
              if g.state is GrantState.ACTIVE and g.key}
    found = [Violation("desired-reached", f"long-term assignment not ACTIVE: {wanted}")
             for wanted in sorted(workload.long_term() - active)]
    served = {g.source[1] for g in view.grants if g.source[0] == SourceKind.REQUEST.value}
    found += [Violation("desired-reached", f"approved request {request_id} never got a grant")
              for request_id in workload.requests if request_id not in served]
    return found


def not_early(view: LedgerView) -> list[Violation]:
    return [Violation("not-early", f"grant {g.id} revoked at {g.revoked_at:%H:%M:%S.%f}, "
                      f"before its expiry {g.expires_at:%H:%M:%S.%f}")
            for g in view.grants
            if g.source[0] == SourceKind.REQUEST.value and g.expires_at and g.revoked_at
            and g.revoked_at < g.expires_at]


def check(view: LedgerView, workload: Workload) -> list[Violation]:
    """Every invariant of the module docstring, on one view."""
    return [*due_revocations(view), *granted_once(view), *ledger_equals_aws(view),
            *operations_ended(view), *desired_reached(view, workload), *not_early(view)]


def summary(violations: Iterable[Violation]) -> str:
    """``invariant (count)`` per broken invariant, worst first."""
    counts = Counter(v.invariant for v in violations)
    return ", ".join(f"{name} ({n})" for name, n in counts.most_common())

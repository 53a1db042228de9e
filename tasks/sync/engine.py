"""Full and targeted sync: snapshot -> desired -> reconcile -> SCIM push -> actual -> plan ->
apply. ``dry_run=True`` computes the same plan and writes nothing (``grantledger plan``).

1. One transaction, serialized with every other sync's (an advisory lock): read the ledger,
   compute desired state, reconcile the grant rows (insert / revoke / extend / vanished).
2. SCIM: users, then groups, then group memberships.
3. Read the planner's inputs again (operations settle while AWS is listed), then list what
   AWS holds: per present account, ListPermissionSetsProvisionedToAccount then
   ListAccountAssignments per provisioned permission set; a targeted sync lists only its
   principals (ListAccountAssignmentsForPrincipal).
4. Plan; apply in batches (one transaction each); the new operations are returned for the
   caller to enqueue (``report.next_work()``) once committed.

A full sync takes a single-flight lock (PostgreSQL advisory lock, a process lock on SQLite):
a second one meanwhile returns at once with ``skipped=True``. It writes one audit event
``sync.full`` and the kv document ``last_full_sync`` with its counts.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from models.domain import AssignmentKey
from models.errors import InputError, NotFound
from models.ledger import tables
from models.ledger.audit import record_many
from models.ledger.db import transaction
from models.ledger.enums import GrantState
from models.ledger.kv import write_state
from models.ledger.locks import FULL_SYNC_LOCK, RECONCILE_LOCK, named_lock, serialize
from models.ports.identity_center import IdentityCenter
from models.ports.runtime import Runtime
from tasks.events import Next, submit
from tasks.sync.applier import Applied, apply_changes, record_foreign
from tasks.sync.desired import DesiredState, desired_state, membership_lists
from tasks.sync.planner import Change, ChangeKind, PrincipalRef, plan
from tasks.sync.reconcile import Reconciliation, apply_reconciliation, reconcile, resulting_grants
from tasks.sync.scim_health import note_push
from tasks.sync.scim_push import (
    DirectoryChange,
    ScimPush,
    find_or_create_user,
    push_groups,
    push_memberships,
    push_users,
    safe_membership_diffs,
    save_user_id,
)
from tasks.sync.snapshot import (
    FULL,
    GROUP,
    USER,
    PlanInputs,
    Scope,
    Snapshot,
    UserState,
    load_plan_inputs,
    load_snapshot,
)
from tasks.worker_state import workers_drift_mode

ACTOR = "system:sync"
APPLY_BATCH = 500
NEW_PRINCIPAL = "(new) "  # prefix of the id a dry run shows for a principal not pushed yet
FOREIGN = (ChangeKind.FOREIGN_REPORT, ChangeKind.FOREIGN_QUARANTINE, ChangeKind.FOREIGN_REMOVE)


@dataclass
class SyncReport:
    """What one sync did (or, dry, would do); ``next_work()`` is what to enqueue."""

    scope: str
    dry_run: bool = False
    skipped: bool = False
    reason: str = ""
    principals: dict[str, list[str]] = field(default_factory=dict)  # a targeted sync's
    counts: Counter[str] = field(default_factory=Counter)
    changes: list[Change] = field(default_factory=list)
    submit: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    duration: float = 0.0
    names: dict[str, dict[Any, str]] = field(default_factory=dict)
    directory_changes: list[DirectoryChange] = field(default_factory=list)  # SCIM's part
    drift_mode: str = "report"  # what foreign assignments were planned with
    drift_from: str = "settings"  # whose drift mode that is (plan_sync)

    def next_work(self) -> list[Next]:
        return [submit(operation_id) for operation_id in self.submit]

    def summary(self) -> dict[str, Any]:
        """Counts and timing, JSON-ready (the audit event, the kv document, task results)."""
        summary = {"scope": self.scope, "dry_run": self.dry_run, "skipped": self.skipped,
                   "duration": round(self.duration, 3),
                   "counts": dict(sorted(self.counts.items())), "errors": list(self.errors)}
        if self.scope != "full":
            summary |= {"principals": self.principals, "reason": self.reason}
        return summary

    def plan_rows(self) -> list[dict[str, Any]]:
        """The plan for people: one row per change, names instead of ids where known; the
        SCIM changes (users, groups, memberships) first, as a sync makes them."""
        accounts, sets = self.names.get("accounts", {}), self.names.get("permission_sets", {})
        principals = self.names.get("principals", {})
        rows = [change.as_row() for change in self.directory_changes]
        for change in self.changes:
            principal_type, principal_id, account_id, arn = change.key
            who = change.principal_name or principals.get((str(principal_type), principal_id))
            rows.append({
                "change": change.kind.value,
                "principal": f"{principal_type}:{who or principal_id}",
                "group": None,
                "account": f"{account_id} ({accounts[account_id]})" if account_id in accounts
                else account_id,
                "permission_set": sets.get(arn, arn), "grants": list(change.grant_ids),
                "reason": change.reason})
        return rows


# --- entry points ------------------------------------------------------------------------------


def full_sync(*, runtime: Runtime, dry_run: bool = False,
              drift_mode: str | None = None) -> SyncReport:
    """Sync everything; skipped (report.skipped) while another full sync runs. A dry run
    writes nothing, so it never waits for (or blocks) a real one. ``drift_mode``: plan
    with this mode instead of the settings' (a dry run with the workers' mode)."""
    if dry_run:
        return run_sync(runtime=runtime, scope=FULL, dry_run=True, drift_mode=drift_mode)
    with single_flight(runtime, FULL_SYNC_LOCK) as acquired:
        if not acquired:
            return SyncReport(scope="full", dry_run=dry_run, skipped=True)
        return run_sync(runtime=runtime, scope=FULL, dry_run=dry_run)


def sync_principals(*, runtime: Runtime, users: Iterable[str] = (), lists: Iterable[str] = (),
                    dry_run: bool = False, reason: str = "",
                    drift_mode: str | None = None) -> SyncReport:
    """Sync only these users and access lists (the event-driven path)."""
    scope = Scope.of(users=users, lists=lists)
    return run_sync(runtime=runtime, scope=scope, dry_run=dry_run, reason=reason,
                    drift_mode=drift_mode)


def plan_sync(*, runtime: Runtime, users: Iterable[str] = (),
              lists: Iterable[str] = ()) -> SyncReport:
    """What a sync would do now (a dry run: `plan`, `sync --dry-run`, the API's /plan),
    planned with the drift mode the workers started with (``tasks.worker_state``), else
    this process's; ``report.drift_from`` says which."""
    with runtime.sessions() as session:
        workers = workers_drift_mode(session)
    mode = workers or runtime.settings.drift_mode
    users, lists = list(users), list(lists)
    report = sync_principals(runtime=runtime, users=users, lists=lists, dry_run=True,
                             drift_mode=mode) if users or lists \
        else full_sync(runtime=runtime, dry_run=True, drift_mode=mode)
    report.drift_from = "the workers" if workers else \
        "this process's GRANTLEDGER_DRIFT_MODE (no worker recorded its settings yet)"
    return report


def restore_directory_user(*, runtime: Runtime, user: str) -> str:
    """Make sure a user exists in Identity Center; its id (new if it had to be re-created).

    Finds the user by userName; if it is gone (deleted outside grantledger), creates it
    again, and stores the id on the user and its live grants.
    """
    with transaction(runtime.sessions) as session:
        row = session.get(tables.User, user)
        if row is None:
            raise NotFound("user", user)
        if row.suspended:
            raise InputError(f"user {user!r} is suspended: grantledger pushes nothing for it",
                             hint=f"lift the suspension first: grantledger restore --user {user}")
        state = UserState(name=row.name, email=row.email, given_name=row.given_name,
                          family_name=row.family_name)
        recorded = row.principal_id
    pushed = find_or_create_user(runtime.directory, state)
    if pushed.id != recorded:
        with transaction(runtime.sessions) as session:
            save_user_id(session, name=user, principal_id=pushed.id,
                         external_id=pushed.external_id, adopted=pushed.adopted,
                         action="user.reprovisioned")
    return pushed.id


def reprovision_user(*, runtime: Runtime, user: str) -> SyncReport:
    """``restore_directory_user``, then a targeted sync re-creating the user's assignments
    and group memberships."""
    restore_directory_user(runtime=runtime, user=user)
    return sync_principals(runtime=runtime, users=[user], reason="reprovision")


def save_report(*, runtime: Runtime, key: str, report: SyncReport) -> None:
    """Keep a sync's summary under ``key`` (kv) for whoever waits for it (`sync --wait`)."""
    with transaction(runtime.sessions) as session:
        write_state(session, key, report.summary())


def run_sync(*, runtime: Runtime, scope: Scope, dry_run: bool, reason: str = "",
             drift_mode: str | None = None) -> SyncReport:
    """The pipeline of the module docstring, for one scope."""
    started = time.monotonic()
    report = SyncReport(scope="full" if scope.full else "principals", dry_run=dry_run,
                        reason=reason, principals={"users": sorted(scope.users or ()),
                                                   "lists": sorted(scope.lists or ())},
                        drift_mode=drift_mode or runtime.settings.drift_mode)
    snapshot, desired, result = _reconcile(runtime, scope, dry_run, report)
    principal_ids = _push(runtime, snapshot, desired, dry_run, report)
    inputs = _plan_inputs(runtime, scope, snapshot, result, principal_ids, dry_run)
    actual = fetch_actual(runtime.identity_center, scope=scope, inputs=inputs)
    vanished = set(snapshot.vanished_accounts) | set(snapshot.vanished_permission_sets)
    report.changes = plan(
        grants=[g for g in inputs.grants if g.account_id not in vanished
                and g.permission_set_arn not in vanished],
        actual=actual, principal_ids=inputs.principal_ids, in_flight=inputs.in_flight,
        drift_mode=report.drift_mode, history=inputs.history, now=inputs.now)
    report.names = _names(snapshot, inputs.principal_ids)
    if dry_run:
        report.counts.update(change_counts(report.changes))
    else:
        _apply(runtime, report, scope, inputs.principal_ids)
    report.counts["failed"] = sum(1 for g in inputs.grants if g.state is GrantState.FAILED)
    report.duration = time.monotonic() - started
    if not dry_run:
        _record(runtime, report)
    return report


# --- steps -------------------------------------------------------------------------------------


def _reconcile(runtime: Runtime, scope: Scope, dry_run: bool,
               report: SyncReport) -> tuple[Snapshot, DesiredState, Reconciliation]:
    with transaction(runtime.sessions) as session:
        if not dry_run:
            serialize(session, RECONCILE_LOCK)
        snapshot = load_snapshot(session, scope=scope)
        desired = desired_state(snapshot)
        result = reconcile(desired=desired.grants, live=snapshot.grants,
                           vanished_accounts=snapshot.vanished_accounts,
                           vanished_permission_sets=snapshot.vanished_permission_sets)
        if dry_run:
            report.counts.update(result.counts())
        else:
            report.counts.update(apply_reconciliation(
                session, result, principal_ids=snapshot.principal_ids(), actor=ACTOR))
    return snapshot, desired, result


def _push(runtime: Runtime, snapshot: Snapshot, desired: DesiredState, dry_run: bool,
          report: SyncReport) -> dict[PrincipalRef, str | None]:
    """SCIM users -> groups -> memberships; every principal's id afterwards."""
    push, directory = ScimPush(), runtime.directory
    lists = membership_lists(desired, snapshot)
    users = push_users(sessions=runtime.sessions, directory=directory,
                       users=snapshot.users.values(), report=push, dry_run=dry_run)
    groups = push_groups(sessions=runtime.sessions, directory=directory, lists=lists,
                         group_ids=snapshot.group_ids, report=push, dry_run=dry_run)
    user_ids = {name: users.get(name) or user.principal_id or _placeholder(dry_run, user)
                for name, user in snapshot.users.items()}
    group_ids = {name: groups.get(name) or snapshot.group_ids.get(name)
                 or (_new(name) if dry_run else None) for name in lists}
    fresh = [name for name in lists if name in groups or _is_new(group_ids[name])]
    diffs = safe_membership_diffs(
        push, identity_center=runtime.identity_center,
        group_ids={k: v for k, v in group_ids.items() if v}, fresh=fresh,
        members={name: desired.members[name] for name in lists}, user_ids=user_ids)
    push_memberships(sessions=runtime.sessions, directory=directory, diffs=diffs, report=push,
                     dry_run=dry_run,
                     user_names={pid: name for name, pid in user_ids.items() if pid})
    if not dry_run:  # an outage starting or ending is audited and notified once
        changed = note_push(sessions=runtime.sessions, directory=directory,
                            stopped=push.stopped, reason=push.stop_reason)
        if changed:
            push.counts[f"scim_{changed}"] += 1
    report.counts.update(push.counts)
    report.errors.extend(push.errors)
    report.directory_changes = list(push.planned)
    ids = snapshot.principal_ids()
    ids.update({(USER, name): pid for name, pid in user_ids.items() if pid})
    ids.update({(GROUP, name): gid for name, gid in group_ids.items() if gid})
    return ids


def _placeholder(dry_run: bool, user: Any) -> str | None:
    return _new(user.name) if dry_run and not user.suspended else None


def _new(name: str) -> str:
    """The id a dry run shows for a principal the SCIM push would create first."""
    return f"{NEW_PRINCIPAL}{name}"


def _is_new(principal_id: str | None) -> bool:
    return bool(principal_id) and str(principal_id).startswith(NEW_PRINCIPAL)


def _plan_inputs(runtime: Runtime, scope: Scope, snapshot: Snapshot, result: Reconciliation,
                 principal_ids: Mapping[PrincipalRef, str | None], dry_run: bool) -> PlanInputs:
    with transaction(runtime.sessions) as session:
        inputs = load_plan_inputs(session, scope=scope)
    if not dry_run:
        return inputs
    # Nothing was written: plan on the grants as the reconciliation would have left them.
    ids = {**inputs.principal_ids, **principal_ids}
    return replace(inputs, grants=tuple(resulting_grants(snapshot.grants, result, ids)),
                   principal_ids=ids)


def fetch_actual(identity_center: IdentityCenter, *, scope: Scope,
                 inputs: PlanInputs) -> set[AssignmentKey]:
    """The assignments AWS holds: of every present account (full), or of the principals in
    scope (targeted)."""
    found: set[AssignmentKey] = set()
    if scope.full:
        for account_id in inputs.present_accounts:
            for arn in identity_center.list_provisioned_permission_sets(account_id):
                found.update(r.key for r in identity_center.list_assignments(
                    account_id=account_id, permission_set_arn=arn))
        return found
    for (principal_type, name), principal_id in sorted(inputs.principal_ids.items()):
        if principal_id and not _is_new(principal_id) and scope.has(principal_type, name):
            found.update(r.key for r in identity_center.list_assignments_for_principal(
                principal_type=principal_type, principal_id=principal_id))
    return found


def _apply(runtime: Runtime, report: SyncReport, scope: Scope,
           principal_ids: Mapping[PrincipalRef, str | None]) -> None:
    applied = Applied()
    actionable = [c for c in report.changes
                  if c.kind not in (ChangeKind.FOREIGN_REPORT, ChangeKind.FOREIGN_QUARANTINE)]
    for start in range(0, len(actionable), APPLY_BATCH):
        with transaction(runtime.sessions) as session:
            applied.merge(apply_changes(session, actionable[start:start + APPLY_BATCH],
                                        actor=ACTOR))
    report.counts.update(applied.counts)
    report.submit.extend(applied.submit)
    scoped = {pid for (kind, name), pid in principal_ids.items() if pid and scope.has(kind, name)}
    with transaction(runtime.sessions) as session:
        report.counts["foreign_new"] += record_foreign(
            session, report.changes, actor=ACTOR,
            in_scope=None if scope.full else scoped.__contains__)
    report.counts["foreign"] += sum(1 for c in report.changes if c.kind in FOREIGN)


def change_counts(changes: Iterable[Change]) -> Counter[str]:
    """What a plan would do, counted like an applied sync counts."""
    counts: Counter[str] = Counter()
    for change in changes:
        if change.kind is ChangeKind.ACTIVATE:
            counts["activated"] += len(change.grant_ids)
        elif change.kind is ChangeKind.RETIRE:
            counts["retired"] += len(change.grant_ids)
        elif change.kind in (ChangeKind.CREATE, ChangeKind.DELETE):
            counts["joined" if change.operation_id else
                   "created" if change.kind is ChangeKind.CREATE else "deleted"] += 1
        else:
            counts["foreign"] += 1
    return counts


def _record(runtime: Runtime, report: SyncReport) -> None:
    """One audit event per sync that did something (always for a full sync)."""
    changed = any(v for k, v in report.counts.items() if k not in ("failed", "foreign"))
    if report.scope != "full" and not changed and not report.errors:
        return
    summary = report.summary()
    with transaction(runtime.sessions) as session:
        if report.scope == "full":
            write_state(session, "last_full_sync", summary)
        record_many(session, [{"actor": ACTOR, "action": f"sync.{report.scope}",
                               "target_kind": "sync", "target": report.scope,
                               "details": summary}])


def _names(snapshot: Snapshot, principal_ids: Mapping[PrincipalRef, str | None]
           ) -> dict[str, dict[Any, str]]:
    accounts = {a.account.id: a.account.name for a in snapshot.catalog}
    sets = {a.permission_set.arn: a.permission_set.name for a in snapshot.catalog}
    return {"accounts": {**accounts, **snapshot.vanished_accounts},
            "permission_sets": {**sets, **snapshot.vanished_permission_sets},
            "principals": {(kind, pid): name for (kind, name), pid in principal_ids.items()
                           if pid}}


# --- locks -------------------------------------------------------------------------------------


@contextmanager
def single_flight(runtime: Runtime, name: str) -> Iterator[bool]:
    """Try to hold lock ``name`` for the block (``models.ledger.locks.named_lock``): True if
    held, False if someone else has it."""
    with named_lock(runtime.engine, name) as held:
        yield held



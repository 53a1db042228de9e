"""The expiry sweep (beat, every ``expiry_interval`` seconds): revocation on time, by the
database clock, never by a Celery ETA per grant.

One sweep:
1. claims due grants (``claim_due_expiries``: ``expires_at <= now()``, FOR UPDATE SKIP
   LOCKED, so sweepers share the work), locks their assignments (``lock_assignment``:
   reference counting must not race), starts their revocation and plans the deletes for
   those assignments in the same transaction: retired without an AWS call when another live
   grant backs the assignment, else one delete. Batches repeat until nothing is due, so the
   first sweep after a downtime catches up every overdue grant.
2. moves APPROVED requests past their expiry to EXPIRED;
3. deletes memberships past their expiry and asks for a targeted sync of their lists;
4. retries failed revocations whose backoff has passed.

Whoever asks for it (beat, or a worker's watchdog when beat's sweeps stopped:
``workers/watchdog.py``), a sweep runs under one lock (``locked_sweep``), never twice at once,
and says it ran by holding the limiter turn ``SWEPT_TURN`` for a few intervals.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from models.domain import PrincipalType, RequestState
from models.ledger import tables
from models.ledger.audit import record_many
from models.ledger.base import database_time, db_now
from models.ledger.db import transaction
from models.ledger.enums import GrantState
from models.ledger.grants import claim_due_expiries, lock_assignment
from models.ledger.locks import SWEEP_LOCK
from models.ports.runtime import Runtime, SettingsView
from tasks.events import (
    POLL_ROUND,
    PROVISION_SUBMIT,
    Next,
    poll_round,
    submit,
    sync_principals,
)
from tasks.sync.applier import Applied, apply_changes
from tasks.sync.planner import ChangeKind, NameKey, plan
from tasks.sync.reconcile import begin_revocation
from tasks.sync.snapshot import (
    Scope,
    assignment_key_of,
    grant_view,
    load_in_flight,
    load_live_grants,
    load_principal_ids,
)

ACTOR = "system:expiry"
HELD = (GrantState.ACTIVE, GrantState.PROVISIONING)
BATCH = 500
SWEPT_TURN = "expiry-swept"  # held while sweeps run on time; the watchdog takes it when not
# Seconds a sweep spends sending its deletes and polling them itself before it leaves the
# rest to the queue.
INLINE_SUBMIT_BUDGET = 3.0

log = logging.getLogger(__name__)


@dataclass
class ExpiryReport:
    counts: Counter[str] = field(default_factory=Counter)
    submit: list[int] = field(default_factory=list)
    lists: set[str] = field(default_factory=set)  # lists whose memberships expired

    def next_work(self) -> list[Next]:
        work = [submit(operation_id) for operation_id in self.submit]
        if self.lists:
            work.append(sync_principals(lists=self.lists, reason="membership expired"))
        return work

    def add(self, applied: Applied) -> None:
        self.counts.update(applied.counts)
        self.submit.extend(applied.submit)


def stale_after(settings: SettingsView) -> float:
    """Seconds without a sweep after which workers run one themselves."""
    return settings.expiry_interval * settings.expiry_stale_intervals


def locked_sweep(*, runtime: Runtime) -> ExpiryReport | None:
    """One sweep under the sweep lock (a PostgreSQL advisory lock); None when another sweep
    holds it (that one does the work)."""
    from tasks.sync.engine import single_flight

    with single_flight(runtime, SWEEP_LOCK) as held:
        if not held:
            return None
        runtime.limiter.hold_turn(SWEPT_TURN, period=stale_after(runtime.settings))
        report = sweep(runtime=runtime)
        # again at the end: a long sweep (a catch-up) counts from when it finished
        runtime.limiter.hold_turn(SWEPT_TURN, period=stale_after(runtime.settings))
        return report


def submit_inline(*, runtime: Runtime, work: list[Next],
                  budget: float = INLINE_SUBMIT_BUDGET) -> list[Next]:
    """Send the sweep's deletes from here, then run their first poll round, for up to
    ``budget`` seconds, instead of queueing each step behind whatever holds the workers (a
    revocation's lag was mostly queue waits); what is left to enqueue: the rest, and what
    the steps done ask for next."""
    from tasks.provisioning.poll_round import run_round
    from tasks.provisioning.polling import submit_operation

    deadline, left, sent = time.monotonic() + budget, [], 0
    for index, item in enumerate(work):
        if item.task != PROVISION_SUBMIT or time.monotonic() > deadline:
            left.append(item)
            continue
        try:
            left += submit_operation(runtime=runtime, operation_id=int(item.args[0]))
        except Exception as err:  # noqa: BLE001 - the queued task retries it properly
            log.warning("expiry: inline submit of operation %s failed (%s); queued instead",
                        item.args[0], err)
            return left + work[index:]
        sent += 1
    pause = runtime.settings.poll_first_delay  # AWS settles a delete in about this long
    while sent and any(item.task == POLL_ROUND for item in left):
        if time.monotonic() + pause > deadline:
            return left
        time.sleep(pause)
        rest = [item for item in left if item.task != POLL_ROUND]
        try:
            left = rest + run_round(runtime=runtime)
        except Exception as err:  # noqa: BLE001 - the queued round does it
            log.warning("expiry: inline poll round failed (%s); queued instead", err)
            return rest + [poll_round()]
        pause = max((item.countdown for item in left if item.task == POLL_ROUND), default=0)
    return left


def sweep(*, runtime: Runtime, batch: int = BATCH) -> ExpiryReport:
    """One expiry sweep; what it did and what to enqueue (``report.next_work()``)."""
    report = ExpiryReport()
    while True:
        with transaction(runtime.sessions) as session:
            claimed = expire_due_grants(session, batch=batch, drift_mode=runtime.settings
                                        .drift_mode, report=report)
        if claimed < batch:
            break
    with transaction(runtime.sessions) as session:
        report.counts["requests_expired"] += expire_requests(session)
        report.lists |= expire_memberships(session, report)
    with transaction(runtime.sessions) as session:
        retry_failed_revocations(session, report=report)
    return report


def expire_due_grants(session: Session, *, batch: int, drift_mode: str,
                      report: ExpiryReport) -> int:
    """Claim up to ``batch`` due grants, revoke them and plan their deletes; how many."""
    claimed = [grant_view(row) for row in claim_due_expiries(session, limit=batch)]
    if not claimed:
        return 0
    for key in sorted({g.name_key for g in claimed}):
        lock_assignment(session, principal_type=PrincipalType(key[0]), principal_name=key[1],
                        account_id=key[2], permission_set_arn=key[3])
    begin_revocation(session, claimed, actor=ACTOR, reason="expired", action="grant.expired")
    # Which assignments may exist: any claimed grant that got past PENDING may have one.
    maybe_present = {g.name_key for g in claimed if g.state is not GrantState.PENDING}
    report.add(revoke_assignments(session, keys={g.name_key for g in claimed},
                                  maybe_present=maybe_present, drift_mode=drift_mode))
    report.counts["grants_expired"] += len(claimed)
    return len(claimed)


def revoke_assignments(session: Session, *, keys: set[NameKey], maybe_present: set[NameKey],
                       drift_mode: str, actor: str = ACTOR, backoff: bool = True) -> Applied:
    """Plan and apply the retirements and deletes of these assignments (no AWS listing:
    an assignment is taken to exist when a grant for it got past PENDING).

    ``backoff=False`` (an emergency revocation, every live grant of these keys being revoked
    in the caller's transaction): failed deletes are tried again at once.
    """
    grants = load_live_grants(session, keys=keys)
    scope = Scope.of(users=[k[1] for k in keys if k[0] == PrincipalType.USER.value],
                     lists=[k[1] for k in keys if k[0] == PrincipalType.GROUP.value])
    principal_ids = load_principal_ids(session, scope=scope)
    present = set()
    for grant in grants:
        key = assignment_key_of(grant, principal_ids)
        if key is not None and (grant.name_key in maybe_present or grant.state in HELD):
            present.add(key)
    changes = plan(grants=grants, actual=present, principal_ids=principal_ids,
                   in_flight=load_in_flight(session), drift_mode=drift_mode,
                   now=database_time(session) if backoff else None)
    wanted = [c for c in changes if c.kind in (ChangeKind.RETIRE, ChangeKind.DELETE)]
    return apply_changes(session, wanted, actor=actor)


def expire_requests(session: Session) -> int:
    """APPROVED requests past their expiry -> EXPIRED (their grants expire on their own)."""
    statement = (update(tables.AccessRequest)
                 .where(tables.AccessRequest.state == RequestState.APPROVED,
                        tables.AccessRequest.expires_at <= db_now())
                 .values(state=RequestState.EXPIRED)
                 .returning(tables.AccessRequest.id, tables.AccessRequest.user_name)
                 .execution_options(synchronize_session=False))
    expired = session.execute(statement).all()
    record_many(session, [{"actor": ACTOR, "action": "request.expired",
                           "target_kind": "request", "target": request_id,
                           "request_id": request_id, "principal_name": user,
                           "reason": "its duration ended"} for request_id, user in expired])
    return len(expired)


def expire_memberships(session: Session, report: ExpiryReport) -> set[str]:
    """Delete memberships past their expiry; the lists they belonged to."""
    statement = (delete(tables.Membership).where(tables.Membership.expires_at <= db_now())
                 .returning(tables.Membership.list_name, tables.Membership.member_name,
                            tables.Membership.member_kind)
                 .execution_options(synchronize_session=False))
    removed = session.execute(statement).all()
    record_many(session, [{"actor": ACTOR, "action": "membership.expired",
                           "target_kind": "access_list", "target": list_name,
                           "principal_name": member if str(kind) == "user" else None,
                           "reason": "membership expired",
                           "details": {"member": member, "member_kind": str(kind)}}
                          for list_name, member, kind in removed])
    report.counts["memberships_expired"] += len(removed)
    return {list_name for list_name, _, _ in removed}


def retry_failed_revocations(session: Session, *, report: ExpiryReport) -> None:
    """Failed deletes whose backoff has passed: try again (the planner checks the backoff)."""
    failed = session.scalars(select(tables.Grant).where(
        tables.Grant.state == GrantState.FAILED,
        tables.Grant.failed_from == GrantState.REVOKING))
    keys = {grant_view(row).name_key for row in failed}
    if keys:
        report.add(revoke_assignments(session, keys=keys, maybe_present=keys,
                                      drift_mode="report"))

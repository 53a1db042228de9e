"""Status polling in rounds: one listing answers for every operation in flight.

With ``status_polling = "list"`` (the default), a submit does not start a poll chain of its
own; it asks for a round ``poll_first_delay`` later. A round:

0. takes the round's turn for one ``status_poll_interval`` (see below);
1. leases the SUBMITTED operations due within half a ``status_poll_interval`` (their next
   poll moves a whole interval on, in a short transaction: rounds running at once share the
   work, SKIP LOCKED, and a round right after this one finds nothing to do);
2. asks AWS which creates / deletes are still IN_PROGRESS
   (``ListAccountAssignment{Creation,Deletion}Status``, 100 a call, for the whole instance);
3. takes a leased operation that is absent from that list, and was submitted at least
   ``LIST_GRACE`` (or ``poll_first_delay`` if shorter) before it, as settled, and learns
   how: with two or more of them one FAILED listing (at most ``FAILED_PAGES`` calls) tells
   which failed, otherwise (or when that listing is longer) one Describe each; a failed one
   is always described for AWS's reason;
4. settles each in its own transaction (``polling.settle``: grants moved, audit, create slot
   handed to the next waiting create), and gives up on operations IN_PROGRESS for longer
   than ``poll_give_up_after``;
5. asks for the next round one interval later while any leased operation is unsettled.

The interval is ``status_poll_interval``, shortened to ``status_poll_fast_interval`` while
creates wait for a create slot (bulk provisioning: the cap is then what limits throughput,
and each moment a settled create goes unseen holds its slot for nothing) or while at least
``SPARE_SHARE`` of the sso-admin rate window is free (a listing then costs nothing anything
else wanted, and a settle seen sooner is access granted sooner).

Rounds take turns (``Limiter.take_turn``, shared through Redis): at most one an interval
lists, a round that comes early runs when the turn ends, and a round with nothing due makes
no AWS call and asks for nothing, so the rounds many submits ask for fold into one chain. A
listing that AWS refuses (AccessDenied: the role lacks the List*Status actions) sends the
leased operations to per-operation Describe polls; the rounds keep whether that is so, and
when they last listed, for `grantledger status` (``tasks.provisioning.status_listing``).
Why AWS's list is trusted this way, and the setting to turn it off: ops/decisions/aws.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from models.errors import AwsError
from models.ledger.base import database_time, db_now
from models.ledger.db import transaction
from models.ledger.enums import OperationKind, OperationState
from models.ledger.tables import Operation
from models.ports.identity_center import (
    FAILED,
    IN_PROGRESS,
    SUCCEEDED,
    IdentityCenter,
    OperationStatus,
)
from models.ports.priority import revocation_priority
from models.ports.runtime import Runtime
from tasks import events
from tasks.events import Next, poll, poll_round
from tasks.provisioning.polling import (
    claim_operation,
    describe_status,
    gave_up_reason,
    poll_operation,
    settle,
    settle_status,
    submit_operation,
)
from tasks.provisioning.status_listing import record_round

log = logging.getLogger(__name__)

SUBMITTED = OperationState.SUBMITTED
# operation kind -> the kind of AWS's status listing (IdentityCenter.operation_statuses)
DELETE_KIND = OperationKind.DELETE_ASSIGNMENT.value
LISTED = {OperationKind.CREATE_ASSIGNMENT.value: "create",
          OperationKind.DELETE_ASSIGNMENT.value: "delete"}
LIST_GRACE = 0.5  # seconds; younger at the listing: not judged by it (less if the first poll is)
FAILED_PAGES = 3  # a longer FAILED history: describe the settled operations instead
LEASE_LIMIT = 2000
TURN = "poll-round"  # at most one round an interval, across every worker
SPARE_SHARE = 0.5  # of the sso-admin rate window free: rounds at the fast interval
CREATE = OperationKind.CREATE_ASSIGNMENT.value
# A targeted sync that starts this few operations sends them itself: one broker hop less
# between an approval and its create. More go to the workers, in parallel: a sync process
# waiting on the limiter for several submits would hold up the syncs queued behind it.
INLINE_SUBMITS = 1


@dataclass(frozen=True)
class Leased:
    """A SUBMITTED operation this round answers for."""

    id: int
    kind: str  # the operation's kind (create_assignment | delete_assignment)
    request_id: str
    submitted_at: datetime | None
    polls: int  # its poll count after the lease


def run_round(*, runtime: Runtime) -> list[Next]:
    """One poll round; the work to enqueue next (woken creates, the next round)."""
    settings = runtime.settings
    with runtime.sessions() as session:
        interval = round_interval(session, settings, runtime.limiter)
        due = session.scalar(select(Operation.id).where(*_due(interval)).limit(1))
    if due is None:
        return []
    wait = runtime.limiter.take_turn(TURN, period=interval)
    if wait > 0:  # a round ran less than an interval ago: this one runs when its turn ends
        return [poll_round(countdown=wait)]
    leased, leased_at = lease_due(runtime.sessions, interval=interval)
    if not leased:
        return []
    grace = timedelta(seconds=min(LIST_GRACE, settings.poll_first_delay))
    listings = list_settled(runtime.identity_center, leased, judged_before=leased_at - grace)
    mine = [op for op in leased if op not in listings.handed_over]
    work, unsettled = _settle_all(runtime, mine, listings.outcomes, leased_at)
    work += [poll(op.id, countdown=0, polls=op.polls) for op in listings.handed_over]
    if unsettled:
        work.append(poll_round(countdown=interval))
    # Last, and never in the way: settling comes first, the record is only for `status`.
    try:
        record_round(runtime.sessions, at=leased_at, answered=listings.answered,
                     refused=listings.refused)
    except SQLAlchemyError as err:
        log.warning("poll round: its outcome was not recorded for status (%s)", err)
    return work


@dataclass
class Listings:
    """What one round's status listings told."""

    outcomes: dict[int, OperationStatus] = field(default_factory=dict)  # by operation id
    handed_over: list[Leased] = field(default_factory=list)  # to per-operation Describe polls
    answered: set[str] = field(default_factory=set)  # create / delete: AWS listed them
    refused: dict[str, str] = field(default_factory=dict)  # create / delete -> AWS's refusal


def list_settled(identity_center: IdentityCenter, leased: list[Leased], *,
                 judged_before: datetime) -> Listings:
    """Which leased operations settled, one listing per kind. A refused listing (the role
    lacks the action) hands its operations to Describe polls; a failure that may pass
    leaves them to the next round."""
    listings = Listings()
    # deletes first, with the limiter's priority: a revocation is not late behind creates
    for kind in sorted({op.kind for op in leased}, key=lambda k: k != DELETE_KIND):
        mine = [op for op in leased if op.kind == kind]
        try:
            with revocation_priority(kind == DELETE_KIND):
                listings.outcomes.update(find_settled(identity_center, kind, mine,
                                                      judged_before=judged_before))
        except AwsError as err:
            if err.retryable:
                log.info("poll round: %s status listing failed (%s); next round", kind, err)
                continue
            log.warning("poll round: %s status listing refused (%s); polling each "
                        "operation with Describe instead", kind, err)
            listings.handed_over += mine
            listings.refused[LISTED[kind]] = err.message
        else:
            listings.answered.add(LISTED[kind])
    return listings


def round_interval(session: Session, settings: Any, limiter: Any) -> float:
    """The fast interval while creates wait for a create slot (the cap binds: a settle seen
    sooner lets the next create go sooner) or while the sso-admin budget is mostly spare;
    else ``status_poll_interval``."""
    interval = settings.status_poll_interval
    fast = min(interval, settings.status_poll_fast_interval)
    if limiter.spare_share("sso-admin") >= SPARE_SHARE:
        return fast
    waiting = session.scalar(select(Operation.id).where(
        Operation.state == OperationState.QUEUED, Operation.kind == CREATE,
        Operation.next_poll_at.is_not(None)).limit(1))
    return fast if waiting is not None else interval


def _due(interval: float) -> tuple[Any, ...]:
    """SUBMITTED assignment operations whose next poll is due within half an interval."""
    return (Operation.state == SUBMITTED, Operation.kind.in_(LISTED),
            Operation.next_poll_at <= db_now(interval / 2))


def lease_due(sessions: Any, *, interval: float) -> tuple[list[Leased], datetime]:
    """Lease the SUBMITTED operations due within half an ``interval``: their next poll moves
    a whole interval on, so no other round takes them before the next round of this chain."""
    with transaction(sessions) as session:
        now = database_time(session)
        rows = session.execute(
            select(Operation.id, Operation.kind, Operation.request_id, Operation.submitted_at,
                   Operation.poll_count)
            .where(*_due(interval))
            .order_by(Operation.next_poll_at, Operation.id).limit(LEASE_LIMIT)
            .with_for_update(skip_locked=True)).all()
        if rows:
            session.execute(update(Operation).where(Operation.id.in_([r.id for r in rows]))
                            .values(poll_count=Operation.poll_count + 1,
                                    next_poll_at=db_now(interval))
                            .execution_options(synchronize_session=False))
    return [Leased(r.id, r.kind, r.request_id or "", r.submitted_at, r.poll_count + 1)
            for r in rows], now


def find_settled(identity_center: IdentityCenter, kind: str, leased: list[Leased], *,
                 judged_before: datetime) -> dict[int, OperationStatus]:
    """Operation id -> final status, for the leased operations of ``kind`` that settled
    (only those submitted before ``judged_before`` are judged by their absence)."""
    listed = LISTED[kind]
    running = identity_center.operation_statuses(listed, IN_PROGRESS).request_ids
    done = [op for op in leased if op.request_id not in running and op.submitted_at
            is not None and op.submitted_at <= judged_before]
    if not done:
        return {}
    failed: frozenset[str] | None = None
    if len(done) > 1:
        listing = identity_center.operation_statuses(listed, FAILED, max_pages=FAILED_PAGES)
        failed = listing.request_ids if listing.complete else None
    outcomes = {}
    for op in done:
        if failed is not None and op.request_id not in failed:
            outcomes[op.id] = OperationStatus(op.request_id, SUCCEEDED)
        else:
            outcomes[op.id] = describe_status(identity_center, op.kind, op.request_id)
    return {i: status for i, status in outcomes.items() if status.settled}


def _settle_all(runtime: Runtime, leased: list[Leased], outcomes: dict[int, OperationStatus],
                leased_at: datetime) -> tuple[list[Next], bool]:
    """Settle what AWS finished, and what stayed IN_PROGRESS for too long, one transaction
    each; the creates woken by the slots this frees, and whether any is still in flight."""
    give_up_after = runtime.settings.poll_give_up_after
    work: list[Next] = []
    unsettled = False
    for op in leased:
        status = outcomes.get(op.id)
        waited = (leased_at - op.submitted_at).total_seconds() if op.submitted_at else 0.0
        if status is None and waited < give_up_after:
            unsettled = True
            continue
        with transaction(runtime.sessions) as session:
            operation = claim_operation(session, op.id, SUBMITTED)
            if operation is None:
                continue  # settled meanwhile (a Describe poll, the sweep): nothing to do
            if status is None:
                work += settle(session, operation, succeeded=False, runtime=runtime,
                               reason=gave_up_reason(waited))
            else:
                work += settle_status(session, operation, status, runtime)
    return work, unsettled


def run_inline(runtime: Runtime, item: Next) -> list[Next]:
    """Run one submit, poll or poll round in this process (the uninstall, test drivers);
    the work it asks for next. Other tasks are not this module's: they are dropped."""
    if item.task == events.PROVISION_SUBMIT:
        return submit_operation(runtime=runtime, operation_id=int(item.args[0]))
    if item.task == events.POLL_OPERATION:
        polls = item.args[1] if len(item.args) > 1 else None
        return poll_operation(runtime=runtime, operation_id=int(item.args[0]), polls=polls)
    if item.task == events.POLL_ROUND:
        return run_round(runtime=runtime)
    return []


def submit_few_inline(runtime: Runtime, work: list[Next]) -> list[Next]:
    """Run the submits of ``work`` here when there are at most ``INLINE_SUBMITS`` of them
    (a targeted sync after an approval); the work left to enqueue. A submit that fails
    here for a reason other than AWS's (which it handles itself) is enqueued instead."""
    submits = [item for item in work if item.task == events.PROVISION_SUBMIT]
    if not submits or len(submits) > INLINE_SUBMITS:
        return work
    left = [item for item in work if item.task != events.PROVISION_SUBMIT]
    for item in submits:
        try:
            left += run_inline(runtime, item)
        except SQLAlchemyError as err:
            log.warning("submit of operation %s failed here (%s); a worker retries it",
                        item.args[0], err)
            left.append(item)
    return left

"""What `grantledger status` (and the API's /v1/status) reports: one read of the ledger,
the broker and the limiter, so an operator sees every piece of pending or stuck work."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from models.ledger import tables
from models.ledger.base import database_time
from models.ledger.enums import GrantState, OperationState
from models.ledger.kv import read_state, state_updated_at
from tasks.applier import FOREIGN_KEY
from tasks.importing.load import is_enrolled
from tasks.scim_health import outage
from tasks.services.reviews import overdue_reviews
from tasks.worker_state import intervals, job_runs, workers_drift_mode

NEXT_EXPIRIES_SHOWN = 10
FAILED_SHOWN = 20
FOREIGN_SHOWN = 5
LAST_FULL_SYNC = "last_full_sync"  # the kv key tasks.sync writes after each full sync


@dataclass
class Status:
    database_time: datetime
    grants_by_state: dict[str, int]
    operations_by_state: dict[str, int]
    outstanding_operations: int
    failed_grants: list[dict[str, Any]]
    stuck_revocations: int
    next_expiries: list[dict[str, Any]]
    overdue_expiries: int
    last_full_sync: dict[str, Any] | None
    queues: dict[str, int | None] = field(default_factory=dict)
    limiter: dict[str, Any] | None = None
    scim_token_age_days: float | None = None
    scim_token_warning: str | None = None
    overdue_reviews: list[str] = field(default_factory=list)
    notifications: dict[str, Any] = field(default_factory=dict)
    broker_error: str | None = None
    status_polling: dict[str, Any] = field(default_factory=dict)  # tasks.status_listing
    scim_outage: dict[str, Any] | None = None  # tasks.scim_health: pushes stopped, and why
    enrolled: bool = True  # an import with default owners ran (tasks.importing.load)
    foreign: dict[str, Any] = field(default_factory=dict)  # assignments no grant explains
    drift_mode: dict[str, Any] = field(default_factory=dict)  # the workers' and this process's
    scheduled_jobs: list[dict[str, Any]] = field(default_factory=list)  # tasks.worker_state
    scim_configured: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ledger_status(session: Session) -> Status:
    """Everything the ledger alone can say about pending, failed and due work."""
    now = database_time(session)
    return Status(
        database_time=now,
        grants_by_state=_count_by(session, tables.Grant.state),
        operations_by_state=_count_by(session, tables.Operation.state),
        outstanding_operations=session.scalar(
            select(func.count()).select_from(tables.Operation).where(
                tables.Operation.state.in_([OperationState.QUEUED, OperationState.SUBMITTED])),
        ) or 0,
        failed_grants=[_grant_row(g) for g in session.scalars(
            select(tables.Grant).where(tables.Grant.state == GrantState.FAILED)
            .order_by(tables.Grant.updated_at.desc()).limit(FAILED_SHOWN))],
        stuck_revocations=session.scalar(
            select(func.count()).select_from(tables.Grant).where(
                tables.Grant.stuck.is_(True), tables.Grant.state != GrantState.REVOKED),
        ) or 0,
        next_expiries=[_grant_row(g) for g in session.scalars(
            select(tables.Grant).where(tables.Grant.state == GrantState.ACTIVE,
                                       tables.Grant.expires_at.is_not(None))
            .order_by(tables.Grant.expires_at).limit(NEXT_EXPIRIES_SHOWN))],
        overdue_expiries=session.scalar(
            select(func.count()).select_from(tables.Grant).where(
                tables.Grant.state == GrantState.ACTIVE, tables.Grant.expires_at <= now),
        ) or 0,
        last_full_sync=last_full_sync(session),
        overdue_reviews=sorted(review.list_name for review in overdue_reviews(session=session)),
        scim_outage=outage(session),
        enrolled=is_enrolled(session),
        foreign=foreign_assignments(session),
    )


def foreign_assignments(session: Session) -> dict[str, Any]:
    """The assignments in AWS no grant explains (recorded by the last syncs): how many, how
    many quarantined, and the first few."""
    found = read_state(session, FOREIGN_KEY, {}).get("assignments", [])
    return {"count": len(found), "quarantined": sum(1 for f in found if f.get("quarantined")),
            "shown": found[:FOREIGN_SHOWN]}


def missing_ledger(database_url: str) -> str | None:
    """The path of a SQLite ledger that does not exist (nothing was set up here), else None.
    Reading status must not create it."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return None if Path(url.database).exists() else url.database


def last_full_sync(session: Session) -> dict[str, Any] | None:
    """The last full sync's summary, with ``finished_at``: when it was stored (database
    clock), which is when the sync ended."""
    summary = read_state(session, LAST_FULL_SYNC)
    if summary is None:
        return None
    return {**summary, "finished_at": state_updated_at(session, LAST_FULL_SYNC)}


def full_status(runtime: Any) -> Status:
    """The whole status: ledger, broker queues, limiter, SCIM token, notification backlog,
    and how status polling is doing (a refused listing means Describe polls instead).

    A broker that is down does not hide the ledger's part: ``broker_error`` says why the
    queue depths and limiter usage are missing.
    """
    from redis import RedisError

    from tasks.notify.delivery import outbox_backlog
    from tasks.status_listing import listing_status
    from workers.celery_app import QUEUES, beat_schedule
    from workers.scim.token import token_age_days, token_warning

    with runtime.sessions() as session:
        report = ledger_status(session)
        report.notifications = outbox_backlog(session)
        report.status_polling = listing_status(session, mode=runtime.settings.status_polling)
    try:
        report.queues = queue_depths(runtime.settings, QUEUES)
        report.limiter = runtime.limiter.usage()
    except RedisError as err:
        report.queues = dict.fromkeys(QUEUES)
        report.broker_error = f"broker unreachable: {err}"
    with runtime.sessions() as session:
        report.scheduled_jobs = job_runs(session, now=report.database_time, fallback=intervals(
            beat_schedule(runtime.settings)))
        report.drift_mode = {"workers": workers_drift_mode(session),
                             "this_process": runtime.settings.drift_mode}
    report.scim_configured = bool(runtime.settings.scim_url)
    report.scim_token_age_days = token_age_days(runtime.settings)
    report.scim_token_warning = token_warning(runtime.settings)
    return report


def queue_depths(settings: Any, queues: tuple[str, ...]) -> dict[str, int | None]:
    """Messages waiting per Celery queue (Redis keeps each queue as a list); None if unknown."""
    if not settings.uses_redis:
        return dict.fromkeys(queues)
    from workers.redis_conn import redis_client

    client = redis_client(settings, socket_connect_timeout=2)
    return {queue: int(client.llen(queue)) for queue in queues}


def _count_by(session: Session, column: Any) -> dict[str, int]:
    rows = session.execute(select(column, func.count()).group_by(column)).all()
    return {str(state): count for state, count in sorted(rows, key=lambda r: str(r[0]))}


def _grant_row(grant: tables.Grant) -> dict[str, Any]:
    return {
        "id": grant.id, "principal": f"{grant.principal_type}:{grant.principal_name}",
        "account": grant.account_id, "permission_set": grant.permission_set_arn,
        "source": f"{grant.source_kind}:{grant.source_id}", "state": str(grant.state),
        "expires_at": grant.expires_at, "reason": grant.failure_reason,
        "attempts": grant.attempts, "stuck": grant.stuck,
    }

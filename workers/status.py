"""The runtime half of `grantledger status`: the ledger's part (``tasks.admin.status``) plus
the broker's queue depths, the limiter, the beat schedule and the SCIM token, which only the
runtime knows."""

from __future__ import annotations

from typing import Any, cast

from tasks.admin.status import Status, ledger_status
from tasks.worker_state import intervals, job_runs, workers_drift_mode


def full_status(runtime: Any) -> Status:
    """The whole status: ledger, broker queues, limiter, SCIM token, notification backlog,
    and how status polling is doing (a refused listing means Describe polls instead).

    A broker that is down does not hide the ledger's part: ``broker_error`` says why the
    queue depths and limiter usage are missing.
    """
    from redis import RedisError

    from tasks.notify.delivery import outbox_backlog
    from tasks.provisioning.status_listing import listing_status
    from workers.adapters.scim.token import token_age_days, token_warning
    from workers.celery.app import QUEUES, beat_schedule

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
    return {queue: int(cast(int, client.llen(queue))) for queue in queues}  # sync client


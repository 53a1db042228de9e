"""Every Celery task of grantledger. Thin: take ids, call one plain function with
``get_runtime()``, enqueue the work it returns (after its transaction committed).

Reliability (docs/DESIGN.md section 10): acks late, so a worker killed mid-task leaves the message
to be delivered again, and every task is idempotent (operations are row-locked and move by
conditional updates). Transient failures (database, broker, AWS or SCIM throttling /
unreachable) are retried a bounded number of times with jittered exponential backoff. An
operation task that exhausts its retries ends its operation FAILED with the reason: poison
work never loops. Sweeps and syncs that fail are simply run again by beat.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import DBAPIError

from models.errors import (
    AwsConflict,
    AwsThrottled,
    AwsUnreachable,
    ScimThrottled,
)
from tasks import events
from tasks.events import enqueue
from workers.celery.app import celery_app
from workers.runtime import get_runtime

log = logging.getLogger(__name__)

TRANSIENT = (DBAPIError, BrokerError, RedisConnectionError, AwsThrottled, AwsUnreachable,
             AwsConflict, ScimThrottled)
RETRY = {"bind": True, "autoretry_for": TRANSIENT, "retry_backoff": 2,
         "retry_backoff_max": 60, "retry_jitter": True, "max_retries": 5, "acks_late": True}


class OperationTask(Task):
    """A task about one operation (first argument): out of retries, the operation FAILS."""

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any,
                   einfo: Any) -> None:
        operation_id = int(args[0]) if args else int(kwargs["operation_id"])
        from tasks.provisioning.polling import give_up

        try:
            enqueue(give_up(runtime=get_runtime(), operation_id=operation_id,
                            reason=f"{self.name} failed after {self.request.retries} "
                                   f"retries: {exc}"))
        except Exception:  # noqa: BLE001 - the sweep and the next sync pick it up again
            log.exception("could not mark operation %s FAILED", operation_id)


@celery_app.task(name=events.SYNC_FULL, **RETRY)
def sync_full(self: Task, report_key: str | None = None) -> dict[str, Any]:
    """The periodic (and manual) full sync; ``report_key``: where `sync --wait` looks."""
    from tasks.sync.engine import full_sync, save_report

    runtime = get_runtime()
    report = full_sync(runtime=runtime)
    enqueue(report.next_work())
    if report_key:
        save_report(runtime=runtime, key=report_key, report=report)
    return report.summary()


@celery_app.task(name=events.SYNC_PRINCIPALS, **RETRY)
def sync_principals(self: Task, users: list[str] | None = None, lists: list[str] | None = None,
                    reason: str = "", report_key: str | None = None) -> dict[str, Any]:
    """A targeted sync: what changed for these users and access lists (a few submits sent
    at once, here)."""
    from tasks.provisioning.poll_round import submit_few_inline
    from tasks.sync.engine import save_report
    from tasks.sync.engine import sync_principals as run

    runtime = get_runtime()
    report = run(runtime=runtime, users=users or (), lists=lists or (), reason=reason)
    enqueue(submit_few_inline(runtime, report.next_work()))
    if report_key:
        save_report(runtime=runtime, key=report_key, report=report)
    return report.summary()


@celery_app.task(name=events.PROVISION_SUBMIT, base=OperationTask, **RETRY)
def provision_submit(self: Task, operation_id: int) -> int:
    """Send one recorded operation to AWS; enqueue its first status poll."""
    from tasks.provisioning.polling import submit_operation

    return enqueue(submit_operation(runtime=get_runtime(), operation_id=int(operation_id)))


@celery_app.task(name=events.POLL_OPERATION, base=OperationTask, **RETRY)
def poll_operation(self: Task, operation_id: int, polls: int | None = None) -> int:
    """Ask AWS where one operation stands; settle it or poll again later."""
    from tasks.provisioning.polling import poll_operation as run

    return enqueue(run(runtime=get_runtime(), operation_id=int(operation_id), polls=polls))


@celery_app.task(name=events.POLL_ROUND, **RETRY)
def poll_round(self: Task) -> int:
    """Ask AWS where every operation in flight stands, in one listing per kind."""
    from tasks.provisioning.poll_round import run_round

    return enqueue(run_round(runtime=get_runtime()))


@celery_app.task(name=events.POLL_SWEEP, **RETRY)
def poll_sweep(self: Task) -> int:
    """Beat: resume overdue polls and lost submits."""
    from tasks.provisioning.polling import sweep_operations

    return enqueue(sweep_operations(runtime=get_runtime()))


@celery_app.task(name=events.EXPIRY_SWEEP, **RETRY)
def expiry_sweep(self: Task) -> dict[str, int]:
    """Beat (or a worker's watchdog): revoke what expired, expire requests and memberships,
    retry failed deletes; nothing when another sweep is running."""
    from tasks.provisioning.expiry import locked_sweep, submit_inline

    runtime = get_runtime()
    report = locked_sweep(runtime=runtime)
    if report is None:
        return {"skipped": 1}
    enqueue(submit_inline(runtime=runtime, work=report.next_work()))
    return dict(report.counts)


@celery_app.task(name=events.IMPORT_REFRESH, **RETRY)
def import_refresh(self: Task) -> dict[str, Any]:
    """Beat: the scheduled import refresh (new accounts and permission sets, vanished ones)."""
    from tasks.importing.importer import refresh

    summary = refresh(runtime=get_runtime())
    return summary.as_dict() if hasattr(summary, "as_dict") else {"result": str(summary)}


@celery_app.task(name=events.NOTIFY_SWEEP, **RETRY)
def notify_sweep(self: Task) -> int:
    """Beat: queue due grant.expiring notices, deliver due notifications; how many delivered."""
    from tasks.notify.sweep import notify_sweep as run

    runtime = get_runtime()
    return run(sessions=runtime.sessions, settings=runtime.settings,
               slack=runtime.slack).delivered

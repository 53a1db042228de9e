"""The Celery application: queues, reliability settings and the beat schedule.

Run a worker with `grantledger worker` (or `celery -A workers.celery.app worker`), the
scheduler with `grantledger beat`. Tasks live in `tasks/`; they take ids and stay short.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import Celery
from celery.signals import (
    beat_init,
    setup_logging,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_init,
    worker_ready,
    worker_shutdown,
)
from kombu import Queue
from redbeat import RedBeatScheduler
from redbeat.schedulers import get_redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockNotOwnedError

from tasks.events import EXPIRY_SWEEP, IMPORT_REFRESH, NOTIFY_SWEEP, POLL_SWEEP, SYNC_FULL
from workers import kombu_fix
from workers.redis_conn import broker_transport_options, redbeat_config
from workers.settings import Settings, get_settings

kombu_fix.apply()

QUEUES = ("sync", "provision", "poll", "expiry", "import", "notify")

TASK_MODULES = [
    "workers.celery.tasks",
]

# The longest task (a full sync of a large organization) stays well under this; a message not
# acknowledged within it is redelivered, which our idempotent tasks tolerate.
VISIBILITY_TIMEOUT = 2 * 60 * 60


def beat_schedule(settings: Settings) -> dict[str, dict]:
    """The periodic work: full sync, import refresh, expiry sweep, due-poll sweep."""
    return {
        "full-sync": {
            "task": SYNC_FULL,
            "schedule": timedelta(seconds=settings.sync_interval),
            "options": {"queue": "sync", "expires": settings.sync_interval},
        },
        "import-refresh": {
            "task": IMPORT_REFRESH,
            "schedule": timedelta(seconds=settings.import_interval),
            "options": {"queue": "import", "expires": settings.import_interval},
        },
        "expiry-sweep": {
            "task": EXPIRY_SWEEP,
            "schedule": timedelta(seconds=settings.expiry_interval),
            "options": {"queue": "expiry", "expires": settings.expiry_interval * 5},
        },
        "poll-sweep": {
            "task": POLL_SWEEP,
            "schedule": timedelta(seconds=settings.poll_sweep_interval),
            "options": {"queue": "poll", "expires": settings.poll_sweep_interval * 5},
        },
        "notify-sweep": {
            "task": NOTIFY_SWEEP,
            "schedule": timedelta(seconds=10),
            "options": {"queue": "notify", "expires": 50},
        },
    }


log = logging.getLogger(__name__)


class HealingRedBeatScheduler(RedBeatScheduler):
    """redbeat that outlives a flushed or restarted Redis instead of exiting.

    Plain redbeat raises out of ``tick()`` when its lock key vanished (FLUSHALL, a restart
    without persistence) or Redis does not answer, and beat exits: no more expiry sweeps
    until something restarts it. Here a lost lock is taken again if free (else another beat
    leads and this one waits), a schedule whose keys vanished is written again, and an
    unreachable Redis is retried on the next tick.
    """

    def tick(self, min: Any = min, **kwargs: Any) -> float:  # noqa: A002 - celery's name
        try:
            return super().tick(min=min, **kwargs)
        except LockNotOwnedError:
            return self._take_over()
        except RedisConnectionError as err:
            log.warning("beat: Redis unreachable (%s); retrying", err)
            return float(self.max_interval)

    def _take_over(self) -> float:
        if self.lock is None or not self.lock.acquire(blocking=False):
            log.warning("beat: lock lost and held elsewhere; standing by")
            return float(self.max_interval)
        log.warning("beat: lock lost (Redis flushed or restarted); taken again")
        if not get_redis(self.app).exists(self.app.redbeat_conf.statics_key):
            self.setup_schedule()  # the schedule's keys went with the flush
        return float(self.max_interval)


BEAT_SCHEDULER = f"{__name__}:{HealingRedBeatScheduler.__name__}"


def make_celery(settings: Settings) -> Celery:
    """Build the Celery app for these settings (Redis in the stack, memory:// embedded)."""
    app = Celery("grantledger", broker=settings.broker_url, include=TASK_MODULES)
    app.conf.update(
        result_backend=settings.result_backend,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_track_started=True,
        task_send_sent_event=True,
        worker_send_task_events=True,
        task_default_queue="sync",
        task_queues=[Queue(name) for name in QUEUES],
        task_routes={
            "grantledger.sync.*": {"queue": "sync"},
            "grantledger.provision.*": {"queue": "provision"},
            "grantledger.poll.*": {"queue": "poll"},
            "grantledger.expiry.*": {"queue": "expiry"},
            "grantledger.import.*": {"queue": "import"},
            "grantledger.notify.*": {"queue": "notify"},
        },
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": VISIBILITY_TIMEOUT,
            "polling_interval": 0.05 if settings.embedded else 1.0,
            **broker_transport_options(settings),
        },
        task_time_limit=VISIBILITY_TIMEOUT // 2,
        task_soft_time_limit=VISIBILITY_TIMEOUT // 2 - 60,
        beat_schedule=beat_schedule(settings),
        timezone="UTC",
        **redbeat_config(settings),
        redbeat_lock_timeout=max(30, int(settings.expiry_interval * 10)),
        beat_max_loop_interval=1,
    )
    return app


celery_app = make_celery(get_settings())
SCHEDULED_JOBS = {entry["task"]: job for job, entry in beat_schedule(get_settings()).items()}
app = celery_app  # `celery -A workers.celery.app` finds `app`


@worker_process_init.connect
def warm_up(**_: Any) -> None:
    """Ready a new pool process before its first task: database connection, AWS clients,
    Identity Center instance (no AWS call when configured), limiter. Otherwise the first
    revocation each process runs pays for them (about a second, measured by
    ops/bench/bench_expiry.py). Never stops the worker: a task meets the same error later,
    with its retries."""
    from sqlalchemy import text

    from workers.runtime import get_runtime

    try:
        runtime = get_runtime()
        with runtime.sessions() as session:
            session.execute(text("SELECT 1"))
        runtime.identity_center.discover()
        runtime.limiter.outstanding_creates()
        from tasks.worker_state import record_worker_settings

        record_worker_settings(sessions=runtime.sessions, settings=runtime.settings)
    except Exception as err:  # noqa: BLE001 - logged; the tasks report it properly
        logging.getLogger(__name__).warning("worker warm-up incomplete: %s", err)


@beat_init.connect
def record_schedule(**_: Any) -> None:
    """Keep the beat's jobs and intervals in the ledger, for `status` (next run of each)."""
    from tasks.worker_state import record_beat_schedule
    from workers.runtime import get_runtime

    try:
        record_beat_schedule(sessions=get_runtime().sessions,
                             schedule=beat_schedule(get_settings()))
    except Exception as err:  # noqa: BLE001 - status then shows this process's intervals
        log.warning("could not record the beat schedule in the ledger: %s", err)


@worker_init.connect
def serve_metrics(**_: Any) -> None:
    """Serve the pool processes' metrics when asked (``workers.celery.worker_metrics``)."""
    from workers.celery.worker_metrics import serve_from_settings

    serve_from_settings(get_settings())


_watchdogs: list[Any] = []


@worker_ready.connect
def start_expiry_watchdog(sender: Any = None, **_: Any) -> None:
    """Sweep expiries from the workers when beat's sweeps stop (``workers.watchdog``);
    only with a shared broker (the embedded mode runs its own beat loop)."""
    settings = get_settings()
    if not settings.uses_redis:
        return
    from workers.watchdog import ExpiryWatchdog

    app = getattr(sender, "app", None) or celery_app
    _watchdogs.append(ExpiryWatchdog(settings, app).start())


@worker_shutdown.connect
def stop_expiry_watchdog(**_: Any) -> None:
    while _watchdogs:
        _watchdogs.pop().stop()


@setup_logging.connect
def configure_logging(loglevel: Any = None, **_: Any) -> None:
    """Our format (text or JSON, secrets scrubbed: ``workers.logs``) instead of Celery's."""
    from workers.logs import configure

    configure(get_settings(), level=loglevel or None)


@task_prerun.connect
def tag_task_lines(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    from workers.logs import bind_task

    bind_task(task=getattr(task, "name", "?"), task_id=task_id or "?")


@task_postrun.connect
def untag_task_lines(**_: Any) -> None:
    from workers.logs import unbind_task

    unbind_task()


@task_postrun.connect
def note_scheduled_run(task: Any = None, state: str | None = None, **_: Any) -> None:
    """A beat job ran: its last run, for `status` (``tasks.worker_state``)."""
    job = SCHEDULED_JOBS.get(getattr(task, "name", ""))
    if job is None:
        return
    from tasks.worker_state import record_job_run
    from workers.runtime import get_runtime

    try:
        record_job_run(sessions=get_runtime().sessions, job=job, state=state or "?")
    except Exception as err:  # noqa: BLE001 - only status's "last run" misses this one
        log.warning("could not record the run of %s: %s", job, err)

"""The embedded mode: a real Celery worker on the in-process broker (``memory://``), in a
thread, plus an in-process beat loop. Used by the single-process install (SQLite ledger),
`grantledger sync` / `demo` without Redis, and tests.

    with EmbeddedWorker(runtime) as worker:
        enqueue(full_sync(runtime=runtime).next_work())
        worker.run_until_idle(timeout=60)

The worker runs the same tasks as a worker process (``workers.celery.tasks``), one at a time
(solo pool). The beat loop sends the beat schedule's tasks on their intervals through the
same broker. ``run_until_idle`` waits until nothing is left: no message queued or running,
no operation QUEUED/SUBMITTED, no grant PENDING/PROVISIONING/REVOKING.
"""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack
from typing import Any

from celery import Celery

from models.errors import ConfigError
from tasks.events import NOTIFY_SWEEP
from workers.runtime import Runtime, set_runtime

IDLE_POLL = 0.05
BEAT_TICK = 0.1


class EmbeddedWorker:
    """A Celery worker thread on the in-process broker, with an optional beat thread."""

    def __init__(self, runtime: Runtime, *, app: Celery | None = None,
                 beat: bool = True) -> None:
        app = app if app is not None else _project_app()
        if not str(app.conf.broker_url).startswith("memory"):
            raise ConfigError(
                f"the embedded worker needs the in-process broker, not {app.conf.broker_url}",
                hint="unset GRANTLEDGER_BROKER_URL for the embedded mode, or run "
                     "`grantledger worker` against Redis")
        self.runtime, self.app, self.with_beat = runtime, app, beat
        self._stack = ExitStack()
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self._previous: Runtime | None = None

    def start(self) -> EmbeddedWorker:
        """Start the worker (and beat) threads; tasks see ``runtime`` as ``get_runtime()``."""
        from celery.contrib.testing.worker import start_worker

        import workers.celery.tasks  # noqa: F401 - registers the tasks on the app

        self._previous = set_runtime(self.runtime)
        _forget_requests()
        self._stack.enter_context(start_worker(
            self.app, pool="solo", concurrency=1, perform_ping_check=False,
            loglevel="WARNING", shutdown_timeout=30.0))
        if self.with_beat:
            self._beat = threading.Thread(target=self._beat_loop, name="grantledger-beat",
                                          daemon=True)
            self._beat.start()
        return self

    def stop(self) -> None:
        """Stop beat, let the running task finish, stop the worker, restore the runtime."""
        from celery.worker import state

        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        # The worker checks for shutdown between broker reads that block up to 2 s, and reads
        # once more after deciding to stop: ask it to stop, then wake both reads with a task
        # that does nothing.
        state.should_terminate = 0
        for _ in range(2):
            self.app.send_task(NOTIFY_SWEEP)
        self._stack.close()
        _forget_requests()
        set_runtime(self._previous)

    def __enter__(self) -> EmbeddedWorker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- beat ---------------------------------------------------------------------------------

    def _beat_loop(self) -> None:
        """Send each periodic task on its interval; the sweeps once at start."""
        from workers.celery.app import beat_schedule

        entries = beat_schedule(self.runtime.settings)
        now = time.monotonic()
        due = {name: now if "sweep" in name else now + _seconds(entry["schedule"])
               for name, entry in entries.items()}
        while not self._stop.wait(BEAT_TICK):
            now = time.monotonic()
            for name, entry in entries.items():
                if now >= due[name]:
                    self.app.send_task(entry["task"], **entry.get("options", {}))
                    due[name] = now + _seconds(entry["schedule"])

    # -- waiting ------------------------------------------------------------------------------

    def pending(self) -> dict[str, int]:
        """What is still to do: messages, running tasks, unsettled operations and grants."""
        from celery.worker import state
        from kombu.transport.memory import Channel

        from tasks.sync.views import unsettled

        with self.runtime.sessions() as session:
            work = unsettled(session)
        return {"messages": sum(q.qsize() for q in list(Channel.queues.values())),
                "tasks": len(state.active_requests) + len(state.reserved_requests), **work}

    def run_until_idle(self, timeout: float) -> bool:
        """Wait until ``pending()`` is all zero (True) or ``timeout`` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while any(self.pending().values()):
            if time.monotonic() >= deadline:
                return False
            time.sleep(IDLE_POLL)
        return True


def _forget_requests() -> None:
    """Celery keeps the requests a worker holds in module globals; one that stopped with
    countdown tasks still scheduled leaves them there (their messages go back to the broker),
    and the next worker in this process would never look idle."""
    from celery.worker import state

    for held in (state.requests, state.reserved_requests, state.active_requests,
                 state.scheduled_requests):
        held.clear()


def _project_app() -> Celery:
    from workers.celery.app import celery_app

    return celery_app


def _seconds(schedule: Any) -> float:
    """Seconds of a beat schedule entry (a timedelta or a celery schedule)."""
    return schedule.total_seconds() if hasattr(schedule, "total_seconds") \
        else schedule.run_every.total_seconds()

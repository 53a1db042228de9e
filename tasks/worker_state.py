"""What the workers and beat run with, kept in the ledger (kv) for the CLI and the API: the
settings a worker started with (drift mode, intervals) and when each scheduled job last ran.

`plan` and `sync --dry-run` plan with the workers' drift mode, not the CLI's own; `status`
shows each beat job's last run and, from the beat's interval, its next one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.ledger.db import transaction
from models.ledger.kv import read_state, write_state
from models.ledger.tables import KvState

WORKER_SETTINGS = "workers.settings"
BEAT_SCHEDULE = "beat.schedule"
LAST_RUN = "schedule.last_run."  # + the beat job's name
RECORDED_SETTINGS = ("drift_mode", "sync_interval", "import_interval", "expiry_interval",
                     "poll_sweep_interval", "status_polling", "aws_mode")


def record_worker_settings(*, sessions: sessionmaker[Session], settings: Any) -> None:
    """Store the settings this worker process runs with (at its start)."""
    with transaction(sessions) as session:
        write_state(session, WORKER_SETTINGS,
                    {name: getattr(settings, name) for name in RECORDED_SETTINGS})


def record_beat_schedule(*, sessions: sessionmaker[Session],
                         schedule: Mapping[str, Mapping[str, Any]]) -> None:
    """Store the beat's jobs and their intervals in seconds (at the beat's start)."""
    with transaction(sessions) as session:
        write_state(session, BEAT_SCHEDULE, intervals(schedule))


def record_job_run(*, sessions: sessionmaker[Session], job: str, state: str) -> None:
    """Note that a scheduled job just ran (stamped by the database clock)."""
    with transaction(sessions) as session:
        write_state(session, f"{LAST_RUN}{job}", {"state": state})


def intervals(schedule: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """A Celery beat schedule as {job: seconds between runs}."""
    return {job: _seconds(entry["schedule"]) for job, entry in schedule.items()}


def workers_drift_mode(session: Session) -> str | None:
    """The drift mode the workers last started with, or None if none recorded it."""
    return (read_state(session, WORKER_SETTINGS) or {}).get("drift_mode")


def job_runs(session: Session, *, fallback: Mapping[str, float],
             now: datetime) -> list[dict[str, Any]]:
    """Each beat job: its interval (the beat's recorded one, else ``fallback``), last run,
    its state, and when it is next due."""
    recorded = read_state(session, BEAT_SCHEDULE)
    every = recorded or dict(fallback)
    runs = {key.removeprefix(LAST_RUN): (value, at) for key, value, at in session.execute(
        select(KvState.key, KvState.value, KvState.updated_at)
        .where(KvState.key.like(f"{LAST_RUN}%")))}
    rows = []
    for job, seconds in every.items():
        value, last = runs.get(job, ({}, None))
        due = last + timedelta(seconds=seconds) if last else None
        rows.append({"job": job, "every": _duration(seconds), "last_run": last,
                     "last_state": (value or {}).get("state"),
                     "next_run": max(due, now) if due else None,
                     "schedule_from": "beat" if recorded else "this process's settings"})
    return rows


def _seconds(schedule: Any) -> float:
    run_every = getattr(schedule, "run_every", schedule)
    return run_every.total_seconds() if isinstance(run_every, timedelta) else float(run_every)


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"

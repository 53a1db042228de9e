"""One import at a time, across every process sharing the ledger.

PostgreSQL: a session-level advisory lock held on a dedicated autocommit connection for the
whole run (fetch included, which takes minutes in a large organization, so no transaction
stays open meanwhile). A killed process drops its connection and with it the lock.
SQLite (embedded mode, one process): an in-process lock per database URL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, func, select

LOCK_NAME = "grantledger:import"
POLL_SECONDS = 0.5

_local_locks: dict[str, threading.Lock] = {}
_local_locks_guard = threading.Lock()


@contextmanager
def import_lock(engine: Engine, *, wait: float = 0.0) -> Iterator[bool]:
    """Hold the import lock while the block runs; yields False if another run holds it
    for longer than ``wait`` seconds (the block then runs without it and must not import)."""
    if engine.dialect.name != "postgresql":
        lock = _local_lock(str(engine.url))
        held = lock.acquire(timeout=wait) if wait > 0 else lock.acquire(blocking=False)
        try:
            yield held
        finally:
            if held:
                lock.release()
        return
    key = func.hashtextextended(LOCK_NAME, 0)
    with engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        deadline = time.monotonic() + wait
        held = bool(connection.scalar(select(func.pg_try_advisory_lock(key))))
        while not held and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            held = bool(connection.scalar(select(func.pg_try_advisory_lock(key))))
        try:
            yield held
        finally:
            if held:
                connection.scalar(select(func.pg_advisory_unlock(key)))


def _local_lock(url: str) -> threading.Lock:
    with _local_locks_guard:
        return _local_locks.setdefault(url, threading.Lock())

"""Every lock the ledger serializes work with, in one place.

``named_lock``: one holder at a time across every process sharing the ledger (PostgreSQL: a
session advisory lock on a connection of its own, dropped with the connection if the holder
dies; SQLite, one embedded process: an in-process lock). ``serialize``: a transaction-scoped
lock for writers that must not interleave.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

FULL_SYNC_LOCK = "grantledger.sync.full"
RECONCILE_LOCK = "grantledger.reconcile"
IMPORT_LOCK = "grantledger:import"
SWEEP_LOCK = "grantledger:expiry-sweep"
POLL_SECONDS = 0.5

_local_locks: dict[tuple[str, str], threading.Lock] = {}
_local_locks_guard = threading.Lock()


@contextmanager
def named_lock(engine: Engine, name: str, *, wait: float = 0.0) -> Iterator[bool]:
    """Hold lock ``name`` for the block: True if held, False if another holder kept it for
    longer than ``wait`` seconds (the block then runs without it and must not do the work)."""
    if engine.dialect.name != "postgresql":
        lock = _local_lock(str(engine.url), name)
        held = lock.acquire(timeout=wait) if wait > 0 else lock.acquire(blocking=False)
        try:
            yield held
        finally:
            if held:
                lock.release()
        return
    key = func.hashtextextended(name, 0)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
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


def serialize(session: Session, name: str) -> None:
    """Wait for a named transaction-scoped lock (PostgreSQL; SQLite already has one writer)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(name, 0))))


def _local_lock(url: str, name: str) -> threading.Lock:
    with _local_locks_guard:
        return _local_locks.setdefault((url, name), threading.Lock())

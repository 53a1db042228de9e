"""Engines, sessions and the one transaction boundary.

PostgreSQL is the production ledger (``postgresql+psycopg://...``); SQLite is the embedded
ledger (``sqlite:///grantledger.db``) for a single process. On SQLite every transaction
starts with ``BEGIN IMMEDIATE``: it takes the write lock up front, so concurrent threads wait
for each other (busy timeout) instead of failing when a reader later tries to write.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000


def make_engine(url: str, **engine_options: Any) -> Engine:
    """An engine configured for the ledger on PostgreSQL or SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, **engine_options)
        _configure_sqlite(engine)
        return engine
    if parsed.drivername == "postgresql":
        # psycopg 3 is the driver we ship; a bare postgresql:// URL means it too.
        parsed = parsed.set(drivername="postgresql+psycopg")
    engine_options.setdefault("pool_pre_ping", True)
    return create_engine(parsed, **engine_options)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin, so that
        # SAVEPOINTs and transactional DDL behave (SQLAlchemy's documented pysqlite recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to ``engine``; loaded rows stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit when the block ends, roll back if it raises."""
    with sessions() as session, session.begin():
        yield session

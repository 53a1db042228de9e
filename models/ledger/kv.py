"""Small named JSON documents kept in the ledger: sync cursors, last full-sync summary, leases."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from models.ledger.base import db_now
from models.ledger.tables import KvState
from models.ledger.upsert import dialect_insert


def read_state(session: Session, key: str, default: Any = None) -> Any:
    """The document stored under ``key``, or ``default``."""
    value = session.scalar(select(KvState.value).where(KvState.key == key))
    return default if value is None else value


def write_state(session: Session, key: str, value: Any) -> None:
    """Store ``value`` under ``key`` (insert or replace), stamped by the database clock."""
    statement = dialect_insert(session, KvState).values(key=key, value=value)
    statement = statement.on_conflict_do_update(
        index_elements=["key"], set_={"value": statement.excluded.value, "updated_at": db_now()},
    )
    session.execute(statement)


def add_state(session: Session, key: str, value: Any) -> bool:
    """Store ``value`` under ``key`` unless a document is there already; True if this call
    stored it (of concurrent writers, exactly one)."""
    statement = (dialect_insert(session, KvState).values(key=key, value=value)
                 .on_conflict_do_nothing(index_elements=["key"]).returning(KvState.key))
    return session.execute(statement).first() is not None


def delete_state(session: Session, key: str) -> bool:
    """Remove the document under ``key``; True if there was one (of concurrent callers,
    exactly one)."""
    statement = delete(KvState).where(KvState.key == key).returning(KvState.key)
    return session.execute(statement).first() is not None


def state_updated_at(session: Session, key: str) -> datetime | None:
    """When the document under ``key`` was last written (database clock), or None."""
    return session.scalar(select(KvState.updated_at).where(KvState.key == key))

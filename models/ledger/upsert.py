"""``INSERT ... ON CONFLICT`` for the dialect a session is bound to (PostgreSQL or SQLite).

Both dialects speak the same upsert (including a partial index as the conflict target), and
SQLAlchemy exposes it through one method name per dialect module.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from models.errors import LedgerError


def dialect_insert(session: Session, entity: Any) -> Any:
    """An ``insert(entity)`` that has ``on_conflict_do_nothing`` / ``on_conflict_do_update``."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(entity)
    if name == "sqlite":
        return sqlite.insert(entity)
    raise LedgerError(f"the ledger supports PostgreSQL and SQLite, not {name}",
                      hint="set GRANTLEDGER_DATABASE_URL to postgresql+psycopg://... or sqlite:///")


def dialect_name(session: Session) -> str:
    """``postgresql`` or ``sqlite``."""
    return session.get_bind().dialect.name

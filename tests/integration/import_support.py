"""Helpers for the import tests (their fixtures are in ``import_fixtures``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.ledger import tables
from models.ledger.base import Base
from workers.sandbox import Sandbox
from workers.settings import Settings

SMALL_FIXTURE = Path(__file__).resolve().parents[2] / "ops" / "examples" / "sandbox-small.yaml"
# Values that move on every run by design: when an account was last seen, the last summary.
VOLATILE_COLUMNS = {"last_seen_at"}
VOLATILE_KV = {"import.last"}


def sandbox_settings(sandbox: Sandbox, database_url: str, **changes: Any) -> Settings:
    """Settings pointed at ``sandbox`` and ``database_url``; our limiter out of the way."""
    return Settings(
        database_url=database_url, broker_url="memory://", aws_endpoint_url=sandbox.endpoint_url,
        instance_arn=sandbox.instance_arn, identity_store_id=sandbox.identity_store_id,
        scim_url=sandbox.scim_url, scim_token=SecretStr(sandbox.scim_token),
        sso_admin_rate=10_000, identitystore_rate=10_000, scim_rate=10_000, **changes)


def ledger_dump(sessions: sessionmaker[Session]) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table but the audit trail, comparable between two runs."""
    dump: dict[str, list[dict[str, Any]]] = {}
    with sessions() as session:
        for table in Base.metadata.sorted_tables:
            if table.name == tables.AuditEvent.__tablename__:
                continue
            rows = [{k: v for k, v in row.items() if k not in VOLATILE_COLUMNS}
                    for row in session.execute(select(table)).mappings()]
            if table.name == tables.KvState.__tablename__:
                rows = [row for row in rows if row["key"] not in VOLATILE_KV]
            dump[table.name] = sorted(rows, key=repr)
    return dump


def audit_actions(sessions: sessionmaker[Session]) -> list[str]:
    """The actions of the audit trail, oldest first."""
    with sessions() as session:
        return list(session.scalars(select(tables.AuditEvent.action)
                                    .order_by(tables.AuditEvent.id)))


def rows(sessions: sessionmaker[Session], table: type) -> list[Any]:
    """Every row of one ledger table."""
    with sessions() as session:
        return list(session.scalars(select(table)))

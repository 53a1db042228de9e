"""Alembic environment: the ledger tables' metadata, on a connection given or made here.

``models.ledger.migrate`` passes an open connection (``config.attributes["connection"]``) so
the whole upgrade is one transaction on the engine the application configures. The alembic
command line uses ``sqlalchemy.url`` or ``GRANTLEDGER_DATABASE_URL``.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy.engine import Connection

from models.ledger import tables  # noqa: F401 - registers every table on the metadata
from models.ledger.base import Base
from models.ledger.db import make_engine

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("GRANTLEDGER_DATABASE_URL")
    if not url:
        raise SystemExit("set GRANTLEDGER_DATABASE_URL (or sqlalchemy.url) to migrate")
    return url


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things: later migrations rebuild tables in batch mode.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        _run(given)
        return
    engine = make_engine(_url())
    try:
        with engine.begin() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()

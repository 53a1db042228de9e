"""Fixtures for the ledger tests, on real PostgreSQL and on a SQLite file.

Loaded by the ledger test modules through ``pytest_plugins``. Each database is migrated to
head once per session. The ``session`` fixture runs a test inside an outer transaction that
is rolled back afterwards (SQLAlchemy's "join a session into an external transaction"
recipe); tests that need several connections use ``committed`` and clean up what they wrote.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, delete
from sqlalchemy.orm import Session, sessionmaker

from models.ledger import migrate
from models.ledger.db import make_engine, session_factory, transaction
from models.ledger.tables import Account, Grant, Operation, PermissionSet
from tests.integration.ledger_support import Catalog, add_catalog, new_catalog


@pytest.fixture(scope="session")
def sqlite_ledger_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'ledger.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def postgresql_ledger_url(pg_url: str) -> str:
    migrate.upgrade(pg_url)
    return pg_url


@pytest.fixture(scope="session", params=["postgresql", "sqlite"])
def ledger_url(request: pytest.FixtureRequest) -> str:
    """The migrated ledger database, once per dialect."""
    return request.getfixturevalue(f"{request.param}_ledger_url")


@pytest.fixture(scope="session")
def engine(ledger_url: str) -> Iterator[Engine]:
    engine = make_engine(ledger_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session whose every commit is a SAVEPOINT inside a transaction rolled back at the end."""
    with engine.connect() as connection:
        outer = connection.begin()
        session = Session(bind=connection, join_transaction_mode="create_savepoint")
        try:
            yield session
        finally:
            session.close()
            outer.rollback()


@pytest.fixture
def catalog(session: Session) -> Catalog:
    """An account and a permission set inside the test's rolled-back transaction."""
    known = new_catalog()
    add_catalog(session, known)
    return known


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


@pytest.fixture
def committed(sessions: sessionmaker[Session]) -> Iterator[Catalog]:
    """A committed account and permission set; every grant on them is deleted afterwards."""
    known = new_catalog()
    with transaction(sessions) as session:
        add_catalog(session, known)
    yield known
    with transaction(sessions) as session:
        session.execute(delete(Operation).where(Operation.account_id == known.account_id))
        session.execute(delete(Grant).where(Grant.account_id == known.account_id))
        session.execute(delete(Account).where(Account.id == known.account_id))
        session.execute(delete(PermissionSet).where(
            PermissionSet.arn == known.permission_set_arn))

"""Fixtures for the service and resource-CLI tests, loaded through ``pytest_plugins``.

The tests apply fixed names (alice, sre, ...) and commit, so they run in databases of their
own: a PostgreSQL database created next to the session's ``pg_url`` one and a SQLite file,
both migrated once and emptied (audit trail aside: it is append-only) after every test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from models.ledger import migrate
from models.ledger.db import make_engine, session_factory
from tests.conftest import throwaway_database
from tests.integration.services_support import wipe


@pytest.fixture(scope="session")
def services_postgresql_url(pg_url: str) -> Iterator[str]:
    """A migrated PostgreSQL database of our own on the test server."""
    with throwaway_database("gl_services", migrated=True) as url:
        yield url


@pytest.fixture(scope="session")
def services_sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('services') / 'ledger.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session", params=["postgresql", "sqlite"])
def services_url(request: pytest.FixtureRequest) -> str:
    """A migrated ledger of our own, once per dialect."""
    return request.getfixturevalue(f"services_{request.param}_url")


@pytest.fixture(scope="session")
def services_sessions(services_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(services_url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def ledger(services_sessions: sessionmaker[Session]) -> Iterator[sessionmaker[Session]]:
    """Sessions on an empty ledger (but for earlier tests' audit events), emptied afterwards."""
    yield services_sessions
    wipe(services_sessions)


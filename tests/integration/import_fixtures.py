"""Fixtures for the import tests, loaded through ``pytest_plugins``.

Imports commit, so every test gets an empty ledger of its own: a fresh schema in the
session's PostgreSQL database (a schema is ten times cheaper than a database), or a SQLite
file. Runtimes are built from settings, never patched.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from models.ledger import migrate
from tests.integration.import_support import SMALL_FIXTURE, sandbox_settings
from workers.runtime import Runtime
from workers.sandbox import Sandbox


@pytest.fixture
def postgres_ledger(pg_url: str) -> Iterator[str]:
    """An empty, migrated ledger in a schema of its own, dropped afterwards."""
    schema = f"import_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{pg_url}?options=-csearch_path%3D{schema}"
    migrate.upgrade(url)
    yield url
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def sqlite_ledger(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture(params=["postgres", "sqlite"])
def ledger_url(request: pytest.FixtureRequest) -> str:
    """An empty ledger, once on each dialect."""
    return request.getfixturevalue(f"{request.param}_ledger")


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A sandbox seeded with ops/examples/sandbox-small.yaml, no throttling."""
    with Sandbox(settle_delay=0.0).start() as running:
        running.seed(SMALL_FIXTURE)
        yield running


@pytest.fixture
def runtime(sandbox: Sandbox, ledger_url: str) -> Iterator[Runtime]:
    built = Runtime(sandbox_settings(sandbox, ledger_url))
    yield built
    built.close()

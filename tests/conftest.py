"""Shared fixtures: real PostgreSQL and Redis, failing (not skipping) under CI=true."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

PG_ADMIN_URL = os.environ.get(
    "GRANTLEDGER_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("GRANTLEDGER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def service_missing(what: str, err: Exception) -> None:
    """Under CI a missing service fails the test; on a laptop it skips with the reason."""
    message = f"{what} is not reachable: {err}"
    if IN_CI:
        pytest.fail(message + " (CI=true: services are required)")
    pytest.skip(message)


@contextmanager
def throwaway_database(prefix: str, *, migrated: bool = False) -> Iterator[str]:
    """A PostgreSQL database of its own (migrated to head if asked), dropped afterwards."""
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception as err:  # noqa: BLE001 - any connection failure means "no postgres"
        service_missing("PostgreSQL", err)
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        if migrated:
            from models.ledger import migrate

            migrate.upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"
            ), {"n": name})
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A throwaway PostgreSQL database for this test session, dropped afterwards."""
    with throwaway_database("gl_test") as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis database number of its own for this session (flushed before use)."""
    import redis

    db = 9
    url = REDIS_URL.rsplit("/", 1)[0] + f"/{db}"
    try:
        client = redis.Redis.from_url(url)
        client.ping()
        client.flushdb()
    except Exception as err:  # noqa: BLE001
        service_missing("Redis", err)
    return url

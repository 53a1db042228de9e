"""Fixtures for the API tests (loaded through ``pytest_plugins``; helpers in api_support).

The API runs in-process (FastAPI's TestClient) over a Runtime pointed at a PostgreSQL
database of its own, migrated once and emptied after every test (the append-only audit
trail aside). The world is the access-request tests' one: Production / Staging / Sandbox
accounts, four permission sets with their system roles, the example roles, and users
alice (developer), bob and carol (security reviewers), dave (developer + break-glass).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from models.ledger.db import transaction
from tests.conftest import throwaway_database
from tests.integration.api_support import api_settings
from tests.integration.requests_support import ROLES, World, add_catalog
from tests.integration.services_support import wipe
from workers.api import create_app
from workers.runtime import Runtime


@pytest.fixture(scope="session")
def api_db_url(pg_url: str) -> Iterator[str]:
    """A migrated PostgreSQL database for the API tests alone."""
    with throwaway_database("gl_api", migrated=True) as url:
        yield url


@pytest.fixture(scope="session")
def api_redis_url(redis_url: str) -> str:
    """A Redis database of the API tests' own: workers that other test sessions may run on
    the shared one would consume the queues these tests look into."""
    import redis

    url = redis_url.rsplit("/", 1)[0] + "/12"
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture
def api_runtime(api_db_url: str) -> Iterator[Runtime]:
    """A runtime on the API database, emptied after the test."""
    built = Runtime(api_settings(api_db_url))
    yield built
    wipe(built.sessions)
    built.close()


@pytest.fixture
def client(api_runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(api_runtime)) as test_client:
        yield test_client


@pytest.fixture
def api_world(api_runtime: Runtime) -> World:
    """The access-request world, committed in the API database."""
    with transaction(api_runtime.sessions) as session:
        add_catalog(session)
    built = World(api_runtime.sessions)
    for name, spec in ROLES.items():
        built.add_role(name, spec)
    built.add_user("alice", ["developer"])
    built.add_user("bob", ["security-reviewer"])
    built.add_user("carol", ["security-reviewer"])
    built.add_user("dave", ["developer", "oncall-breakglass"])
    return built

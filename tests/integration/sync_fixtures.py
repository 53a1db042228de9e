"""Fixtures of the sync tests (loaded through ``pytest_plugins``; helpers in sync_support).

Per module: a PostgreSQL database of its own and one in-process Sandbox (settle 0.05 s).
Per test: both emptied and the sandbox seeded again (``sync_world``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.sync_support import World, create_database, sandbox_settings
from workers.celery.app import celery_app
from workers.runtime import Runtime, set_runtime
from workers.sandbox import Sandbox


@pytest.fixture(scope="module")
def sync_db_url() -> Iterator[str]:
    yield from create_database()


@pytest.fixture(scope="module")
def sync_sandbox() -> Iterator[Sandbox]:
    with Sandbox(settle_delay=0.05).start() as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def sync_runtime(sync_db_url: str, sync_sandbox: Sandbox) -> Iterator[Runtime]:
    runtime = Runtime(sandbox_settings(sync_sandbox, sync_db_url))
    yield runtime
    runtime.close()


@pytest.fixture
def sync_world(sync_runtime: Runtime, sync_sandbox: Sandbox) -> World:
    world = World(sync_runtime, sync_sandbox)
    world.reset()
    return world


@pytest.fixture
def cli_world(sync_sandbox: Sandbox, tmp_path) -> Iterator[World]:
    """The embedded mode as the CLI runs it: a SQLite ledger of the test's own, the
    in-process broker, the module's sandbox; alice may hold Production/ReadOnlyAccess."""
    celery_app.control.purge()
    runtime = Runtime(sandbox_settings(sync_sandbox, f"sqlite:///{tmp_path / 'ledger.db'}"))
    world = World(runtime, sync_sandbox)
    world.reset()
    world.add_role("prod-read", allow=[("Production", "ReadOnlyAccess")])
    world.add_user("alice", roles=["prod-read"])
    previous = set_runtime(runtime)
    yield world
    set_runtime(previous)
    runtime.close()

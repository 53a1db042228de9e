"""The embedded mode: a real Celery worker on the in-process broker runs the sync's work
(submit, poll, targeted sync) and the beat loop's sweeps, on a SQLite ledger."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tasks.events import desired_state_changed, enqueue
from tasks.sync.engine import full_sync
from tests.integration.sync_support import World, sandbox_settings
from workers.celery.app import celery_app
from workers.celery.embedded import EmbeddedWorker
from workers.runtime import Runtime
from workers.sandbox import Sandbox

pytest_plugins = ["tests.integration.sync_fixtures"]


@pytest.fixture
def embedded_world(sync_sandbox: Sandbox, tmp_path) -> Iterator[World]:
    celery_app.control.purge()  # messages other tests left in the in-process broker
    runtime = Runtime(sandbox_settings(sync_sandbox, f"sqlite:///{tmp_path / 'ledger.db'}",
                                       expiry_interval=0.2, poll_sweep_interval=0.2))
    world = World(runtime, sync_sandbox)
    world.reset()
    yield world
    runtime.close()


def test_embedded_worker_drains_a_sync_and_a_targeted_change(embedded_world: World):
    world = embedded_world
    world.add_role("prod-read", allow=[("Production", "ReadOnlyAccess")])
    world.add_user("alice", roles=["prod-read"])
    world.add_user("bob")
    world.add_list("readers", roles=["prod-read"])
    with EmbeddedWorker(world.runtime) as worker:
        enqueue(full_sync(runtime=world.runtime).next_work())
        assert worker.run_until_idle(timeout=20)
        assert world.aws_assignments() == {
            world.key("user:alice", "Production", "ReadOnlyAccess"),
            world.key("group:readers", "Production", "ReadOnlyAccess")}
        world.add_member("readers", "bob")
        desired_state_changed(lists=["readers"], reason="bob joined")
        assert worker.run_until_idle(timeout=20)
        assert world.group_members("readers") == {"bob"}
        pending = worker.pending()  # (beat keeps sending sweeps: messages come and go)
        assert (pending["operations"], pending["grants"]) == (0, 0)


def test_embedded_beat_expires_grants_without_being_asked(embedded_world: World):
    world = embedded_world
    world.add_user("alice")
    world.add_request("alice", resources=["111111111111/ReadOnlyAccess"], lasts=4.0)
    with EmbeddedWorker(world.runtime) as worker:
        enqueue(full_sync(runtime=world.runtime).next_work())
        assert worker.run_until_idle(timeout=20)
        key = world.key("user:alice", "Production", "ReadOnlyAccess")
        assert world.sandbox.calls()["sso-admin:CreateAccountAssignment"] == 1
        # nothing but the beat loop's expiry sweep revokes it once the second has passed
        assert _wait(lambda: world.grants()[0].state == "REVOKED", timeout=20)
        assert worker.run_until_idle(timeout=20)
    assert key not in world.aws_assignments()
    assert world.sandbox.calls()["sso-admin:DeleteAccountAssignment"] == 1


def test_embedded_worker_refuses_a_remote_broker(sync_runtime: Runtime):
    from celery import Celery

    from models.errors import ConfigError

    with pytest.raises(ConfigError, match="in-process broker"):
        EmbeddedWorker(sync_runtime, app=Celery(broker="redis://127.0.0.1:6379/0"))


def _wait(condition, *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True

"""Offboarding end to end: `grantledger revoke --wait` and `restore --wait` as processes,
with real Celery workers on Redis, a PostgreSQL ledger and a Sandbox served from this test.
The user keeps nothing in AWS and no group membership, a full sync run by the workers gives
nothing back, restore does; an unknown user exits 2 and changes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from functools import partial

from celery import Celery

from models.ledger.kv import read_state
from tasks import events
from tasks.events import Next, enqueue
from tests import waiting
from tests.e2e.conftest import REPO, Workers, worker_environment
from tests.integration.sync_support import World
from workers.settings import Settings

DEADLINE = 60.0


eventually = partial(waiting.eventually, timeout=DEADLINE)


def settled(world: World) -> bool:
    from tasks.sync.views import unsettled

    with world.runtime.sessions() as session:
        return not any(unsettled(session).values())


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workers.cli.main", *args], cwd=REPO,
                          env=worker_environment(settings), capture_output=True, text=True,
                          timeout=90)


def full_sync_by_workers(world: World, app: Celery) -> None:
    """A full sync run by the workers (its report saved under a key of its own), settled."""
    key = f"e2e.sync.{uuid.uuid4().hex}"
    enqueue([Next(events.SYNC_FULL, kwargs={"report_key": key})], app=app)

    def done() -> bool:
        with world.runtime.sessions() as session:
            ran = read_state(session, key) is not None
        return ran and settled(world)

    eventually(done, what="full sync run and settled")


def holds(world: World, user: str) -> set[tuple[str, str]]:
    """(account, permission set ARN) the user holds directly in AWS."""
    principal_id = world.user_id(user)
    return {(k[2], k[3]) for k in world.truth() if k[0] == "USER" and k[1] == principal_id}


def test_revoke_and_restore_as_processes_with_workers(workers: Workers, e2e_world: World,
                                                      e2e_settings: Settings, e2e_app: Celery):
    e2e_world.add_role("prod-read", allow=[("Production", "ReadOnlyAccess")])
    e2e_world.add_role("staging-admin", allow=[("Staging", "AdministratorAccess")])
    e2e_world.add_user("alice", roles=["prod-read", "staging-admin"])
    e2e_world.add_user("bob", roles=["prod-read"])
    e2e_world.add_list("admins", roles=["staging-admin"], users=["alice", "bob"])
    full_sync_by_workers(e2e_world, e2e_app)
    assert len(holds(e2e_world, "alice")) == 2
    assert e2e_world.group_members("admins") == {"alice", "bob"}

    done = cli(e2e_settings, "revoke", "--user", "alice", "--reason", "left (HR-1)", "--wait",
               "--timeout", "60", "-o", "json")
    assert done.returncode == 0, (done.stderr, workers.tail())
    summary = json.loads(done.stdout)
    assert [r["state"] for r in summary["removed"]] == ["REVOKED", "REVOKED"]
    assert summary["finished"] is True and summary["members_removed"] == 1
    assert holds(e2e_world, "alice") == set()
    assert e2e_world.group_members("admins") == {"bob"}

    full_sync_by_workers(e2e_world, e2e_app)
    assert holds(e2e_world, "alice") == set() and e2e_world.group_members("admins") == {"bob"}

    done = cli(e2e_settings, "restore", "--user", "alice", "--reason", "rehired", "--wait",
               "--timeout", "60", "-o", "json")
    assert done.returncode == 0, (done.stderr, workers.tail())
    assert json.loads(done.stdout)["finished"] is True
    assert len(holds(e2e_world, "alice")) == 2
    assert e2e_world.group_members("admins") == {"alice", "bob"}


def test_unknown_user_exits_2_and_changes_nothing(workers: Workers, e2e_world: World,
                                                  e2e_settings: Settings):
    done = cli(e2e_settings, "revoke", "--user", "nobody", "--reason", "x", "--wait")
    assert done.returncode == 2 and "user 'nobody' not found" in done.stderr
    assert e2e_world.grants() == [] and e2e_world.operations() == []

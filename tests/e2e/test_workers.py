"""End to end with real Celery worker processes on Redis, a PostgreSQL ledger and a Sandbox
served from this process: a change then a sync, every task delivered ten times, throttling,
and a worker child killed with SIGKILL in the middle of the work.

Everything waits by polling with a deadline; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from functools import partial

from celery import Celery
from sqlalchemy import select

from models.ledger import tables
from tasks import events
from tasks.events import Next, enqueue
from tasks.sync.engine import full_sync
from tests import waiting
from tests.e2e.conftest import REPO, Workers, worker_environment
from tests.integration.sync_support import World
from workers.settings import Settings

DEADLINE = 60.0


eventually = partial(waiting.eventually, timeout=DEADLINE)


def settled(world: World) -> bool:
    """No unsettled work left in the ledger."""
    from tasks.sync.views import unsettled

    with world.runtime.sessions() as session:
        return not any(unsettled(session).values())


def policy(world: World, users: int) -> set:
    """``users`` users reading Production, and one access list administering it."""
    world.add_role("prod-read", allow=[("Production", "ReadOnlyAccess")])
    world.add_role("prod-admin", allow=[("Production", "AdministratorAccess")])
    names = [f"user{i:02d}" for i in range(users)]
    for name in names:
        world.add_user(name, roles=["prod-read"])
    world.add_list("admins", roles=["prod-admin"], users=names[:2])
    return set(names)


def expected(world: World, names: set[str]) -> set:
    return {world.key(f"user:{n}", "Production", "ReadOnlyAccess") for n in names} | {
        world.key("group:admins", "Production", "AdministratorAccess")}


def ledger_matches_aws(world: World) -> bool:
    """Every ACTIVE grant's assignment exists, and AWS holds nothing else."""
    with world.runtime.sessions() as session:
        active = session.scalars(select(tables.Grant).where(tables.Grant.state == "ACTIVE"))
        keys = {(g.principal_type, g.principal_id, g.account_id, g.permission_set_arn)
                for g in active}
    return settled(world) and keys == world.truth()


def test_a_change_then_sync_makes_assignments_appear(workers: Workers, e2e_world: World,
                                                     e2e_settings: Settings):
    names = policy(e2e_world, 3)
    command = [sys.executable, "-m", "workers.cli.main", "sync", "--wait", "--timeout", "60",
               "-o", "json"]
    done = subprocess.run(command, cwd=REPO, env=worker_environment(e2e_settings),
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, "\n".join([
        done.stderr, "operations:", *map(str, _operations(e2e_world)),
        f"workers: {workers.tail()}"])
    summary = json.loads(done.stdout)
    assert summary["counts"]["created"] == 4 and summary["pending"] == {}
    assert e2e_world.aws_assignments() == expected(e2e_world, names)
    assert e2e_world.group_members("admins") == {"user00", "user01"}


def test_every_task_delivered_ten_times_does_everything_once(workers: Workers, e2e_world: World,
                                                             e2e_app: Celery):
    names = policy(e2e_world, 4)
    full_sync(runtime=e2e_world.runtime)  # operations recorded here, submitted by the workers
    e2e_world.add_user("late", roles=["prod-read"])
    work = [Next(events.PROVISION_SUBMIT, (o.id,)) for o in e2e_world.operations()]
    work += [Next(events.SYNC_FULL), Next(events.SYNC_PRINCIPALS, kwargs={"users": ["late"]})]
    deliver_ten_times(e2e_app, work)
    eventually(lambda: ledger_matches_aws(e2e_world) and len(e2e_world.operations()) == 6,
               what="ledger = AWS")
    deliver_ten_times(e2e_app, [Next(name, (o.id,)) for o in e2e_world.operations()
                                for name in (events.PROVISION_SUBMIT, events.POLL_OPERATION)])
    eventually(lambda: ledger_matches_aws(e2e_world), what="ledger = AWS again")
    operations = e2e_world.operations()
    per_key = Counter((o.principal_id, o.account_id, o.permission_set_arn) for o in operations)
    assert set(per_key.values()) == {1}, per_key
    assert {o.state for o in operations} == {"SUCCEEDED"}
    assert e2e_world.sandbox.calls()["sso-admin:CreateAccountAssignment"] == len(operations)
    assert e2e_world.aws_assignments() == expected(e2e_world, names | {"late"})


def deliver_ten_times(app: Celery, work: list[Next]) -> None:
    """Each task ten times with the same task id, interleaved (as redeliveries arrive)."""
    for _ in range(10):
        for index, item in enumerate(work):
            app.send_task(item.task, args=list(item.args), kwargs=dict(item.kwargs),
                          task_id=f"dup-{item.task}-{index}")


def test_sync_converges_under_heavy_throttling(workers: Workers, e2e_world: World,
                                               e2e_app: Celery):
    names = policy(e2e_world, 4)
    e2e_world.sandbox.faults.throttle_ratio = 0.5
    try:
        enqueue([Next(events.SYNC_FULL)], app=e2e_app)
        eventually(lambda: e2e_world.truth() == expected(e2e_world, names),
                   timeout=120, what="assignments under throttling")
        eventually(lambda: ledger_matches_aws(e2e_world), timeout=120, what="ledger = AWS")
    finally:
        e2e_world.sandbox.faults.throttle_ratio = 0.0
    assert sum(e2e_world.sandbox.throttled().values()) > 0
    assert e2e_world.aws_assignments() == expected(e2e_world, names)


def test_kill_9_of_a_worker_child_mid_run_then_restart(workers: Workers, e2e_world: World,
                                                       e2e_app: Celery, tmp_path):
    names = policy(e2e_world, 12)
    e2e_world.sandbox.faults.stalled = True  # keeps operations in flight while we strike
    report = full_sync(runtime=e2e_world.runtime)
    enqueue(report.next_work(), app=e2e_app)
    eventually(lambda: _count(e2e_world, "SUBMITTED") >= 4, what="operations in flight")
    for child in workers.children():
        os.kill(child, signal.SIGKILL)
    workers.stop()
    e2e_world.sandbox.faults.stalled = False
    restarted = Workers(workers.env, e2e_app).start(tmp_path)
    try:
        enqueue([Next(events.SYNC_FULL), Next(events.POLL_SWEEP)], app=e2e_app)
        eventually(lambda: _resync_until_equal(e2e_world, e2e_app), what="ledger = AWS")
    finally:
        restarted.stop()
        workers.start(tmp_path)  # the module's workers, for whatever runs next
    assert e2e_world.aws_assignments() == expected(e2e_world, names)


def _operations(world: World) -> list[tuple]:
    return [(o.id, o.kind, o.state, o.attempts, o.poll_count, o.request_id, o.next_poll_at,
             o.failure_reason) for o in world.operations()]


def _count(world: World, state: str) -> int:
    return sum(1 for o in world.operations() if o.state == state)


def _resync_until_equal(world: World, app: Celery) -> bool:
    """Ledger = AWS; while not, run the sweeps every two seconds (beat's job in a deployment)."""
    if ledger_matches_aws(world) and world.truth():
        return True
    if time.monotonic() - _resync_until_equal.last >= 2.0:  # type: ignore[attr-defined]
        enqueue([Next(events.POLL_SWEEP), Next(events.SYNC_FULL)], app=app)
        _resync_until_equal.last = time.monotonic()  # type: ignore[attr-defined]
    return False


_resync_until_equal.last = 0.0  # type: ignore[attr-defined]

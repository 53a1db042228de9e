"""Revocation without beat: real worker processes, no beat at all, and a grant that expires.
Only the workers' expiry watchdog (``workers/watchdog.py``) can revoke it. Also the Sentinel
failover drill, as the one command an operator runs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from models.ledger import tables
from models.ledger.enums import GrantState
from ops.drills.stack import REPO, Stack, StackOptions, stop_shared_sandbox
from ops.drills.workload import apply_people, approve_requests, request_grants, seed_catalog
from tasks import events
from tasks.events import Next
from tests.conftest import service_missing
from tests.waiting import eventually


@pytest.fixture(scope="module")
def drill_services(pg_url: str) -> Iterator[None]:
    if shutil.which("redis-server") is None:
        service_missing("redis-server", FileNotFoundError("redis-server is not installed"))
    yield
    stop_shared_sandbox()


def test_workers_revoke_expired_grants_when_no_beat_runs(drill_services: None):
    with Stack(StackOptions(beat=False, workers=1)) as stack:
        seed_catalog(stack)
        workload = apply_people(stack, users=2)
        request_ids = approve_requests(stack, workload, count=1, lasting=(20.0, 20.0))
        stack.enqueue([Next(events.SYNC_FULL),
                       events.sync_principals(users=workload.users[:1], reason="test")])

        def grant_state() -> GrantState | None:
            with stack.runtime.sessions() as session:
                grants = request_grants(session, request_ids)
            return grants[0].state if grants else None

        eventually(lambda: grant_state() is GrantState.ACTIVE, what="the grant ACTIVE",
                   timeout=60, tail=stack.tail)
        eventually(lambda: grant_state() is GrantState.REVOKED,
                   what="the expired grant REVOKED with no beat", timeout=60, tail=stack.tail)
        with stack.runtime.sessions() as session:
            actors = set(session.scalars(select(tables.AuditEvent.actor).where(
                tables.AuditEvent.action == "grant.expired")))
        assert actors == {"system:expiry"}
        assert "expiry watchdog: no expiry sweep" in stack.tail(chars=200_000)


def test_the_sentinel_failover_drill_passes(drill_services: None):
    done = subprocess.run([sys.executable, "-m", "ops.drills", "sentinel-failover", "--quick"],
                          cwd=REPO, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    row = next(line for line in done.stdout.splitlines()
               if line.startswith("| sentinel-failover"))
    assert "| PASS |" in row and "failover_s=" in row and "beat_lock=held" in row

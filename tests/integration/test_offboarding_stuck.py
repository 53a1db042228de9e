"""A revocation AWS keeps refusing (PostgreSQL + in-process Sandbox): after
``revoke_stuck_after_attempts`` failed deletes the grant is stuck, listed by
`get grants --stuck` with its attempts and AWS's reason, counted by `status` and the
``grantledger_stuck_revocations`` gauge, audited ``grant.stuck`` once (with its notification),
and still revoked once AWS stops failing."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from models.ledger import tables
from tasks.access.offboarding import remove_unexplained_assignments, revoke_user
from tasks.admin.status import ledger_status
from tasks.events import submit
from tests.integration.sync_support import World
from workers.cli.main import app, register_commands
from workers.metrics import ledger_registry, read_gauges, render_metrics
from workers.runtime import set_runtime

pytest_plugins = ["tests.integration.sync_fixtures"]
register_commands()

AWS_REASON = "An unexpected internal service exception was encountered"
STUCK_AFTER = 3


@pytest.fixture
def failing_world(sync_world: World) -> Iterator[World]:
    """alice holds one assignment; every delete AWS is asked for from now on fails."""
    sync_world.add_role("prod-read", allow=[("Production", "ReadOnlyAccess")])
    sync_world.add_user("alice", roles=["prod-read"])
    sync_world.sync()
    with sync_world.reconfigured(revoke_stuck_after_attempts=STUCK_AFTER) as world:
        world.sandbox.faults.fail_next(100, reason=AWS_REASON)
        previous = set_runtime(world.runtime)
        yield world
        set_runtime(previous)


def revoke(world: World) -> None:
    revocation = revoke_user(sessions=world.runtime.sessions, user="alice", reason="incident",
                             actor="secops")
    world.drain(revocation.next_work())
    world.drain([submit(i) for i in remove_unexplained_assignments(
        runtime=world.runtime, revocation=revocation, actor="secops")])


def stuck_events(world: World, since: int) -> tuple[list[str], list[str]]:
    """grant.stuck audit targets and queued grant.stuck notices after audit id ``since``."""
    with world.runtime.sessions() as session:
        events = session.scalars(select(tables.AuditEvent.target).where(
            tables.AuditEvent.id > since, tables.AuditEvent.action == "grant.stuck")).all()
        notices = session.scalars(select(tables.NotificationOutbox.event_key).where(
            tables.NotificationOutbox.event == "grant.stuck")).all()
    return list(events), list(notices)


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_a_delete_that_keeps_failing_becomes_stuck_listed_counted_and_audited_once(
        failing_world: World):
    with failing_world.runtime.sessions() as session:
        since = session.scalar(select(func.max(tables.AuditEvent.id))) or 0
    for _ in range(STUCK_AFTER - 1):
        revoke(failing_world)  # a revoke again retries at once, without the backoff
    [grant] = failing_world.grants(principal_name="alice")
    assert (grant.state, grant.attempts, grant.stuck) == ("FAILED", STUCK_AFTER - 1, False)
    revoke(failing_world)
    revoke(failing_world)  # one failure more: still one grant.stuck
    [grant] = failing_world.grants(principal_name="alice")
    assert (grant.state, grant.attempts, grant.stuck) == ("FAILED", STUCK_AFTER + 1, True)
    assert stuck_events(failing_world, since) == ([str(grant.id)], [f"grant.stuck:{grant.id}"])

    [listed] = json.loads(cli("get", "grants", "--stuck", "-o", "json"))
    assert (listed["id"], listed["attempts"], listed["reason"]) == (
        grant.id, STUCK_AFTER + 1, AWS_REASON)
    assert "attempts" in cli("get", "grants", "--stuck")
    assert json.loads(cli("status", "-o", "json"))["stuck_revocations"] == 1
    with failing_world.runtime.sessions() as session:
        assert ledger_status(session).stuck_revocations == 1
        assert read_gauges(session).stuck_revocations == 1
    exposition = render_metrics(ledger_registry(failing_world.runtime)).decode()
    assert "grantledger_stuck_revocations 1.0" in exposition

    failing_world.sandbox.faults.clear()
    revoke(failing_world)
    [grant] = failing_world.grants(principal_name="alice")
    assert (grant.state, grant.stuck) == ("REVOKED", False)
    assert failing_world.key("user:alice", "Production", "ReadOnlyAccess") \
        not in failing_world.truth()
    assert json.loads(cli("get", "grants", "--stuck", "-o", "json")) == []

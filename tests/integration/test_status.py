"""`grantledger status` reads failed, stuck, due and outstanding work from the ledger."""

from __future__ import annotations

import json
from datetime import datetime

from typer.testing import CliRunner

from models.ledger.base import database_time
from models.ledger.enums import GrantState, OperationState, SourceKind
from models.ledger.tables import Grant, Operation
from tasks.admin.status import ledger_status
from tests.integration.sync_support import World
from workers.cli.main import app, register_commands
from workers.runtime import set_runtime
from workers.settings import Settings
from workers.status import full_status, queue_depths

pytest_plugins = ["tests.integration.ledger_fixtures", "tests.integration.sync_fixtures"]
register_commands()


def grant(catalog, *, name: str, state: GrantState, **extra) -> Grant:
    return Grant(principal_type="USER", principal_name=name, account_id=catalog.account_id,
                 permission_set_arn=catalog.permission_set_arn,
                 source_kind=SourceKind.REQUEST, source_id=f"req-{name}", state=state, **extra)


def test_status_reports_failed_stuck_due_and_outstanding(session, catalog) -> None:
    from datetime import timedelta

    now = database_time(session)
    session.add_all([
        grant(catalog, name="failed", state=GrantState.FAILED,
              failure_reason="the USER assignee x was not found"),
        grant(catalog, name="stuck", state=GrantState.REVOKING, stuck=True, attempts=7),
        grant(catalog, name="overdue", state=GrantState.ACTIVE,
              expires_at=now - timedelta(minutes=1)),
        grant(catalog, name="later", state=GrantState.ACTIVE, expires_at=now + timedelta(hours=1)),
        Operation(kind="create_assignment", idempotency_key=f"k-{catalog.account_id}",
                  account_id=catalog.account_id, state=OperationState.SUBMITTED,
                  request_id="r-1"),
    ])
    session.flush()

    report = ledger_status(session)

    assert report.grants_by_state["FAILED"] >= 1 and report.grants_by_state["ACTIVE"] >= 2
    assert any(row["reason"] == "the USER assignee x was not found"
               for row in report.failed_grants)
    assert report.stuck_revocations >= 1
    assert report.overdue_expiries >= 1
    assert report.outstanding_operations >= 1
    names = [row["principal"] for row in report.next_expiries]
    assert names.index("USER:overdue") < names.index("USER:later")


def test_queue_depths_read_redis_lists(redis_url) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    client.delete("sync", "poll")
    client.rpush("sync", "a", "b")
    try:
        depths = queue_depths(Settings(broker_url=redis_url), ("sync", "poll"))
    finally:
        client.delete("sync")
    assert depths == {"sync": 2, "poll": 0}
    assert queue_depths(Settings(broker_url="memory://"), ("sync",)) == {"sync": None}


def test_full_status_survives_a_broker_that_is_down(pg_url) -> None:
    from models.ledger import migrate
    from workers.runtime import Runtime
    from workers.settings import Settings
    from workers.status import full_status

    migrate.upgrade(pg_url)
    runtime = Runtime(Settings(database_url=pg_url, broker_url="redis://127.0.0.1:1/0"))
    try:
        report = full_status(runtime)
    finally:
        runtime.close()
    assert report.broker_error and "unreachable" in report.broker_error
    assert report.queues and all(depth is None for depth in report.queues.values())
    assert "undelivered" in report.notifications


def status_cli(world: World, *args: str) -> str:
    previous = set_runtime(world.runtime)
    try:
        result = CliRunner().invoke(app, ["status", *args])
    finally:
        set_runtime(previous)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_status_shows_a_refused_status_listing_until_it_is_granted(sync_world: World) -> None:
    sync_world.add_role("prod-read", allow=[("Production", "ReadOnlyAccess")])
    sync_world.add_user("alice", roles=["prod-read"])
    assert full_status(sync_world.runtime).status_polling == {
        "mode": "list", "last_round_at": None, "listing_refused": False, "refused": {},
        "fix": None}

    sync_world.sandbox.faults.update({"denied": ["ListAccountAssignmentCreationStatus"]})
    sync_world.sync()  # the round's listing is refused: the create is described instead
    assert [g.state for g in sync_world.grants()] == ["ACTIVE"]
    refused = json.loads(status_cli(sync_world, "-o", "json"))["status_polling"]
    assert refused["mode"] == "list" and refused["listing_refused"] is True
    assert "sso:ListAccountAssignmentCreationStatus" in refused["refused"]["create"]
    assert "grantledger iam-policy" in refused["fix"]
    assert "GRANTLEDGER_STATUS_POLLING=describe" in refused["fix"]
    table = status_cli(sync_world)
    assert "create listing REFUSED" in table and "GRANTLEDGER_STATUS_POLLING=describe" in table

    sync_world.sandbox.faults.update({"denied": []})
    sync_world.add_user("bob", roles=["prod-read"])
    sync_world.sync()
    granted = full_status(sync_world.runtime).status_polling
    assert (granted["listing_refused"], granted["refused"], granted["fix"]) == (False, {}, None)
    assert granted["last_round_at"] >= datetime.fromisoformat(refused["last_round_at"])
    with sync_world.reconfigured(status_polling="describe") as world:
        assert full_status(world.runtime).status_polling["mode"] == "describe"

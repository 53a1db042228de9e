"""A refused SCIM token on real PostgreSQL and the Sandbox's SCIM server: the outage is
recorded, audited and notified once however many syncs meet it, shown by status and
/metrics, and its end is noticed by the first sync with a working token (tasks/scim_health).
"""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from models.ledger import tables
from tasks.admin.status import ledger_status
from tasks.sync.scim_health import outage
from tests.integration.sync_support import World
from tests.integration.test_status import status_cli
from workers.metrics import read_gauges

pytest_plugins = ["tests.integration.sync_fixtures"]


def admins(world: World) -> None:
    world.add_role("prod-admin", allow=[("Production", "AdministratorAccess")])
    world.add_user("alice")
    world.add_user("bob")
    world.add_list("admins", roles=["prod-admin"], users=["alice"])


def scim_events(world: World) -> list[tuple[str, str]]:
    """This test's audit events about SCIM (the trail is append-only: earlier tests' stay)."""
    with world.runtime.sessions() as session:
        audited = session.execute(select(tables.AuditEvent.action, tables.AuditEvent.reason)
                                  .where(tables.AuditEvent.target_kind == "scim",
                                         tables.AuditEvent.id > world.audit_mark)
                                  .order_by(tables.AuditEvent.id)).all()
    return [(action, reason) for action, reason in audited]


def scim_notices(world: World) -> list[str]:
    with world.runtime.sessions() as session:
        return list(session.scalars(select(tables.NotificationOutbox.event)
                                    .where(tables.NotificationOutbox.event.like("scim.%"),
                                           tables.NotificationOutbox.id > world.outbox_mark)
                                    .order_by(tables.NotificationOutbox.id)))


@pytest.fixture
def world(sync_world: World) -> World:
    """The sync world, remembering where the audit trail and the outbox stood."""
    with sync_world.runtime.sessions() as session:
        sync_world.audit_mark = session.scalar(select(func.max(tables.AuditEvent.id))) or 0
        sync_world.outbox_mark = session.scalar(
            select(func.max(tables.NotificationOutbox.id))) or 0
    return sync_world


def test_a_refused_token_is_one_outage_notified_once_then_its_end(world: World):
    admins(world)
    world.sync()
    assert world.group_members("admins") == {"alice"}
    world.add_member("admins", "bob")
    world.remove_member("admins", "alice")  # a revocation that only SCIM can carry

    with world.reconfigured(scim_token=SecretStr("revoked-token")) as broken:
        first, second, third = broken.sync(), broken.sync(lists=["admins"]), broken.sync()

    assert first.counts["scim_stopped"] == 1
    assert "scim_stopped" not in second.counts and "scim_stopped" not in third.counts
    assert any("401" in error for error in first.errors)
    assert world.group_members("admins") == {"alice"}  # nothing reached Identity Center
    [(action, reason)] = scim_events(world)
    assert action == "scim.stopped"
    assert "401" in reason and "removals included" in reason and "GRANTLEDGER_SCIM_TOKEN" in reason
    assert "revoked-token" not in reason
    assert scim_notices(world) == ["scim.stopped"]
    with world.runtime.sessions() as session:
        assert "401" in ledger_status(session).scim_outage["reason"]
        assert read_gauges(session).scim_push_stopped
    table = status_cli(world)
    assert "STOPPED since" in table and "GRANTLEDGER_SCIM_TOKEN" in table

    resumed = world.sync()  # the workers restarted with a working token

    assert resumed.counts["scim_resumed"] == 1
    assert world.group_members("admins") == {"bob"}
    assert [action for action, _ in scim_events(world)] == ["scim.stopped", "scim.resumed"]
    assert scim_notices(world) == ["scim.stopped", "scim.resumed"]
    with world.runtime.sessions() as session:
        assert outage(session) is None and not read_gauges(session).scim_push_stopped
    assert "scim_resumed" not in world.sync().counts
    assert "STOPPED" not in status_cli(world)


def test_an_outage_ends_with_a_working_token_even_with_nothing_to_push(world: World):
    admins(world)
    world.sync()
    world.add_user("carol")  # one user to push: the broken sync meets the refusal
    with world.reconfigured(scim_token=SecretStr("revoked-token")) as broken:
        assert broken.sync().counts["scim_stopped"] == 1
    with world.runtime.sessions() as session:
        assert outage(session) is not None
    world.sync()  # pushes carol, ends the outage
    with world.runtime.sessions() as session:
        assert outage(session) is None

    with world.reconfigured(scim_token=SecretStr("revoked-token")) as broken:
        broken.add_user("dave")
        assert broken.sync().counts["scim_stopped"] == 1  # a second outage notifies again
    calls = world.sandbox.calls()
    healed = world.sync(lists=["admins"])  # dave's push, or the probe, answers
    assert healed.counts["scim_resumed"] == 1
    assert sum(world.sandbox.calls().values()) > sum(calls.values())
    assert scim_notices(world) == ["scim.stopped", "scim.resumed"] * 2

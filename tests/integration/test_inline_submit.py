"""A targeted sync that starts a few operations sends them itself (no broker hop between an
approval and its create); one that starts many leaves them to the workers."""

from __future__ import annotations

from tasks import events
from tasks.provisioning.poll_round import INLINE_SUBMITS, submit_few_inline
from tasks.sync.engine import sync_principals
from tests.integration.sync_support import World

pytest_plugins = ["tests.integration.sync_fixtures"]


def test_a_targeted_sync_with_few_operations_submits_them_itself(sync_world: World):
    sync_world.add_role("prod-read", allow=[("Production", "ReadOnlyAccess")])
    sync_world.add_user("alice", roles=["prod-read"])
    report = sync_principals(runtime=sync_world.runtime, users=["alice"], reason="approved")
    left = submit_few_inline(sync_world.runtime, report.next_work())
    assert [item.task for item in left] == [events.POLL_ROUND]
    assert [o.state for o in sync_world.operations()] == ["SUBMITTED"]


def test_a_targeted_sync_with_many_operations_leaves_the_submits_to_the_workers(
        sync_world: World):
    sync_world.add_role("prod-read", allow=[("Production", "ReadOnlyAccess")])
    names = [f"user{i}" for i in range(INLINE_SUBMITS + 1)]
    for name in names:
        sync_world.add_user(name, roles=["prod-read"])
    work = sync_principals(runtime=sync_world.runtime, users=names, reason="many").next_work()
    assert submit_few_inline(sync_world.runtime, work) == work
    assert {o.state for o in sync_world.operations()} == {"QUEUED"}

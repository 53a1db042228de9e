"""The auditor's question (issue 21, item 5): who had access to what at a moment, with
access-list grants expanded to the people in them then, nested lists included."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from models.ledger import tables
from models.ledger.base import database_time
from models.ledger.enums import GrantState
from tasks.access.access_at import access_at
from tasks.access.permissions import operator
from tests.integration.sync_support import World
from workers.cli.main import app, register_commands
from workers.runtime import set_runtime

pytest_plugins = ["tests.integration.sync_fixtures"]
register_commands()
PROD, STAGING = "111111111111", "222222222222"


def now(world: World):
    with world.runtime.sessions() as session:
        return database_time(session)

AUDITOR = operator("test")


def who(world: World, at, **narrow) -> set[tuple[str, str, str, str]]:
    return {(r["user"], r["account_id"], r["permission_set"], r["via"])
            for r in access_at(sessions=world.runtime.sessions, viewer=AUDITOR, at=at,
                                 **narrow)}


def test_access_at_expands_lists_through_joins_leaves_requests_and_expiry(sync_world: World):
    world = sync_world
    world.add_role("prod-admin", allow=[("Production", "AdministratorAccess")])
    world.add_user("dave")
    world.add_user("erin")
    world.add_list("oncall", users=["dave"])
    world.add_list("platform", roles=["prod-admin"], users=["erin"], lists=["oncall"])
    before = now(world)
    world.sync()
    both_in = now(world)
    world.remove_member("platform", "erin")
    erin_left = now(world)
    request = world.add_request("dave", resources=[f"{STAGING}/ReadOnlyAccess"])
    world.sync()
    with_request = now(world)
    world.expire_now(tables.AccessRequest, tables.AccessRequest.id == request)
    world.sync()
    assert {g.state for g in world.grants(source_id=request)} == {GrantState.REVOKED}
    expired = now(world)

    admin = (PROD, "AdministratorAccess")
    assert who(world, before) == set()
    assert who(world, both_in) == {
        ("dave", *admin, "access list platform (through oncall)"),
        ("erin", *admin, "access list platform")}
    assert who(world, erin_left, user="erin") == set()
    assert who(world, erin_left, user="dave", account_id=PROD) == {
        ("dave", *admin, "access list platform (through oncall)")}
    assert who(world, with_request, user="dave") == {
        ("dave", *admin, "access list platform (through oncall)"),
        ("dave", STAGING, "ReadOnlyAccess", f"own grant (request:{request})")}
    assert who(world, expired, user="dave", account_id=STAGING) == set()
    assert who(world, both_in, user="erin", account_id=PROD)  # she had it then

    previous = set_runtime(world.runtime)
    try:
        result = CliRunner().invoke(app, ["audit", "--at", both_in.isoformat(), "--user",
                                          "erin", "--account", PROD, "-o", "json"])
    finally:
        set_runtime(previous)
    assert result.exit_code == 0, result.output
    assert [(r["user"], r["via"]) for r in json.loads(result.output)] == [
        ("erin", "access list platform")]

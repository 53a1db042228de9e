"""apply_resources on PostgreSQL and SQLite: create / update / unchanged, all or nothing,
references and nesting against the ledger, system roles read-only, audit events."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models.errors import ResourceErrors
from models.ledger import tables
from models.ledger.enums import Origin
from tasks.access.resources import apply_resources, field_diff, resource_columns, spec_hash
from tests.integration.services_support import (
    audit_actions,
    example_resources,
    list_yaml,
    loaded,
    new_actor,
    seed_system_roles,
    user_yaml,
)

pytest_plugins = ["tests.integration.services_fixtures"]

Sessions = sessionmaker[Session]


def count(sessions: Sessions, table: type) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def test_examples_are_created_then_unchanged(ledger: Sessions) -> None:
    seed_system_roles(ledger)
    actor = new_actor()
    first = apply_resources(sessions=ledger, loaded=example_resources(), actor=actor)
    assert {c.action for c in first.changes} == {"created"}
    assert len(first.changes) == 15
    second = apply_resources(sessions=ledger, loaded=example_resources(), actor=actor)
    assert {c.action for c in second.changes} == {"unchanged"}
    assert not second.changed
    # one audit event per created resource, none for the unchanged second run
    assert len(audit_actions(ledger, actor)) == 15
    assert {a for a, _ in audit_actions(ledger, actor)} == {"resource.created"}


def test_columns_are_written_from_the_documents(ledger: Sessions) -> None:
    seed_system_roles(ledger)
    apply_resources(sessions=ledger, loaded=example_resources(), actor=new_actor())
    with ledger() as session:
        alice = session.get(tables.User, "alice")
        assert (alice.email, alice.roles, alice.origin) == (
            "alice@example.com", ["developer"], Origin.RESOURCE)
        assert alice.traits == {"team": ["platform"]}
        role = session.get(tables.Role, "oncall-breakglass")
        assert role.spec["allow"]["request"]["max_duration"] == "2h"
        assert role.spec_hash == spec_hash(role.spec)
        sre = session.get(tables.AccessList, "sre")
        assert sre.owners == ["bob"] and sre.recurrence_seconds == 90 * 86400
        assert sre.next_review_at is not None
        members = session.execute(
            select(tables.Membership.member_name, tables.Membership.expires_at)
            .where(tables.Membership.list_name == "sre")).all()
        assert {name for name, _ in members} == {"dave", "erin", "frank"}
        assert dict(members)["erin"].isoformat() == "2027-06-30T00:00:00+00:00"


def test_update_reports_the_changed_fields_and_audits_before_after(ledger: Sessions) -> None:
    actor = new_actor()
    apply_resources(sessions=ledger, loaded=loaded(
        user_yaml("ann") + user_yaml("ben") + user_yaml("cy")
        + list_yaml("ops", owners=("ann",), users=("ann", "ben"))), actor=actor)
    result = apply_resources(sessions=ledger, loaded=loaded(
        user_yaml("ann", email="ann@corp.example") + user_yaml("ben") + user_yaml("cy")
        + list_yaml("ops", owners=("ann",), users=("ann", "cy"))), actor=actor)
    by_name = {c.name: c for c in result.changes}
    assert by_name["ann"].action == "updated" and by_name["ann"].fields == ("email",)
    assert by_name["ben"].action == "unchanged"
    assert by_name["ops"].fields == ("members +cy -ben",)
    with ledger() as session:
        event = session.scalars(select(tables.AuditEvent).where(
            tables.AuditEvent.actor == actor, tables.AuditEvent.action == "resource.updated",
            tables.AuditEvent.target == "ann")).one()
        assert event.before["email"] == "ann@example.com"
        assert event.after["email"] == "ann@corp.example"
        assert event.principal_name == "ann"
        members = session.scalars(select(tables.Membership.member_name).where(
            tables.Membership.list_name == "ops")).all()
        assert sorted(members) == ["ann", "cy"]


def test_one_bad_reference_writes_nothing(ledger: Sessions) -> None:
    actor = new_actor()
    batch = loaded(user_yaml("ann") + user_yaml("ben", roles=("no-such-role",))
                   + list_yaml("ops", owners=("ann",), users=("ghost",)))
    with pytest.raises(ResourceErrors) as raised:
        apply_resources(sessions=ledger, loaded=batch, actor=actor)
    text = str(raised.value)
    assert "batch.yaml:15 spec.roles[0]: role 'no-such-role' does not exist" in text
    assert "batch.yaml:22 spec.members[0].name: user 'ghost' does not exist" in text
    assert count(ledger, tables.User) == 0 and count(ledger, tables.AccessList) == 0
    assert audit_actions(ledger, actor) == []


def test_references_resolve_against_the_ledger(ledger: Sessions) -> None:
    names = seed_system_roles(ledger)
    apply_resources(sessions=ledger, loaded=loaded(user_yaml("ann")), actor=new_actor())
    result = apply_resources(sessions=ledger, loaded=loaded(
        list_yaml("ops", owners=("ann",), users=("ann",), roles=(names[0],))),
        actor=new_actor())
    assert [c.action for c in result.changes] == ["created"]


def test_a_cycle_through_the_ledger_is_refused_at_the_batch_member(ledger: Sessions) -> None:
    apply_resources(sessions=ledger, loaded=loaded(
        user_yaml("ann") + list_yaml("a", lists=("b",)) + list_yaml("b")), actor=new_actor())
    with pytest.raises(ResourceErrors) as raised:
        apply_resources(sessions=ledger, loaded=loaded(list_yaml("b", lists=("a",))),
                        actor=new_actor())
    (error,) = raised.value.errors
    assert error.path == "spec.members[0].name" and error.line == 6
    assert "access lists form a cycle" in error.detail
    assert {"a", "b"} <= set(error.detail.split(": ")[1].split(" -> "))


def test_nesting_deeper_than_the_limit_through_the_ledger_is_refused(ledger: Sessions) -> None:
    chain = "".join(list_yaml(f"l{i}", lists=(f"l{i + 1}",)) for i in range(1, 10))
    apply_resources(sessions=ledger, loaded=loaded(chain + list_yaml("l10")),
                    actor=new_actor())
    with pytest.raises(ResourceErrors) as raised:
        apply_resources(sessions=ledger, loaded=loaded(list_yaml("l10", lists=("l11",))
                                                       + list_yaml("l11")), actor=new_actor())
    assert "access lists nest deeper than 10: l1 -> l2" in str(raised.value)
    assert count(ledger, tables.AccessList) == 10


def test_duplicate_names_in_a_batch_are_refused(ledger: Sessions) -> None:
    from models.resources import LoadedResource

    once = loaded(user_yaml("ann"))
    twice = [*once, LoadedResource(once[0].resource, file="other.yaml", line=3)]
    with pytest.raises(ResourceErrors, match="other.yaml:3 metadata.name: duplicate user 'ann'"):
        apply_resources(sessions=ledger, loaded=twice, actor=new_actor())
    assert count(ledger, tables.User) == 0


def test_a_system_role_cannot_be_applied(ledger: Sessions) -> None:
    name = seed_system_roles(ledger)[0]
    text = f"kind: role\nmetadata: {{name: {name}}}\nspec: {{}}\n"
    with pytest.raises(ResourceErrors, match="is a system role: read-only") as refused:
        apply_resources(sessions=ledger, loaded=loaded(text), actor=new_actor())
    assert "next sync" not in str(refused.value)
    assert "import refresh restores it" in str(refused.value)
    labelled = ("kind: role\nmetadata:\n  name: mine\n  labels: {grantledger.io/system: 'true'}\n"
                "spec: {}\n")
    with pytest.raises(ResourceErrors, match="batch.yaml:4 .*only import creates system roles"):
        apply_resources(sessions=ledger, loaded=loaded(labelled), actor=new_actor())
    with ledger() as session:
        assert session.get(tables.Role, name).origin is Origin.SYSTEM
        assert session.get(tables.Role, "mine") is None


def test_dry_run_reports_and_writes_nothing(ledger: Sessions) -> None:
    actor = new_actor()
    result = apply_resources(sessions=ledger, loaded=loaded(user_yaml("ann")), actor=actor,
                             dry_run=True)
    assert result.dry_run and [c.action for c in result.changes] == ["created"]
    assert count(ledger, tables.User) == 0 and audit_actions(ledger, actor) == []


def test_applying_over_an_imported_list_adopts_it(ledger: Sessions) -> None:
    with ledger.begin() as session:
        session.add(tables.AccessList(name="ops", title="ops", origin=Origin.IMPORTED,
                                      group_id="g-123"))
    result = apply_resources(sessions=ledger, loaded=loaded(list_yaml("ops")),
                             actor=new_actor())
    assert result.changes[0].fields == ("origin",)
    with ledger() as session:
        row = session.get(tables.AccessList, "ops")
        assert (row.origin, row.group_id) == (Origin.RESOURCE, "g-123")


def test_field_diff_names_role_spec_sections() -> None:
    (before,) = loaded("kind: role\nmetadata: {name: r}\nspec: {allow: {account_assignments: "
                       "[{account: '*', permission_set: ReadOnlyAccess}]}}\n")
    (after,) = loaded("kind: role\nmetadata: {name: r}\nspec: {deny: {account_assignments: "
                      "[{account: '*', permission_set: ReadOnlyAccess}]}}\n")
    diff = field_diff(resource_columns(before.resource), resource_columns(after.resource))
    assert diff == ("spec.allow", "spec.deny")
    assert field_diff(None, resource_columns(after.resource)) == ()

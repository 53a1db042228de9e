"""Helpers for the service and resource-CLI tests (the fixtures are in services_fixtures)."""

from __future__ import annotations

import uuid
from pathlib import Path

import sqlalchemy as sa
import yaml
from sqlalchemy.orm import Session, sessionmaker

from models.domain import Account, AccountAssignment, PermissionSet
from models.ledger import tables
from models.ledger.base import Base
from models.ledger.db import transaction
from models.ledger.enums import Origin
from models.policy import system_role
from models.resources import LoadedResource, load_sources
from tasks.access.resources import spec_hash

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "ops" / "examples" / "resources"
BROKEN = REPO / "ops" / "examples" / "broken"
SANDBOX_FIXTURE = REPO / "ops" / "examples" / "sandbox-small.yaml"


def wipe(sessions: sessionmaker[Session]) -> None:
    """Delete every row but the append-only audit trail, children first."""
    with transaction(sessions) as session:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name != "audit_events":
                session.execute(table.delete())


def sandbox_assignments() -> list[AccountAssignment]:
    """Every (account, permission set) pair of the small sandbox organization."""
    fixture = yaml.safe_load(SANDBOX_FIXTURE.read_text())
    accounts = [Account(id=a["id"], name=a["name"], ou_path=a.get("ou", ""))
                for a in fixture["accounts"]]
    permission_sets = [
        PermissionSet(arn=f"arn:aws:sso:::permissionSet/ssoins-test/ps-{p['name'].lower()}",
                      name=p["name"]) for p in fixture["permission_sets"]]
    return [AccountAssignment(account=a, permission_set=p)
            for a in accounts for p in permission_sets]


def seed_system_roles(sessions: sessionmaker[Session]) -> list[str]:
    """What `grantledger import` leaves behind for the small sandbox: accounts, permission
    sets and one read-only system role per assignment. Returns the role names."""
    assignments = sandbox_assignments()
    with transaction(sessions) as session:
        for account in {a.account.id: a.account for a in assignments}.values():
            session.add(tables.Account(id=account.id, name=account.name,
                                       ou_path=account.ou_path))
        for ps in {a.permission_set.arn: a.permission_set for a in assignments}.values():
            session.add(tables.PermissionSet(arn=ps.arn, name=ps.name))
        session.flush()
        for assignment in assignments:
            spec = system_role(assignment).spec.model_dump(mode="json")
            session.add(tables.Role(
                name=assignment.system_role_name, spec=spec, spec_hash=spec_hash(spec),
                origin=Origin.SYSTEM, system_account_id=assignment.account.id,
                system_permission_set_arn=assignment.permission_set.arn))
    return [a.system_role_name for a in assignments]


def example_resources() -> list[LoadedResource]:
    """ops/examples/resources, loaded as the CLI loads them."""
    files = sorted(EXAMPLES.glob("*.yaml"))
    return load_sources((str(path), path.read_text()) for path in files)


def loaded(text: str, *, file: str = "batch.yaml") -> list[LoadedResource]:
    """Resources from one YAML text."""
    return load_sources([(file, text)])


def user_yaml(name: str, *, roles: tuple[str, ...] = (), email: str | None = None) -> str:
    return (f"kind: user\nmetadata: {{name: {name}}}\nspec:\n"
            f"  email: {email or name + '@example.com'}\n  given_name: {name.title()}\n"
            f"  family_name: Test\n  roles: [{', '.join(roles)}]\n---\n")


def list_yaml(name: str, *, owners: tuple[str, ...] = (), users: tuple[str, ...] = (),
              lists: tuple[str, ...] = (), roles: tuple[str, ...] = ()) -> str:
    members = [f"{{name: {u}}}" for u in users]
    members += [f"{{name: {n}, kind: access_list}}" for n in lists]
    owner_entries = ", ".join(f"{{name: {o}}}" for o in owners)
    return (f"kind: access_list\nmetadata: {{name: {name}}}\nspec:\n  title: {name}\n"
            f"  owners: [{owner_entries}]\n  members: [{', '.join(members)}]\n"
            f"  grants: {{roles: [{', '.join(roles)}]}}\n---\n")


def audit_actions(sessions: sessionmaker[Session], actor: str) -> list[tuple[str, str]]:
    """(action, target) of every event ``actor`` caused, oldest first."""
    with sessions() as session:
        rows = session.execute(
            sa.select(tables.AuditEvent.action, tables.AuditEvent.target)
            .where(tables.AuditEvent.actor == actor).order_by(tables.AuditEvent.id))
        return [(action, target) for action, target in rows]


def new_actor() -> str:
    """An actor name no other test uses, so audit assertions see only this test's events."""
    return f"tester-{uuid.uuid4().hex[:8]}"

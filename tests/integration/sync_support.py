"""A world for the sync tests: a throwaway PostgreSQL ledger, an in-process Sandbox, and a
driver that runs the engine's follow-up work (submit, poll, targeted sync) in this process.

The driver calls the same plain functions the Celery tasks call; only the broker is left
out (the e2e tests use real workers). Ledger rows are written directly: the sync engine
reads the tables, whoever wrote them.
"""

from __future__ import annotations

import heapq
import itertools
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from pydantic import SecretStr
from sqlalchemy import delete, select, update

from models.domain import AssignmentKey, MemberKind, RequestState
from models.ledger import tables
from models.ledger.base import database_time, db_now
from models.ledger.db import transaction
from tasks import events
from tasks.provisioning.poll_round import run_inline
from tasks.sync.engine import SyncReport, full_sync, sync_principals
from tests.conftest import throwaway_database
from workers.runtime import Runtime
from workers.sandbox import Sandbox, Seeded
from workers.settings import Settings

ACCOUNTS = {"Production": "111111111111", "Staging": "222222222222"}
FIXTURE = {
    "accounts": [{"id": i, "name": n} for n, i in ACCOUNTS.items()],
    "permission_sets": [{"name": "AdministratorAccess"}, {"name": "ReadOnlyAccess"},
                        {"name": "PowerUserAccess"}],
}
CLEARED = (tables.Operation, tables.Grant, tables.Membership, tables.RequestReview,
           tables.AccessRequest, tables.AccessList, tables.Role, tables.User, tables.KvState,
           tables.Account, tables.PermissionSet)


def create_database() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database of its own, dropped afterwards."""
    with throwaway_database("gl_sync", migrated=True) as url:
        yield url


def sandbox_settings(sandbox: Sandbox, database_url: str, **overrides: Any) -> Settings:
    """Settings pointing at ``sandbox`` and ``database_url``, with fast polling."""
    values: dict[str, Any] = {
        "database_url": database_url, "broker_url": "memory://", "aws_mode": "sandbox",
        "aws_endpoint_url": sandbox.endpoint_url, "scim_url": sandbox.scim_url,
        "scim_token": SecretStr(sandbox.scim_token), "instance_arn": sandbox.instance_arn,
        "identity_store_id": sandbox.identity_store_id, "poll_first_delay": 0.05,
        "status_poll_interval": 0.1, "poll_max_delay": 0.2, "sso_admin_rate": 1000.0,
        "identitystore_rate": 1000.0, "scim_rate": 1000.0,
        "api_token": SecretStr("sync-tests-" + uuid.uuid4().hex),
    }
    return Settings(**{**values, **overrides})


REQUESTER_ROLE = "may-request-anything"
REQUEST_ANYTHING = {"allow": {"request": {"roles": ["*"], "account_assignments": [
    {"account": "*", "permission_set": "*"}]}}}


class World:
    """One test's ledger + sandbox, and helpers to write policy and run syncs."""

    def __init__(self, runtime: Runtime, sandbox: Sandbox) -> None:
        self.runtime, self.sandbox = runtime, sandbox
        self.seeded = Seeded()

    # -- setup ------------------------------------------------------------------------------

    def reset(self) -> None:
        """Empty ledger tables (the audit trail is append-only and stays) and sandbox."""
        with transaction(self.runtime.sessions) as session:
            for table in CLEARED:
                session.execute(delete(table))
        self.sandbox.reset()
        self.sandbox.faults.clear()
        self.seeded = self.sandbox.seed(FIXTURE)
        with transaction(self.runtime.sessions) as session:
            for name, account_id in ACCOUNTS.items():
                session.add(tables.Account(id=account_id, name=name))
            for name, arn in self.seeded.permission_sets.items():
                session.add(tables.PermissionSet(arn=arn, name=name))

    def arn(self, permission_set: str) -> str:
        return self.seeded.permission_sets[permission_set]

    def add_user(self, name: str, *, roles: Iterable[str] = (), suspended: bool = False) -> None:
        with transaction(self.runtime.sessions) as session:
            session.add(tables.User(name=name, email=f"{name}@example.com",
                                    given_name=name.title(), family_name="Tester",
                                    roles=list(roles), suspended=suspended))

    def add_request_roles(self, **specs: dict[str, Any]) -> None:
        """The catalog's system roles (what reviewers' ``review_requests`` match) and the
        named role specs (``requester=..., reviewer=...``)."""
        from models.policy import system_role
        from tasks.access.requests_policy import load_policy

        with transaction(self.runtime.sessions) as session:
            for assignment in load_policy(session).catalog:
                role = system_role(assignment)
                session.add(tables.Role(name=role.name, spec=role.spec.model_dump(mode="json")))
            for name, spec in specs.items():
                session.add(tables.Role(name=name, spec=spec))

    def add_role(self, name: str, *, allow: Iterable[tuple[str, str]] = (),
                 deny: Iterable[tuple[str, str]] = ()) -> None:
        def rules(pairs: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
            return [{"account": a, "permission_set": p} for a, p in pairs]

        spec = {"allow": {"account_assignments": rules(allow)},
                "deny": {"account_assignments": rules(deny)}}
        with transaction(self.runtime.sessions) as session:
            session.merge(tables.Role(name=name, spec=spec))

    def add_list(self, name: str, *, roles: Iterable[str] = (),
                 users: Iterable[str] = (), lists: Iterable[str] = ()) -> None:
        with transaction(self.runtime.sessions) as session:
            session.add(tables.AccessList(name=name, title=name, granted_roles=list(roles),
                                          owners=["owner"]))
        for user in users:
            self.add_member(name, user)
        for nested in lists:
            self.add_member(name, nested, kind=MemberKind.ACCESS_LIST)

    def set_list_roles(self, name: str, roles: Iterable[str]) -> None:
        with transaction(self.runtime.sessions) as session:
            session.get(tables.AccessList, name).granted_roles = list(roles)

    def add_member(self, list_name: str, member: str, *, kind: MemberKind = MemberKind.USER,
                   expires: datetime | None = None) -> None:
        with transaction(self.runtime.sessions) as session:
            session.add(tables.Membership(list_name=list_name, member_name=member,
                                          member_kind=kind, expires_at=expires))

    def add_request(self, user: str, *, resources: Iterable[str] = (),
                    roles: Iterable[str] = (), lasts: float = 3600.0) -> str:
        """An APPROVED request expiring ``lasts`` seconds from now (database clock); the user
        is given the right to request anything (provisioning re-checks it)."""
        with transaction(self.runtime.sessions) as session:
            session.merge(tables.Role(name=REQUESTER_ROLE, spec=REQUEST_ANYTHING))
            person = session.get(tables.User, user)
            if REQUESTER_ROLE not in person.roles:
                person.roles = [*person.roles, REQUESTER_ROLE]
            request = tables.AccessRequest(
                user_name=user, user_id=person.id, roles=list(roles), resources=list(resources),
                reason="testing", duration_seconds=int(lasts), state=RequestState.APPROVED,
                expires_at=database_time(session, lasts))
            session.add(request)
            session.flush()
            return request.id

    def expire_now(self, table: Any, *where: Any) -> None:
        """Move ``expires_at`` of matching rows one second into the past (database clock)."""
        with transaction(self.runtime.sessions) as session:
            session.execute(update(table).where(*where).values(expires_at=db_now(-1.0)))

    def age(self, table: Any, column: str, seconds: float, *where: Any) -> None:
        """Pretend a timestamp column was written ``seconds`` ago."""
        with transaction(self.runtime.sessions) as session:
            session.execute(update(table).where(*where).values({column: db_now(-seconds)}))

    def remove_member(self, list_name: str, member: str) -> None:
        with transaction(self.runtime.sessions) as session:
            session.execute(delete(tables.Membership).where(
                tables.Membership.list_name == list_name,
                tables.Membership.member_name == member))

    @contextmanager
    def reconfigured(self, **changes: Any) -> Iterator[World]:
        """The same ledger and sandbox, seen through settings with ``changes``."""
        runtime = Runtime(self.runtime.settings.model_copy(update=changes))
        world = World(runtime, self.sandbox)
        world.seeded = self.seeded
        try:
            yield world
        finally:
            runtime.close()

    # -- running ----------------------------------------------------------------------------

    def sync(self, *, users: Iterable[str] | None = None, lists: Iterable[str] | None = None,
             dry_run: bool = False, timeout: float = 15.0) -> SyncReport:
        """A full sync (or a targeted one when users/lists are given), drained."""
        if users is None and lists is None:
            report = full_sync(runtime=self.runtime, dry_run=dry_run)
        else:
            report = sync_principals(runtime=self.runtime, users=users or (),
                                     lists=lists or (), dry_run=dry_run)
        self.drain(report.next_work(), timeout=timeout)
        return report

    def drain(self, work: Iterable[events.Next], *, timeout: float = 15.0) -> int:
        """Run the work and all it leads to, each item when its countdown is due."""
        deadline, counter = time.monotonic() + timeout, itertools.count()
        queue: list[tuple[float, int, events.Next]] = []
        ran = 0

        def push(items: Iterable[events.Next]) -> None:
            for item in items:
                heapq.heappush(queue, (time.monotonic() + item.countdown, next(counter), item))

        push(work)
        while queue:
            due, _, item = heapq.heappop(queue)
            while time.monotonic() < due:  # a countdown of a few tens of ms at most
                time.sleep(0.002)
            assert time.monotonic() < deadline, f"work did not finish in {timeout}s"
            push(self.run(item))
            ran += 1
        return ran

    def run(self, item: events.Next) -> list[events.Next]:
        if item.task == events.SYNC_PRINCIPALS:
            return sync_principals(runtime=self.runtime, **item.kwargs).next_work()
        assert item.task in (events.PROVISION_SUBMIT, events.POLL_OPERATION,
                             events.POLL_ROUND), f"unexpected task {item.task}"
        return run_inline(self.runtime, item)

    # -- reading ----------------------------------------------------------------------------

    def aws_assignments(self) -> set[AssignmentKey]:
        """Every assignment, listed through boto3 (ListAccountAssignments per account x set)."""
        client = self.sandbox.client("sso-admin")
        found = set()
        for account_id in ACCOUNTS.values():
            for arn in self.seeded.permission_sets.values():
                pages = client.get_paginator("list_account_assignments").paginate(
                    InstanceArn=self.sandbox.instance_arn, AccountId=account_id,
                    PermissionSetArn=arn)
                found |= {AssignmentKey(r["PrincipalType"], r["PrincipalId"], r["AccountId"],
                                        r["PermissionSetArn"])
                          for page in pages for r in page["AccountAssignments"]}
        return found

    def truth(self) -> set[AssignmentKey]:
        """Every assignment, read from the sandbox itself (no API call, never throttled)."""
        return {AssignmentKey(*key) for key in self.sandbox.assignments()}

    def user_id(self, name: str) -> str:
        with self.runtime.sessions() as session:
            return session.scalar(select(tables.User.principal_id)
                                  .where(tables.User.name == name))

    def group_id(self, name: str) -> str:
        with self.runtime.sessions() as session:
            return session.scalar(select(tables.AccessList.group_id)
                                  .where(tables.AccessList.name == name))

    def group_members(self, list_name: str) -> set[str]:
        """User names in the list's Identity Center group (identitystore, through boto3)."""
        client = self.sandbox.client("identitystore")
        pages = client.get_paginator("list_group_memberships").paginate(
            IdentityStoreId=self.sandbox.identity_store_id, GroupId=self.group_id(list_name))
        ids = {m["MemberId"]["UserId"] for page in pages for m in page["GroupMemberships"]}
        with self.runtime.sessions() as session:
            names = dict(session.execute(select(tables.User.principal_id, tables.User.name)).all())
        return {names.get(i, i) for i in ids}

    def key(self, principal: str, account: str, permission_set: str) -> AssignmentKey:
        """``user:alice`` / ``group:admins`` on an account name and a permission set name."""
        kind, name = principal.split(":", 1)
        pid = self.user_id(name) if kind == "user" else self.group_id(name)
        return AssignmentKey(kind.upper(), pid, ACCOUNTS[account], self.arn(permission_set))

    def grants(self, **where: Any) -> list[tables.Grant]:
        with self.runtime.sessions() as session:
            statement = select(tables.Grant).order_by(tables.Grant.id)
            for column, value in where.items():
                statement = statement.where(getattr(tables.Grant, column) == value)
            return list(session.scalars(statement))

    def operations(self) -> list[tables.Operation]:
        with self.runtime.sessions() as session:
            return list(session.scalars(select(tables.Operation).order_by(tables.Operation.id)))

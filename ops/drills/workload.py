"""The drills' workload, written through the product's own services: a catalog (as an
import leaves it), users and an access list applied as YAML, and access requests created
and approved so that their grants expire while the drill runs.

What it should lead to is known up front (:class:`Workload`): the long-term assignments that
must end ACTIVE, and the requests whose grants must end REVOKED.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import yaml
from sqlalchemy import select

from models.ledger import tables
from models.ledger.db import transaction
from models.policy import system_role
from models.resources import load_sources
from tasks.access import requests as rq
from tasks.access.permissions import person_in
from tasks.access.requests_policy import load_policy
from tasks.access.resources import apply_resources

ACCOUNTS = {"Production": "111111111111", "Staging": "222222222222"}
PERMISSION_SETS = ("AdministratorAccess", "ReadOnlyAccess", "PowerUserAccess")
REQUESTED = ("AdministratorAccess", "PowerUserAccess")  # on Staging, by request
ACTOR = "drill"
REVIEWER = "reviewer"


@dataclass
class Workload:
    """What was asked of grantledger, by name."""

    users: list[str] = field(default_factory=list)
    admins: list[str] = field(default_factory=list)  # members of the access list
    requests: list[str] = field(default_factory=list)  # approved request ids

    def long_term(self) -> set[tuple[str, str, str, str]]:
        """(principal type, name, account id, permission set name) that must stay ACTIVE."""
        readers = {("USER", u, ACCOUNTS["Production"], "ReadOnlyAccess") for u in self.users}
        return readers | {("GROUP", "admins", ACCOUNTS["Production"], "AdministratorAccess")}


def seed_catalog(stack: Any) -> dict[str, str]:
    """Accounts and permission sets in the sandbox and in the ledger (as an import leaves
    them, system roles included); permission set name -> ARN."""
    seeded = stack.sandbox.seed({
        "accounts": [{"id": i, "name": n} for n, i in ACCOUNTS.items()],
        "permission_sets": [{"name": name} for name in PERMISSION_SETS]})
    with transaction(stack.runtime.sessions) as session:
        for name, account_id in ACCOUNTS.items():
            session.add(tables.Account(id=account_id, name=name))
        for name, arn in seeded.permission_sets.items():
            session.add(tables.PermissionSet(arn=arn, name=name))
    with transaction(stack.runtime.sessions) as session:
        for assignment in load_policy(session).catalog:
            role = system_role(assignment)
            session.add(tables.Role(name=role.name, spec=role.spec.model_dump(mode="json")))
    return seeded.permission_sets


def people_documents(users: list[str], admins: list[str]) -> list[dict[str, Any]]:
    """Roles, users and the ``admins`` access list, as resource documents."""
    def role(name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {"kind": "role", "version": "v7", "metadata": {"name": name}, "spec": spec}

    def user(name: str, roles: list[str]) -> dict[str, Any]:
        return {"kind": "user", "metadata": {"name": name}, "spec": {
            "email": f"{name}@example.com", "given_name": name.title(),
            "family_name": "Drill", "roles": roles}}

    anything = [{"account": "*", "permission_set": "*"}]
    return [
        role("reader", {"allow": {"account_assignments": [
            {"account": "Production", "permission_set": "ReadOnlyAccess"}],
            "request": {"account_assignments": anything, "max_duration": "4h"}}}),
        role("reviewer", {"allow": {"review_requests": {"roles": ["*"]}}}),
        role("prod-admin", {"allow": {"account_assignments": [
            {"account": "Production", "permission_set": "AdministratorAccess"}]}}),
        user(REVIEWER, ["reviewer"]),
        *[user(name, ["reader"]) for name in users],
        {"kind": "access_list", "metadata": {"name": "admins"}, "spec": {
            "title": "Production admins", "owners": [{"name": REVIEWER}],
            "members": [{"name": name, "kind": "user"} for name in admins],
            "grants": {"roles": ["prod-admin"]}}},
    ]


def apply_people(stack: Any, *, users: int, admins: int = 3) -> Workload:
    """``users`` readers (Production read-only), ``admins`` of them in the access list."""
    names = [f"user{i:03d}" for i in range(users)]
    text = yaml.safe_dump_all(people_documents(names, names[:admins]))
    apply_resources(sessions=stack.runtime.sessions, actor=ACTOR,
                    loaded=load_sources([("drill-people.yaml", text)]))
    return Workload(users=names, admins=names[:admins])


def approve_requests(stack: Any, workload: Workload, *, count: int,
                     lasting: tuple[float, float]) -> list[str]:
    """``count`` requests for Staging access, approved at once, lasting from ``lasting[0]``
    to ``lasting[1]`` seconds (spread evenly); their ids."""
    sessions, made = stack.runtime.sessions, []
    low, high = lasting
    for index in range(count):
        user = workload.users[index % len(workload.users)]
        seconds = low + (high - low) * index / max(count - 1, 1)
        permission_set = REQUESTED[(index // len(workload.users)) % len(REQUESTED)]
        request = rq.create_request(
            sessions=sessions, actor=person_in(sessions, name=user, via="drill"),
            reason="fault drill", resources=[f"{ACCOUNTS['Staging']}/{permission_set}"],
            duration=timedelta(seconds=seconds))
        rq.review_request(sessions=sessions, request_id=request.id, decision="approve",
                          actor=person_in(sessions, name=REVIEWER, via="drill"))
        made.append(request.id)
    workload.requests += made
    return made


def request_grants(session: Any, request_ids: list[str]) -> list[tables.Grant]:
    """The grants that came from these requests."""
    return list(session.scalars(select(tables.Grant).where(
        tables.Grant.source_id.in_(request_ids))))

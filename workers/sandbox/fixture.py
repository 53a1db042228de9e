"""Seeding the sandbox from a YAML fixture (see ``ops/examples/sandbox-small.yaml``).

    accounts:        [{id: "111111111111", name: Production, ou: /Workloads, email: ...}]
    permission_sets: [{name: AdministratorAccess, description: ..., session_duration: PT4H}]
    users:           [{user_name: alice, given_name: Alice, family_name: Ng, email: ...}]
    groups:          [{display_name: Admins, description: ..., members: [alice, bob]}]
    assignments:     [{account: Production | "111111111111", permission_set: ReadOnlyAccess,
                       group: Admins}  (or user: alice)]

A fixture is self-contained: assignments and members name objects of the same fixture (an
account may also be the management account's id). It is checked whole before anything is
written, so a bad fixture seeds nothing. Seeded assignments exist at once (SUCCEEDED).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from models.errors import ResourceError, ResourceErrors
from workers.sandbox.identity_center import AssignmentKey, IdentityCenter
from workers.sandbox.moto_world import MANAGEMENT_ACCOUNT_ID, MotoWorld

Fixture = dict[str, Any]
REQUIRED = {
    "accounts": ("id", "name"),
    "permission_sets": ("name",),
    "users": ("user_name", "given_name", "family_name", "email"),
    "groups": ("display_name",),
    "assignments": ("account", "permission_set"),
}
ACCOUNT_ID = re.compile(r"^\d{12}$")
UNIQUE = (("accounts", "id"), ("accounts", "name"), ("permission_sets", "name"),
          ("users", "user_name"), ("groups", "display_name"))


@dataclass
class Seeded:
    """Names of what was seeded, mapped to the ids AWS gave them."""

    accounts: dict[str, str] = field(default_factory=dict)  # name -> account id
    permission_sets: dict[str, str] = field(default_factory=dict)  # name -> ARN
    users: dict[str, str] = field(default_factory=dict)  # user_name -> UserId
    groups: dict[str, str] = field(default_factory=dict)  # display_name -> GroupId
    assignments: set[AssignmentKey] = field(default_factory=set)


def load_fixture(source: str | Path | Fixture) -> tuple[Fixture, str]:
    """The fixture and where it came from (for error messages)."""
    if isinstance(source, dict):
        return source, "<fixture>"
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # 10,000 users: libyaml is 10x
    with open(source, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=loader) or {}, str(source)  # noqa: S506 - safe loader


def problems(fixture: Fixture, *, source: str = "<fixture>") -> list[ResourceError]:
    """Every mistake in ``fixture``, located by field path; empty when it can be seeded."""
    found: list[ResourceError] = []

    def report(path: str, message: str) -> None:
        found.append(ResourceError(message, file=source, path=path))

    for section, keys in REQUIRED.items():
        entries = fixture.get(section) or []
        if not isinstance(entries, list):
            report(section, "must be a list")
            continue
        for index, entry in enumerate(entries):
            missing = [k for k in keys if not isinstance(entry, dict) or entry.get(k) in (None, "")]
            for key in missing:
                report(f"{section}[{index}].{key}", "is required")
    if not found:
        _check_names(fixture, report)
    return found


def _check_unique(fixture: Fixture, report: Any) -> None:
    for section, key in UNIQUE:
        seen: set[str] = set()
        for index, entry in enumerate(fixture.get(section) or []):
            value = str(entry[key])
            if value in seen:
                report(f"{section}[{index}].{key}", f"duplicate {value!r}")
            seen.add(value)


def _check_names(fixture: Fixture, report: Any) -> None:
    _check_unique(fixture, report)
    accounts = {str(a["id"]) for a in fixture.get("accounts") or []}
    account_names = {a["name"] for a in fixture.get("accounts") or []}
    for index, account in enumerate(fixture.get("accounts") or []):
        if not ACCOUNT_ID.match(str(account["id"])):
            report(f"accounts[{index}].id", "must be 12 digits (quote it in YAML)")
    sets = {p["name"] for p in fixture.get("permission_sets") or []}
    users = {u["user_name"] for u in fixture.get("users") or []}
    groups = {g["display_name"] for g in fixture.get("groups") or []}
    for index, group in enumerate(fixture.get("groups") or []):
        for member in set(group.get("members") or []) - users:
            report(f"groups[{index}].members", f"unknown user {member!r}")
    for index, assignment in enumerate(fixture.get("assignments") or []):
        where = f"assignments[{index}]"
        account = str(assignment["account"])
        if account not in accounts | account_names | {MANAGEMENT_ACCOUNT_ID}:
            report(f"{where}.account", f"unknown account {account!r}")
        if assignment["permission_set"] not in sets:
            report(f"{where}.permission_set", f"unknown permission set "
                                              f"{assignment['permission_set']!r}")
        _check_principal(assignment, users, groups, where, report)


def _check_principal(assignment: dict[str, Any], users: set[str], groups: set[str],
                     where: str, report: Any) -> None:
    if ("user" in assignment) == ("group" in assignment):
        report(where, "needs exactly one of user or group")
    elif "user" in assignment and assignment["user"] not in users:
        report(f"{where}.user", f"unknown user {assignment['user']!r}")
    elif "group" in assignment and assignment["group"] not in groups:
        report(f"{where}.group", f"unknown group {assignment['group']!r}")


def seed_fixture(source: str | Path | Fixture, *, world: MotoWorld,
                 center: IdentityCenter) -> Seeded:
    """Create everything ``source`` describes; ResourceErrors (nothing seeded) if it is wrong."""
    fixture, where = load_fixture(source)
    found = problems(fixture, source=where)
    if found:
        raise ResourceErrors(found)
    seeded = Seeded()
    _seed_directory(fixture, world, seeded)
    for permission_set in fixture.get("permission_sets") or []:
        seeded.permission_sets[permission_set["name"]] = center.create_permission_set(
            name=permission_set["name"], description=permission_set.get("description", ""),
            session_duration=permission_set.get("session_duration", "PT1H"),
        ).arn
    for assignment in fixture.get("assignments") or []:
        key = assignment_key(assignment, seeded)
        center.seed_assignment(key)
        seeded.assignments.add(key)
    return seeded


def _seed_directory(fixture: Fixture, world: MotoWorld, seeded: Seeded) -> None:
    for account in fixture.get("accounts") or []:
        account_id, name = str(account["id"]), account["name"]
        world.add_account(account_id=account_id, name=name, ou_path=account.get("ou", "/"),
                          email=account.get("email") or f"aws+{account_id}@example.com")
        seeded.accounts[name] = account_id
    for user in fixture.get("users") or []:
        seeded.users[user["user_name"]] = world.add_user(
            user_name=user["user_name"], given_name=user["given_name"],
            family_name=user["family_name"], email=user["email"],
            display_name=user.get("display_name")
            or f"{user['given_name']} {user['family_name']}")
    for group in fixture.get("groups") or []:
        group_id = world.add_group(display_name=group["display_name"],
                                   description=group.get("description", ""))
        seeded.groups[group["display_name"]] = group_id
        for member in group.get("members") or []:
            world.add_membership(group_id=group_id, user_id=seeded.users[member])


def assignment_key(assignment: dict[str, Any], seeded: Seeded) -> AssignmentKey:
    """The shared key of one fixture assignment, names resolved to ids."""
    account = str(assignment["account"])
    account_id = seeded.accounts.get(account, account)
    arn = seeded.permission_sets[assignment["permission_set"]]
    if "user" in assignment:
        return ("USER", seeded.users[assignment["user"]], account_id, arn)
    return ("GROUP", seeded.groups[assignment["group"]], account_id, arn)

"""SCIM push: users, groups and group memberships in Identity Center, before assignments.

Within one sync the order is users -> groups -> memberships -> assignment creates -> deletes,
so a user promoted from a request into an access list is in the group before the request's
own assignment goes: access never has a gap.

- every non-suspended user without an Identity Center id gets one: an existing user with
  the same userName is adopted, else one is created (externalId ``grantledger:user:<name>``);
- every synced access list without a group gets one (adopted by displayName, else created
  with externalId ``grantledger:access_list:<name>``);
- each synced group's members are diffed against Identity Center (AWS's SCIM never lists
  members, so the identity store's ListGroupMemberships is the truth) and fixed with add /
  remove PATCHes of at most 100 members. Suspended users are not desired: they are removed.

A SCIM failure for one object is recorded and the push goes on; a token that is refused
(or an open circuit breaker) stops the push, and the sync carries on with assignments.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from models.errors import AwsError, ScimAuthError, ScimCircuitOpen, ScimError
from models.ledger import tables
from models.ledger.audit import record_many
from models.ledger.db import transaction
from models.ledger.enums import GrantState
from models.ports.identity_center import IdentityCenter
from models.ports.scim import ScimDirectory, ScimUser
from tasks.sync.snapshot import GROUP, USER, UserState

ACTOR = "system:scim"
FATAL = (ScimAuthError, ScimCircuitOpen)


@dataclass(frozen=True)
class DirectoryChange:
    """One SCIM change a push makes (or would make): shown by `plan` beside assignments."""

    kind: str  # scim_create_user | scim_create_group | member_add | member_remove
    principal: str  # USER:alice, GROUP:developers
    group: str | None = None  # the access list whose group gains or loses a member
    reason: str = ""

    def as_row(self) -> dict[str, Any]:
        return {"change": self.kind, "principal": self.principal, "group": self.group,
                "account": None, "permission_set": None, "grants": [], "reason": self.reason}


@dataclass
class ScimPush:
    """What a push did (or, in a dry run, would do)."""

    counts: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    stopped: bool = False  # the directory refused our token: nothing more was pushed
    stop_reason: str | None = None  # what the directory answered when it stopped the push
    planned: list[DirectoryChange] = field(default_factory=list)  # for `plan`, in order

    def failed(self, what: str, err: Exception) -> None:
        self.errors.append(f"{what}: {err}")
        if isinstance(err, FATAL) and not self.stopped:
            self.stopped, self.stop_reason = True, str(err)


def push_users(*, sessions: sessionmaker[Session], directory: ScimDirectory,
               users: Iterable[UserState], report: ScimPush,
               dry_run: bool = False) -> dict[str, str]:
    """Give every non-suspended user an Identity Center id; the ids learned, by name."""
    learned: dict[str, str] = {}
    for user in sorted(users, key=lambda u: u.name):
        if user.suspended or user.principal_id or report.stopped:
            continue
        report.planned.append(DirectoryChange("scim_create_user", f"{USER}:{user.name}",
                                              reason="not in Identity Center yet (adopted "
                                                     "by userName if there)"))
        if dry_run:
            report.counts["users_to_push"] += 1
            continue
        try:
            pushed = find_or_create_user(directory, user)
        except ScimError as err:
            report.failed(f"user {user.name}", err)
            continue
        learned[user.name] = pushed.id
        report.counts["users_adopted" if pushed.adopted else "users_created"] += 1
        with transaction(sessions) as session:
            save_user_id(session, name=user.name, principal_id=pushed.id,
                         external_id=pushed.external_id, adopted=pushed.adopted)
    return learned


def find_or_create_user(directory: ScimDirectory, user: UserState) -> ScimUser:
    """The directory's user with this userName (adopted), else a new one we own."""
    existing = directory.find_user(user_name=user.name)
    if existing is not None:
        return replace(existing, adopted=True)
    given, family = user.given_name or user.name, user.family_name or user.name
    return directory.create_user(user_name=user.name, display_name=f"{given} {family}",
                                 given_name=given, family_name=family, email=user.email,
                                 external_id=f"user:{user.name}")


def save_user_id(session: Session, *, name: str, principal_id: str, external_id: str | None,
                 adopted: bool, action: str | None = None) -> None:
    """Store a user's Identity Center id (and on its live grants), audited."""
    session.execute(update(tables.User).where(tables.User.name == name).values(
        principal_id=principal_id, scim_external_id=external_id))
    _stamp_grants(session, USER, name, principal_id)
    action = action or ("user.adopted" if adopted else "user.pushed")
    record_many(session, [{"actor": ACTOR, "action": action, "target_kind": "user",
                           "target": name,
                           "principal_name": name,
                           "details": {"principal_id": principal_id,
                                       "external_id": external_id}}])


def _stamp_grants(session: Session, principal_type: str, name: str, principal_id: str) -> None:
    session.execute(update(tables.Grant).where(
        tables.Grant.principal_type == principal_type, tables.Grant.principal_name == name,
        tables.Grant.state != GrantState.REVOKED).values(principal_id=principal_id)
        .execution_options(synchronize_session=False))


def push_groups(*, sessions: sessionmaker[Session], directory: ScimDirectory,
                lists: Iterable[str], group_ids: Mapping[str, str | None], report: ScimPush,
                dry_run: bool = False) -> dict[str, str]:
    """Give every synced list an Identity Center group; the group ids learned, by list."""
    learned: dict[str, str] = {}
    for name in sorted(lists):
        if group_ids.get(name) or report.stopped:
            continue
        report.planned.append(DirectoryChange("scim_create_group", f"{GROUP}:{name}",
                                              reason="the access list has no group yet "
                                                     "(adopted by displayName if there)"))
        if dry_run:
            report.counts["groups_to_push"] += 1
            continue
        try:
            group = directory.find_group(display_name=name)
            adopted = group is not None
            if group is None:
                group = directory.create_group(display_name=name,
                                               external_id=f"access_list:{name}")
                adopted = group.adopted
        except ScimError as err:
            report.failed(f"group {name}", err)
            continue
        learned[name] = group.id
        report.counts["groups_adopted" if adopted else "groups_created"] += 1
        with transaction(sessions) as session:
            session.execute(update(tables.AccessList).where(tables.AccessList.name == name)
                            .values(group_id=group.id))
            _stamp_grants(session, GROUP, name, group.id)
            record_many(session, [{"actor": ACTOR, "action": "group.adopted" if adopted
                                   else "group.pushed", "target_kind": "access_list",
                                   "target": name, "details": {"group_id": group.id}}])
    return learned


@dataclass(frozen=True)
class MembershipDiff:
    list_name: str
    group_id: str
    add: tuple[str, ...]
    remove: tuple[str, ...]


def membership_diffs(*, identity_center: IdentityCenter, group_ids: Mapping[str, str],
                     members: Mapping[str, Iterable[str]], user_ids: Mapping[str, str | None],
                     fresh: Iterable[str] = ()) -> list[MembershipDiff]:
    """Per synced group: the user ids to add and remove (``fresh`` groups are empty)."""
    empty = set(fresh)
    diffs = []
    for name in sorted(members):
        group_id = group_ids.get(name)
        if not group_id:
            continue
        desired = {pid for user in members[name] if (pid := user_ids.get(user))}
        actual = set() if name in empty else set(
            identity_center.list_group_memberships(group_id))
        if desired != actual:
            diffs.append(MembershipDiff(name, group_id, tuple(sorted(desired - actual)),
                                        tuple(sorted(actual - desired))))
    return diffs


def push_memberships(*, sessions: sessionmaker[Session], directory: ScimDirectory,
                     diffs: Iterable[MembershipDiff], report: ScimPush, dry_run: bool = False,
                     user_names: Mapping[str, str] | None = None) -> None:
    """Apply membership diffs through SCIM (adds before removes), audited per group.
    ``user_names``: user id -> name, to name the members in ``report.planned``."""
    for diff in diffs:
        report.counts["members_added"] += len(diff.add)
        report.counts["members_removed"] += len(diff.remove)
        report.planned.extend(_member_changes(diff, user_names or {}))
        if dry_run or report.stopped:
            continue
        try:
            if diff.add:
                directory.add_members(group_id=diff.group_id, user_ids=list(diff.add))
            if diff.remove:
                directory.remove_members(group_id=diff.group_id, user_ids=list(diff.remove))
        except ScimError as err:
            report.failed(f"members of {diff.list_name}", err)
            continue
        with transaction(sessions) as session:
            record_many(session, [_membership_event(diff)])


def _member_changes(diff: MembershipDiff, names: Mapping[str, str]) -> list[DirectoryChange]:
    added = [DirectoryChange("member_add", f"{USER}:{names.get(i, i)}", diff.list_name,
                             "member of the access list, not of its group") for i in diff.add]
    return added + [DirectoryChange("member_remove", f"{USER}:{names.get(i, i)}",
                                    diff.list_name, "in the group, no longer a member of "
                                    "the access list") for i in diff.remove]


def _membership_event(diff: MembershipDiff) -> dict[str, Any]:
    return {"actor": ACTOR, "action": "group.members_synced", "target_kind": "access_list",
            "target": diff.list_name,
            "details": {"group_id": diff.group_id, "added": list(diff.add),
                        "removed": list(diff.remove)}}


def safe_membership_diffs(report: ScimPush, **kwargs: Any) -> list[MembershipDiff]:
    """``membership_diffs``, with an AWS failure recorded instead of raised."""
    try:
        return membership_diffs(**kwargs)
    except AwsError as err:
        report.failed("group memberships", err)
        return []

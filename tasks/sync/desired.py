"""Desired state: the grants and group memberships the ledger's policy calls for. Pure.

- An access list whose granted roles allow any assignment of the catalog is *synced*: it is
  one Identity Center group, holding the assignments its roles allow (GROUP grants, source
  ``access_list``, long-term), with every non-suspended user it reaches (nested lists
  flattened) as a member.
- A user's own roles give USER grants (source ``role``, one per role that allows the
  assignment; deny rules of any of the user's roles win).
- An approved, unexpired request gives USER grants (source ``request``) for the resources it
  names (``<account-id>/<permission-set-name>``) and what its roles allow, until it expires,
  while its requester may still request all of it (roles and memberships in force now).
- Grants found at enrolment (source ``imported``) stay wanted until revoked.
- Suspended users get nothing and belong to no group.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from models.domain import AccountAssignment, RoleResource
from models.errors import PolicyDenied
from models.flatten import flatten
from models.ledger.enums import SourceKind
from models.policy import CatalogIndex, allowed_assignments, effective_roles
from tasks.access.requests_policy import request_terms
from tasks.sync.snapshot import (
    GROUP,
    USER,
    ApprovedRequest,
    Scope,
    Snapshot,
    UserState,
    pushed_lists,
)

GrantKey = tuple[str, str, str, str, str, str]
"""(principal_type, principal_name, account_id, permission_set_arn, source_kind, source_id)"""


@dataclass(frozen=True, slots=True)
class DesiredGrant:
    principal_type: str
    principal_name: str
    account_id: str
    permission_set_arn: str
    source_kind: str
    source_id: str
    expires_at: datetime | None = None

    @property
    def key(self) -> GrantKey:
        return (self.principal_type, self.principal_name, self.account_id,
                self.permission_set_arn, self.source_kind, self.source_id)


@dataclass(frozen=True)
class DesiredState:
    grants: Mapping[GrantKey, DesiredGrant]
    members: Mapping[str, frozenset[str]]  # synced list -> user names in its group

    @property
    def synced_lists(self) -> frozenset[str]:
        return frozenset(self.members)


class _Allowed:
    """``allowed_assignments`` memoised by role set: many users share the same roles."""

    def __init__(self, roles: Mapping[str, RoleResource], catalog: CatalogIndex) -> None:
        self.roles, self.catalog = roles, catalog
        self.by_id = {a.id: a for a in catalog}
        self._memo: dict[frozenset[str], frozenset[str]] = {}

    def ids(self, role_names: Iterable[str]) -> frozenset[str]:
        """Ids ``<account>/<ps-name>`` the existing roles among ``role_names`` allow."""
        held = frozenset(name for name in role_names if name in self.roles)
        if held not in self._memo:
            self._memo[held] = frozenset(allowed_assignments(
                roles=[self.roles[name] for name in sorted(held)], catalog=self.catalog))
        return self._memo[held]

    def assignments(self, ids: Iterable[str]) -> list[AccountAssignment]:
        return [self.by_id[i] for i in sorted(ids) if i in self.by_id]


def desired_state(snapshot: Snapshot, *, scope: Scope | None = None) -> DesiredState:
    """The grants (in scope) and synced groups' members the snapshot calls for."""
    scope = snapshot.scope if scope is None else scope
    allowed = _Allowed(snapshot.roles, snapshot.catalog)
    active = {name for name, user in snapshot.users.items() if not user.suspended}
    synced = {name: allowed.assignments(allowed.ids(access_list.spec.grants.roles))
              for name, access_list in snapshot.lists.items()}
    synced = {name: found for name, found in synced.items() if found}
    flat = flatten(snapshot.lists, at=snapshot.now)
    members = {name: frozenset(flat.get(name, frozenset()) & active) for name in synced}
    grants: dict[GrantKey, DesiredGrant] = {}
    for grant in _list_grants(synced, scope):
        grants[grant.key] = grant
    for user in snapshot.users.values():
        if scope.has_user(user.name) and not user.suspended:
            for grant in _role_grants(user, allowed):
                grants[grant.key] = grant
    for grant in _request_grants(snapshot, allowed, active, scope):
        grants[grant.key] = grant
    for grant in _imported_grants(snapshot, active, scope):
        grants[grant.key] = grant
    return DesiredState(grants=grants, members=members)


def _list_grants(synced: Mapping[str, list[AccountAssignment]],
                 scope: Scope) -> Iterable[DesiredGrant]:
    for name in sorted(synced):
        if scope.has_list(name):
            for assignment in synced[name]:
                yield DesiredGrant(GROUP, name, assignment.account.id,
                                   assignment.permission_set.arn, SourceKind.ACCESS_LIST.value,
                                   name)


def _role_grants(user: UserState, allowed: _Allowed) -> Iterable[DesiredGrant]:
    # Deny of any of the user's roles wins, so each role's own allowance is cut down to
    # what the user's roles allow together.
    together = allowed.ids(user.roles)
    for role in sorted(set(user.roles)):
        for assignment in allowed.assignments(allowed.ids([role]) & together):
            yield DesiredGrant(USER, user.name, assignment.account.id,
                               assignment.permission_set.arn, SourceKind.ROLE.value, role)


def _request_grants(snapshot: Snapshot, allowed: _Allowed, active: set[str],
                    scope: Scope) -> Iterable[DesiredGrant]:
    rights: dict[tuple[frozenset[str], tuple[str, ...], tuple[str, ...]], bool] = {}
    for request in snapshot.requests:
        if request.user not in active or not scope.has_user(request.user):
            continue
        if request.expires_at is not None and request.expires_at <= snapshot.now:
            continue  # the expiry sweep moves it to EXPIRED; it grants nothing any more
        if not _may_still_request(snapshot, request, rights):
            continue
        ids = set(request.resources)
        for role in request.roles:
            ids |= allowed.ids([role])
        for assignment in allowed.assignments(ids):
            yield DesiredGrant(USER, request.user, assignment.account.id,
                               assignment.permission_set.arn, SourceKind.REQUEST.value,
                               request.id, request.expires_at)


def _may_still_request(snapshot: Snapshot, request: ApprovedRequest,
                       memo: dict[tuple[frozenset[str], tuple[str, ...], tuple[str, ...]], bool],
                       ) -> bool:
    """The requester's right to ask, re-checked at provisioning: a removed role or
    membership takes the request's grants with it. Memoised: many requests share terms."""
    user = snapshot.users[request.user]
    names = frozenset(effective_roles(user=user.name, user_roles=user.roles,
                                      lists=snapshot.lists, at=snapshot.now))
    key = (names, request.roles, request.resources)
    if key not in memo:
        held = [snapshot.roles[name] for name in sorted(names) if name in snapshot.roles]
        try:
            request_terms(held=held, catalog=snapshot.catalog, all_roles=dict(snapshot.roles),
                          roles=request.roles, assignments=request.resources)
            memo[key] = True
        except PolicyDenied:
            memo[key] = False
    return memo[key]


def _imported_grants(snapshot: Snapshot, active: set[str],
                     scope: Scope) -> Iterable[DesiredGrant]:
    for grant in snapshot.grants:
        if grant.source_kind != SourceKind.IMPORTED.value or grant.being_revoked:
            continue
        if not scope.has(grant.principal_type, grant.principal_name):
            continue
        if grant.principal_type == USER and grant.principal_name not in active:
            continue
        yield DesiredGrant(grant.principal_type, grant.principal_name, grant.account_id,
                           grant.permission_set_arn, grant.source_kind, grant.source_id,
                           grant.expires_at)


def membership_lists(desired: DesiredState, snapshot: Snapshot) -> list[str]:
    """The synced lists whose group memberships a sync in ``snapshot.scope`` must push.

    A full sync: all. A targeted one: ``snapshot.pushed_lists`` (the scoped lists, the lists
    nesting them, the scoped users' lists); every list when a scoped user is suspended or
    gone (they must leave groups the ledger no longer names for them).
    """
    scope = snapshot.scope
    users = scope.users or frozenset()
    if scope.full or any(name not in snapshot.users or snapshot.users[name].suspended
                         for name in users):
        return sorted(desired.members)
    flat = flatten(snapshot.lists, at=snapshot.now)
    return sorted(pushed_lists(scope, snapshot.lists, flat) & set(desired.members))

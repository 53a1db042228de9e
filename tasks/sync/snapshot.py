"""What the sync engine reads from the ledger, as plain frozen data.

``load_snapshot`` reads everything desired state is computed from (users, roles, access
lists with their memberships, approved requests, the catalog, live grants, operations in
flight) in the caller's transaction, at one database time. ``load_plan_inputs`` reads what
the planner needs right before it runs (grants move while AWS is being listed).

A ``Scope`` limits both to some principals (a targeted sync); ``None`` fields mean "all".
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, and_, false, or_, select, true, tuple_
from sqlalchemy.orm import Session

from models.domain import (
    AccessListResource,
    AccessListSpec,
    Account,
    AccountAssignment,
    AssignmentKey,
    AssignmentRule,
    Grants,
    ListMember,
    MemberKind,
    Metadata,
    PermissionSet,
    PrincipalType,
    RequestState,
    RoleConditions,
    RoleResource,
    RoleSpec,
)
from models.errors import LedgerError
from models.flatten import MembershipRow, flatten
from models.ledger import tables
from models.ledger.base import database_time
from models.ledger.enums import GrantState, OperationKind, OperationState
from models.policy import CatalogIndex
from tasks.sync.planner import ChangeKind, GrantView, InFlight, NameKey, PrincipalRef

USER, GROUP = PrincipalType.USER.value, PrincipalType.GROUP.value
IN_FLIGHT_STATES = (OperationState.QUEUED, OperationState.SUBMITTED)
ASSIGNMENT_KINDS = {OperationKind.CREATE_ASSIGNMENT.value: ChangeKind.CREATE,
                    OperationKind.DELETE_ASSIGNMENT.value: ChangeKind.DELETE}


@dataclass(frozen=True)
class Scope:
    """Which principals a sync looks at; None = all of that kind."""

    users: frozenset[str] | None = None
    lists: frozenset[str] | None = None

    @classmethod
    def of(cls, *, users: Iterable[str] = (), lists: Iterable[str] = ()) -> Scope:
        """A targeted scope: exactly these users and lists."""
        return cls(users=frozenset(users), lists=frozenset(lists))

    @property
    def full(self) -> bool:
        return self.users is None and self.lists is None

    def has_user(self, name: str) -> bool:
        return self.users is None or name in self.users

    def has_list(self, name: str) -> bool:
        return self.lists is None or name in self.lists

    def has(self, principal_type: str, name: str) -> bool:
        return self.has_user(name) if principal_type == USER else self.has_list(name)


FULL = Scope()


@dataclass(frozen=True)
class UserState:
    name: str
    roles: tuple[str, ...] = ()
    suspended: bool = False
    principal_id: str | None = None
    email: str | None = None
    given_name: str | None = None
    family_name: str | None = None


@dataclass(frozen=True)
class ApprovedRequest:
    id: str
    user: str
    roles: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()  # "<account-id>/<permission-set-name>"
    expires_at: datetime | None = None


@dataclass(frozen=True)
class Snapshot:
    """The ledger at one database time, as the desired-state computation needs it."""

    now: datetime
    users: Mapping[str, UserState]
    roles: Mapping[str, RoleResource]
    lists: Mapping[str, AccessListResource]
    group_ids: Mapping[str, str | None]
    requests: tuple[ApprovedRequest, ...]
    catalog: CatalogIndex
    grants: tuple[GrantView, ...]
    in_flight: tuple[InFlight, ...] = ()
    vanished_accounts: Mapping[str, str] = field(default_factory=dict)  # id -> name
    vanished_permission_sets: Mapping[str, str] = field(default_factory=dict)  # arn -> name
    scope: Scope = FULL

    def principal_ids(self) -> dict[PrincipalRef, str | None]:
        """Every known principal's Identity Center id (None: not pushed yet)."""
        ids: dict[PrincipalRef, str | None] = {(USER, u.name): u.principal_id
                                               for u in self.users.values()}
        ids.update({(GROUP, name): gid for name, gid in self.group_ids.items()})
        return ids


@dataclass(frozen=True)
class PlanInputs:
    """What the planner needs, read right before planning."""

    now: datetime
    grants: tuple[GrantView, ...]
    in_flight: tuple[InFlight, ...]
    principal_ids: Mapping[PrincipalRef, str | None]
    history: frozenset[NameKey]
    present_accounts: tuple[str, ...]


# --- loading ---------------------------------------------------------------------------------


def load_snapshot(session: Session, *, scope: Scope = FULL) -> Snapshot:
    """Everything desired state is computed from, in the caller's transaction."""
    now = database_time(session)
    lists, group_ids = load_lists(session)
    accounts, permission_sets = _load_catalog_rows(session)
    users = load_users(session, names=_users_in_scope(session, scope, lists, now))
    return Snapshot(
        now=now, users=users, roles=load_roles(session), lists=lists, group_ids=group_ids,
        requests=load_approved_requests(session, users=scope.users),
        catalog=_catalog(accounts, permission_sets),
        grants=tuple(load_live_grants(session, scope=scope)),
        in_flight=tuple(load_in_flight(session)),
        vanished_accounts={a.id: a.name for a in accounts if not a.present},
        vanished_permission_sets={p.arn: p.name for p in permission_sets if not p.present},
        scope=scope,
    )


def _users_in_scope(session: Session, scope: Scope, lists: Mapping[str, AccessListResource],
                    now: datetime) -> Collection[str] | None:
    """The users a sync must know: all for a full sync, or when a scoped user is suspended
    or gone (every group may have to drop them); else the scoped users and every member of
    the lists whose groups the sync pushes (``pushed_lists``)."""
    if scope.full:
        return None
    users = scope.users or frozenset()
    known = load_users(session, names=users)
    if any(name not in known or known[name].suspended for name in users):
        return None
    members = flatten(lists, at=now)
    names = set(users)
    for list_name in pushed_lists(scope, lists, members):
        names.update(members.get(list_name, ()))
    return names


def pushed_lists(scope: Scope, lists: Mapping[str, AccessListResource],
                 members: Mapping[str, frozenset[str]]) -> set[str]:
    """The lists whose group membership a targeted sync pushes: the scoped lists, every list
    nesting them (their flattened members change too), and the lists of the scoped users."""
    users = scope.users or frozenset()
    found = with_ancestors(scope.lists or frozenset(), lists)
    found.update(name for name, flat in members.items() if flat & users)
    return found


def with_ancestors(names: Iterable[str], lists: Mapping[str, AccessListResource]) -> set[str]:
    """The lists and every list nesting them, directly or not."""
    parents: dict[str, set[str]] = {}
    for name, access_list in lists.items():
        for member in access_list.spec.members:
            if member.kind is MemberKind.ACCESS_LIST:
                parents.setdefault(member.name, set()).add(name)
    found, stack = set(names), list(names)
    while stack:
        for parent in parents.get(stack.pop(), ()):
            if parent not in found:
                found.add(parent)
                stack.append(parent)
    return found


def load_users(session: Session, *, names: Collection[str] | None = None
               ) -> dict[str, UserState]:
    statement = select(tables.User)
    if names is not None:
        statement = statement.where(tables.User.name.in_(sorted(names)))
    return {row.name: UserState(
        name=row.name, roles=tuple(row.roles or ()), suspended=row.suspended,
        principal_id=row.principal_id, email=row.email, given_name=row.given_name,
        family_name=row.family_name) for row in session.scalars(statement)}


def load_roles(session: Session) -> dict[str, RoleResource]:
    """Every role; a system role without a stored spec allows its one assignment."""
    roles = {}
    for row in session.scalars(select(tables.Role)):
        try:
            spec = RoleSpec.model_validate(row.spec or {})
        except ValueError as err:
            raise LedgerError(f"role {row.name!r} in the ledger is unreadable: {err}") from err
        if not row.spec and row.system_account_id and row.system_permission_set_arn:
            spec = RoleSpec(allow=RoleConditions(account_assignments=[AssignmentRule(
                account=row.system_account_id, permission_set=row.system_permission_set_arn)]))
        roles[row.name] = RoleResource.model_construct(
            kind="role", metadata=Metadata.model_construct(name=row.name), spec=spec)
    return roles


def load_memberships(session: Session) -> list[MembershipRow]:
    """Every membership as (list, member, kind, expires), in the order they were made.
    Columns, not ORM entities: building thousands of tracked instances cost most of the time
    of every per-user read (the portal's My access, /v1/grants?user=)."""
    membership = tables.Membership
    return [(list_name, name, MemberKind(kind), expires)
            for list_name, name, kind, expires in session.execute(
                select(membership.list_name, membership.member_name, membership.member_kind,
                       membership.expires_at).order_by(membership.id))]


def load_lists(session: Session) -> tuple[dict[str, AccessListResource], dict[str, str | None]]:
    """Access lists with their memberships (built unvalidated: rows were validated on the
    way in, and imported group names need not follow YAML name rules), and group ids."""
    access_list = tables.AccessList
    members: dict[str, list[ListMember]] = {}
    for list_name, name, kind, expires in load_memberships(session):
        members.setdefault(list_name, []).append(ListMember.model_construct(
            name=name, kind=MemberKind(kind), expires=expires))
    lists, group_ids = {}, {}
    for name, title, granted_roles, group_id in session.execute(
            select(access_list.name, access_list.title, access_list.granted_roles,
                   access_list.group_id)):
        lists[name] = AccessListResource.model_construct(
            kind="access_list", metadata=Metadata.model_construct(name=name),
            spec=AccessListSpec.model_construct(
                title=title or name, members=members.get(name, []),
                grants=Grants.model_construct(roles=list(granted_roles or ()))))
        group_ids[name] = group_id
    return lists, group_ids


def load_approved_requests(session: Session, *, users: Collection[str] | None = None
                           ) -> tuple[ApprovedRequest, ...]:
    """APPROVED requests of users that exist: joined by immutable id, so a request of a
    deleted user never grants anything to a new user of the same name."""
    statement = (select(tables.AccessRequest, tables.User.name)
                 .join(tables.User, tables.User.id == tables.AccessRequest.user_id)
                 .where(tables.AccessRequest.state == RequestState.APPROVED))
    if users is not None:
        statement = statement.where(tables.User.name.in_(sorted(users)))
    return tuple(ApprovedRequest(id=r.id, user=name, roles=tuple(r.roles or ()),
                                 resources=tuple(r.resources or ()), expires_at=r.expires_at)
                 for r, name in session.execute(statement.order_by(tables.AccessRequest.id)))


def _load_catalog_rows(session: Session) -> tuple[list[tables.Account],
                                                  list[tables.PermissionSet]]:
    return (list(session.scalars(select(tables.Account).order_by(tables.Account.id))),
            list(session.scalars(select(tables.PermissionSet)
                                 .order_by(tables.PermissionSet.arn))))


def _catalog(accounts: list[tables.Account],
             permission_sets: list[tables.PermissionSet]) -> CatalogIndex:
    """Present accounts x present permission sets (any set may go on any account)."""
    present = [Account.model_construct(id=a.id, name=a.name, ou_path=a.ou_path)
               for a in accounts if a.present]
    sets = [PermissionSet.model_construct(arn=p.arn, name=p.name, description=p.description)
            for p in permission_sets if p.present]
    return CatalogIndex(AccountAssignment.model_construct(account=a, permission_set=p)
                        for a in present for p in sets)


def _in_scope(scope: Scope) -> ColumnElement[bool]:
    """A WHERE clause on grants limiting them to the scope's principals."""
    if scope.full:
        return true()
    clauses = []
    if scope.users is None or scope.users:
        users = tables.Grant.principal_type == USER
        clauses.append(users if scope.users is None else and_(
            users, tables.Grant.principal_name.in_(sorted(scope.users))))
    if scope.lists is None or scope.lists:
        groups = tables.Grant.principal_type == GROUP
        clauses.append(groups if scope.lists is None else and_(
            groups, tables.Grant.principal_name.in_(sorted(scope.lists))))
    return or_(*clauses) if clauses else false()


def load_live_grants(session: Session, *, scope: Scope = FULL,
                     keys: Collection[NameKey] | None = None) -> list[GrantView]:
    """Live (not REVOKED) grants in scope, or on the given assignments, oldest first."""
    statement = select(tables.Grant).where(tables.Grant.state != GrantState.REVOKED,
                                           _in_scope(scope))
    if keys is not None:
        statement = statement.where(_on_assignments(keys))
    rows = session.scalars(statement.order_by(tables.Grant.id)
                           .execution_options(populate_existing=True))
    return [grant_view(row) for row in rows]


def _on_assignments(keys: Collection[NameKey]) -> ColumnElement[bool]:
    columns = tuple_(tables.Grant.principal_type, tables.Grant.principal_name,
                     tables.Grant.account_id, tables.Grant.permission_set_arn)
    return columns.in_(sorted(keys)) if keys else false()


def grant_view(row: tables.Grant) -> GrantView:
    return GrantView(
        id=row.id, principal_type=str(row.principal_type), principal_name=row.principal_name,
        account_id=row.account_id, permission_set_arn=row.permission_set_arn,
        state=GrantState(row.state), source_kind=str(row.source_kind), source_id=row.source_id,
        principal_id=row.principal_id,
        failed_from=GrantState(row.failed_from) if row.failed_from else None,
        expires_at=row.expires_at, attempts=row.attempts, updated_at=row.updated_at)


def load_in_flight(session: Session) -> list[InFlight]:
    """Create/delete operations recorded and not settled (the state index finds them)."""
    rows = session.scalars(select(tables.Operation).where(
        tables.Operation.state.in_(IN_FLIGHT_STATES),
        tables.Operation.kind.in_(sorted(ASSIGNMENT_KINDS))).order_by(tables.Operation.id))
    return [InFlight(row.id, ASSIGNMENT_KINDS[row.kind], operation_key(row)) for row in rows
            if row.principal_id and row.account_id and row.permission_set_arn]


def operation_key(row: tables.Operation) -> AssignmentKey:
    return AssignmentKey(str(row.principal_type), row.principal_id or "", row.account_id or "",
                         row.permission_set_arn or "")


def load_history(session: Session, *, scope: Scope = FULL) -> frozenset[NameKey]:
    """Every assignment any grant row ever named (revoked ones too)."""
    statement = select(tables.Grant.principal_type, tables.Grant.principal_name,
                       tables.Grant.account_id, tables.Grant.permission_set_arn
                       ).where(_in_scope(scope)).distinct()
    return frozenset((str(t), n, a, p) for t, n, a, p in session.execute(statement))


def load_principal_ids(session: Session, *, scope: Scope = FULL) -> dict[PrincipalRef, str | None]:
    users = select(tables.User.name, tables.User.principal_id)
    lists = select(tables.AccessList.name, tables.AccessList.group_id)
    if scope.users is not None:
        users = users.where(tables.User.name.in_(sorted(scope.users)))
    if scope.lists is not None:
        lists = lists.where(tables.AccessList.name.in_(sorted(scope.lists)))
    ids: dict[PrincipalRef, str | None] = {(USER, n): pid for n, pid in session.execute(users)}
    ids.update({(GROUP, n): gid for n, gid in session.execute(lists)})
    return ids


def load_plan_inputs(session: Session, *, scope: Scope = FULL) -> PlanInputs:
    """Grants, operations in flight, principal ids and history, at one database time."""
    present = session.scalars(select(tables.Account.id).where(tables.Account.present)
                              .order_by(tables.Account.id))
    return PlanInputs(
        now=database_time(session), grants=tuple(load_live_grants(session, scope=scope)),
        in_flight=tuple(load_in_flight(session)),
        principal_ids=load_principal_ids(session, scope=scope),
        history=load_history(session, scope=scope), present_accounts=tuple(present))


def assignment_key_of(grant: GrantView, principal_ids: Mapping[PrincipalRef, str | None]
                      ) -> AssignmentKey | None:
    """The AWS key of a grant's assignment, or None while its principal has no id."""
    principal_id = principal_ids.get((grant.principal_type, grant.principal_name)) \
        or grant.principal_id
    if not principal_id:
        return None
    return AssignmentKey(grant.principal_type, principal_id, grant.account_id,
                         grant.permission_set_arn)

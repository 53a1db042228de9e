"""Desired state from roles, access lists, requests and suspension; and the pure
reconciliation of desired grants with the ledger's live ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from models.domain import (
    AccessListResource,
    Account,
    AccountAssignment,
    PermissionSet,
    RoleResource,
)
from models.ledger.enums import GrantState
from models.policy import CatalogIndex
from tasks.sync.desired import DesiredGrant, desired_state, membership_lists
from tasks.sync.planner import GrantView
from tasks.sync.reconcile import reconcile, resulting_grants
from tasks.sync.snapshot import ApprovedRequest, Scope, Snapshot, UserState

NOW = datetime(2026, 3, 1, 9, tzinfo=UTC)
PROD, STAGE = Account(id="111111111111", name="Production"), Account(id="222222222222",
                                                                    name="Staging")
ADMIN = PermissionSet(arn="arn:aws:sso:::permissionSet/i/ps-admin", name="AdministratorAccess")
READ = PermissionSet(arn="arn:aws:sso:::permissionSet/i/ps-read", name="ReadOnlyAccess")
CATALOG = CatalogIndex(AccountAssignment(account=a, permission_set=p)
                       for a in (PROD, STAGE) for p in (ADMIN, READ))


def role(name: str, allow: list[tuple[str, str]], deny: list[tuple[str, str]] = ()
         ) -> RoleResource:
    rules = {"allow": {"account_assignments": [{"account": a, "permission_set": p}
                                               for a, p in allow]},
             "deny": {"account_assignments": [{"account": a, "permission_set": p}
                                              for a, p in deny]}}
    return RoleResource.model_validate({"kind": "role", "metadata": {"name": name},
                                        "spec": rules})


def access_list(name: str, roles: list[str], users: list[str] = (),
                lists: list[str] = (), expired: list[str] = ()) -> AccessListResource:
    members = [{"name": u} for u in users] + [{"name": n, "kind": "access_list"}
                                              for n in lists]
    members += [{"name": u, "expires": NOW - timedelta(minutes=1)} for u in expired]
    return AccessListResource.model_validate({
        "kind": "access_list", "metadata": {"name": name},
        "spec": {"title": name, "members": members, "grants": {"roles": roles}}})


REQUESTER = RoleResource.model_validate({
    "kind": "role", "metadata": {"name": "requester"},
    "spec": {"allow": {"request": {"roles": ["*"], "account_assignments": [
        {"account": "*", "permission_set": "*"}]}}}})
ROLES = {r.name: r for r in (
    REQUESTER,
    role("prod-admin", [("Production", "AdministratorAccess")]),
    role("read-all", [("*", "ReadOnlyAccess")]),
    role("no-staging", [], deny=[("Staging", "*")]),
    role("nothing", [("999999999999", "*")]),
)}


def snapshot(*, users: list[UserState] = (), lists: list[AccessListResource] = (),
             requests: list[ApprovedRequest] = (), grants: list[GrantView] = (),
             scope: Scope = Scope()) -> Snapshot:
    return Snapshot(now=NOW, users={u.name: u for u in users}, roles=ROLES,
                    lists={a.name: a for a in lists}, group_ids={a.name: None for a in lists},
                    requests=tuple(requests), catalog=CATALOG, grants=tuple(grants),
                    scope=scope)


def keys(state) -> set[tuple[str, ...]]:
    return {(g.principal_type, g.principal_name, g.account_id, g.permission_set_arn,
             g.source_kind) for g in state.grants.values()}


def test_a_list_whose_roles_allow_assignments_is_one_group_with_flattened_members():
    state = desired_state(snapshot(
        users=[UserState("alice"), UserState("bob"), UserState("carol", suspended=True)],
        lists=[access_list("admins", ["prod-admin"], users=["alice", "carol"], lists=["oncall"]),
               access_list("oncall", [], users=["bob"]),
               access_list("useless", ["nothing"], users=["alice"])]))
    assert keys(state) == {("GROUP", "admins", PROD.id, ADMIN.arn, "access_list")}
    assert state.members == {"admins": frozenset({"alice", "bob"})}  # carol is suspended
    grant = next(iter(state.grants.values()))
    assert grant.expires_at is None and grant.source_id == "admins"


def test_expired_membership_is_not_desired():
    state = desired_state(snapshot(users=[UserState("alice")], lists=[
        access_list("admins", ["prod-admin"], expired=["alice"])]))
    assert state.members == {"admins": frozenset()}


def test_direct_roles_give_user_grants_per_role_with_deny_winning():
    state = desired_state(snapshot(users=[UserState("alice", roles=("read-all", "no-staging")),
                                          UserState("bob", roles=("read-all", "ghost-role"))]))
    assert keys(state) == {("USER", "alice", PROD.id, READ.arn, "role"),
                           ("USER", "bob", PROD.id, READ.arn, "role"),
                           ("USER", "bob", STAGE.id, READ.arn, "role")}
    assert {g.source_id for g in state.grants.values()} == {"read-all"}


def test_approved_request_grants_its_resources_and_roles_until_it_expires():
    ends = NOW + timedelta(hours=1)
    state = desired_state(snapshot(users=[UserState("alice", roles=("requester",)),
                                          UserState("eve", roles=("requester",),
                                                    suspended=True)],
                                   requests=[
        ApprovedRequest("req-1", "alice", resources=(f"{STAGE.id}/AdministratorAccess",),
                        roles=("prod-admin",), expires_at=ends),
        ApprovedRequest("req-2", "alice", resources=(f"{STAGE.id}/ReadOnlyAccess",),
                        expires_at=NOW),
        ApprovedRequest("req-3", "eve", resources=(f"{STAGE.id}/ReadOnlyAccess",),
                        expires_at=ends)]))
    assert keys(state) == {("USER", "alice", STAGE.id, ADMIN.arn, "request"),
                           ("USER", "alice", PROD.id, ADMIN.arn, "request")}
    assert {(g.source_id, g.expires_at) for g in state.grants.values()} == {("req-1", ends)}


def test_a_request_whose_requester_lost_the_right_to_ask_grants_nothing():
    wanted = ApprovedRequest("req-1", "alice", resources=(f"{STAGE.id}/AdministratorAccess",),
                             expires_at=NOW + timedelta(hours=1))
    entitled = snapshot(users=[UserState("alice", roles=("requester",))], requests=[wanted])
    assert keys(desired_state(entitled)) == {("USER", "alice", STAGE.id, ADMIN.arn,
                                              "request")}
    # The requester role was taken away after the approval: provisioning re-checks it.
    lost = snapshot(users=[UserState("alice")], requests=[wanted])
    assert keys(desired_state(lost)) == set()
    # Held through an access list counts, like at request time.
    via_list = snapshot(users=[UserState("alice")], requests=[wanted],
                        lists=[access_list("requesters", ["requester"], users=["alice"])])
    assert keys(desired_state(via_list)) == {("USER", "alice", STAGE.id, ADMIN.arn,
                                              "request")}


def test_imported_grants_stay_desired_until_revoked_except_for_suspended_users():
    def imported(grant_id: int, name: str, state: GrantState) -> GrantView:
        return GrantView(grant_id, "USER", name, PROD.id, READ.arn, state,
                         source_kind="imported", source_id="enrolment")

    state = desired_state(snapshot(
        users=[UserState("alice"), UserState("bob", suspended=True), UserState("carol")],
        grants=[imported(1, "alice", GrantState.ACTIVE), imported(2, "bob", GrantState.ACTIVE),
                imported(3, "carol", GrantState.REVOKING)]))
    assert keys(state) == {("USER", "alice", PROD.id, READ.arn, "imported")}


def test_targeted_scope_limits_grants_and_membership_pushes():
    lists = [access_list("admins", ["prod-admin"], users=["alice"], lists=["oncall"]),
             access_list("oncall", ["read-all"], users=["bob"]),
             access_list("readers", ["read-all"], users=["carol"])]
    users = [UserState("alice", roles=("read-all",)), UserState("bob"), UserState("carol")]
    scoped = snapshot(users=users, lists=lists, scope=Scope.of(lists=["oncall"]))
    state = desired_state(scoped)
    assert {g.principal_name for g in state.grants.values()} == {"oncall"}
    # oncall is nested in admins: admins' flattened group changes too
    assert membership_lists(state, scoped) == ["admins", "oncall"]
    by_user = snapshot(users=users, lists=lists, scope=Scope.of(users=["carol"]))
    assert membership_lists(desired_state(by_user), by_user) == ["readers"]
    suspended = snapshot(users=[UserState("bob", suspended=True)], lists=lists,
                         scope=Scope.of(users=["bob"]))
    assert membership_lists(desired_state(suspended), suspended) == ["admins", "oncall",
                                                                     "readers"]


# --- reconcile (pure) ------------------------------------------------------------------------


def live(grant_id: int, state: GrantState, *, source: str = "role", source_id: str = "r",
         expires_at: datetime | None = None, account: str = PROD.id,
         failed_from: GrantState | None = None) -> GrantView:
    return GrantView(grant_id, "USER", "alice", account, READ.arn, state, source_kind=source,
                     source_id=source_id, expires_at=expires_at, failed_from=failed_from)


def wanted(source: str = "role", source_id: str = "r", expires_at: datetime | None = None,
           account: str = PROD.id) -> DesiredGrant:
    return DesiredGrant("USER", "alice", account, READ.arn, source, source_id, expires_at)


def test_reconcile_inserts_revokes_extends_and_fails_vanished():
    later = NOW + timedelta(hours=2)
    desired = {d.key: d for d in (wanted(), wanted("request", "req-1", later),
                                  wanted("role", "new-role"))}
    result = reconcile(desired=desired, live=[
        live(1, GrantState.ACTIVE),  # still desired: untouched
        live(2, GrantState.ACTIVE, source="request", source_id="req-1", expires_at=NOW),
        live(3, GrantState.PENDING, source_id="gone"),
        live(4, GrantState.REVOKING, source_id="going"),  # already on its way out
        live(5, GrantState.ACTIVE, source_id="x", account="333333333333"),
    ], vanished_accounts={"333333333333": "Closed"})
    assert [d.source_id for d in result.insert] == ["new-role"]
    assert [g.id for g in result.revoke] == [3]
    assert [(g.id, when) for g, when in result.extend] == [(2, later)]
    assert [(g.id, reason) for g, reason in result.vanish] == [
        (5, "account 333333333333 (Closed) no longer exists in the Organization")]


def test_reconcile_moves_the_expiry_of_a_failed_create_not_of_a_failed_delete():
    later = NOW + timedelta(hours=2)
    desired = {d.key: d for d in (wanted("request", "req-1", later),
                                  wanted("request", "req-2", later))}
    result = reconcile(desired=desired, live=[
        live(1, GrantState.FAILED, source="request", source_id="req-1", expires_at=NOW,
             failed_from=GrantState.PROVISIONING),  # sync retries it with this expiry
        live(2, GrantState.FAILED, source="request", source_id="req-2", expires_at=NOW,
             failed_from=GrantState.REVOKING),  # on its way out
    ])
    assert [(g.id, when) for g, when in result.extend] == [(1, later)]


def test_resulting_grants_show_a_dry_run_the_state_after_reconciling():
    result = reconcile(desired={wanted("role", "new").key: wanted("role", "new")},
                       live=[live(1, GrantState.ACTIVE), live(2, GrantState.PENDING,
                                                              source_id="old")])
    after = resulting_grants([live(1, GrantState.ACTIVE), live(2, GrantState.PENDING,
                                                              source_id="old")], result,
                             {("USER", "alice"): "u-alice"})
    assert [(g.id, g.state, g.principal_id) for g in after] == [
        (1, GrantState.REVOKING, None), (-1, GrantState.PENDING, "u-alice")]

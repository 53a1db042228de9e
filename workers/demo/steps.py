"""The nine steps of `grantledger demo`: the seed's story (an Identity Center integration
with access lists and access requests), on the sandbox organization of
ops/examples/sandbox-small.yaml and the policy of ops/examples/demo/.

The cast: alice enrols Identity Center and owns the imported access lists; carol, dave and
erin (the imported Developers list) may request administrator access; bob reviews; frank
joins Developers. Every change goes through the services and the Celery tasks a deployment
runs; only step 8 touches Identity Center directly, because that is its story.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from models.domain import RequestState
from models.errors import PolicyDenied
from models.ledger import kv, tables
from models.ledger.enums import GrantState, OperationKind, SourceKind
from models.resources import load_documents
from tasks.access.membership import add_member
from tasks.access.permissions import Actor, person_in
from tasks.access.request_changes import promote_request
from tasks.access.requests import create_request, review_request
from tasks.access.requests import requestable_for as requestable
from tasks.access.resources import apply_resources
from tasks.events import SYNC_FULL, Next, enqueue
from tasks.importing import importer
from tasks.sync.applier import FOREIGN_KEY
from workers.demo.stage import SAMPLE_EVERY, SETTLE_TIMEOUT, Stage, Step, expect, present
from workers.demo.views import (
    Transition,
    clock,
    counter_delta,
    describe_calls,
    describe_counts,
    group_member_ids,
    is_write,
    merged,
    rows_table,
    seconds_between,
    transitions_table,
    user_names,
)

OWNER, REVIEWER = "alice", "bob"
PRODUCTION_ADMIN_ROLE = "AdministratorAccess-on-Production-111111111111"
PRODUCTION = "111111111111"
LONG, SHORT = timedelta(hours=1), timedelta(seconds=10)
EXPIRY_SLACK = 3.0  # seconds beyond one expiry sweep interval for the delete to be sent


# --- helpers the steps share ------------------------------------------------------------------


def full_sync_task(stage: Stage) -> dict[str, Any]:
    """Run `grantledger.sync.full` on the worker, as beat or `grantledger sync` sends it, and
    return its summary once its work has settled."""
    key = f"demo.sync.{uuid.uuid4().hex}"
    since = stage.last_operation()
    enqueue([Next(SYNC_FULL, kwargs={"report_key": key})])
    stage.follow("the full sync", since_operation=since, until=lambda: _state(stage, key))
    summary = _state(stage, key)
    expect(not summary["errors"], f"the full sync reported errors: {summary['errors']}")
    return summary


def _state(stage: Stage, key: str) -> Any:
    with stage.sessions() as session:
        return kv.read_state(session, key)


def group_of(stage: Stage, access_list: str) -> str:
    """The Identity Center GroupId of an access list."""
    with stage.sessions() as session:
        group_id = session.scalar(select(tables.AccessList.group_id)
                                  .where(tables.AccessList.name == access_list))
    return present(group_id, f"access list {access_list} has no Identity Center group")


def members_in_identity_center(stage: Stage, access_list: str) -> list[str]:
    """The list's group members as identitystore ListGroupMemberships answers (boto3)."""
    group_id = group_of(stage, access_list)
    with stage.outside_grantledger() as sandbox:
        ids = group_member_ids(sandbox, group_id)
    members = user_names(ids, stage.names())
    stage.console.print(f"  Identity Center group of [bold]{access_list}[/] "
                        f"(identitystore ListGroupMemberships): {', '.join(members)}")
    return members


def request_grants(stage: Stage, request_id: str) -> list[tables.Grant]:
    """The ledger grants an access request gave, oldest first."""
    with stage.sessions() as session:
        return list(session.scalars(select(tables.Grant).where(
            tables.Grant.source_kind == SourceKind.REQUEST,
            tables.Grant.source_id == request_id).order_by(tables.Grant.id)))


def user_assignments(stage: Stage, user: str) -> set[str]:
    """``account/permission set`` of the user's own assignments in Identity Center."""
    names = stage.names()
    return {f"{names.accounts.get(account, account)}/{names.permission_sets.get(arn, arn)}"
            for _, principal_id, account, arn in stage.sandbox.assignments()
            if names.principals.get(principal_id) == f"user:{user}"}


def settled_in_order(transitions: list[Transition]) -> dict[int, list[str]]:
    """Per operation, the states it was seen in, in order."""
    seen: dict[int, list[str]] = {}
    for t in transitions:
        seen.setdefault(t.operation_id, []).append(t.state)
    return seen


# --- the story --------------------------------------------------------------------------------


def preview(stage: Stage) -> str:
    """Seed step 2: what Identity Center holds and what an import would make of it."""
    found = importer.preview(runtime=stage.runtime)
    show = stage.console.print
    show(rows_table(found.accounts, ("id", "name", "ou_path"), title="accounts"))
    show(rows_table(found.permission_sets, ("name", "description"), title="permission sets"))
    show(rows_table(found.groups, ("display_name", "access_list", "members", "assignments",
                                   "status"), title="groups (each becomes an access list)"))
    expect(not found.enrolled, "the ledger is already enrolled: the demo needs a fresh one")
    expect(len(found.groups) == 3 and {g["status"] for g in found.groups} == {"import"},
           f"expected 3 groups to import, found {found.groups}")
    return (f"{len(found.accounts)} accounts, {len(found.permission_sets)} permission sets, "
            f"{len(found.groups)} groups, {len(found.users)} users; nothing written yet")


def enrol(stage: Stage) -> str:
    """Import with a default owner; the first full sync must change nothing in AWS."""
    summary = importer.run_import(runtime=stage.runtime, default_owners=[OWNER], actor=OWNER)
    expect(summary.enrolled_now, "the import did not enrol")
    new = summary.new
    stage.console.print(
        f"  imported {len(new['access_lists'])} access lists ({', '.join(new['access_lists'])}"
        f"; owner {OWNER}), {len(new['system_roles'])} system roles, {len(new['users'])} "
        f"users, {summary.new_grants} grants (ACTIVE: they exist in AWS already); "
        f"import: {summary.aws_calls} AWS read calls")
    before = stage.sandbox.calls()
    sync = full_sync_task(stage)
    calls = counter_delta(before, stage.sandbox.calls())
    writes = {name: n for name, n in calls.items() if is_write(name)}
    stage.console.print(f"  first full sync: {describe_calls(calls)}; "
                        f"{describe_counts(sync['counts'])}")
    expect(not writes, f"the first sync changed Identity Center: {writes}")
    return f"enrolled; the first sync made {sum(calls.values())} AWS calls, 0 of them changes"


def apply_policy(stage: Stage, policy_dir: Path) -> str:
    """Apply the demo's roles and lists: who may request elevation, and who reviews."""
    since = stage.last_operation()
    loaded = load_documents(sorted(policy_dir.glob("*.yaml")))
    result = apply_resources(sessions=stage.sessions, loaded=loaded, actor=OWNER,
                             max_nesting_depth=stage.runtime.settings.max_nesting_depth)
    stage.console.print(rows_table([c.as_row() for c in result.changes],
                                   ("kind", "name", "action"), title=f"apply -f {policy_dir}"))
    stage.follow("the sync after apply", since_operation=since)
    offer = requestable(sessions=stage.sessions, viewer=demo_person(stage, "carol"))
    stage.console.print(rows_table(offer.rows(), ("kind", "name", "max_duration", "approvals",
                                                  "break_glass"), title="carol may request"))
    expect({c.action for c in result.changes} == {"created"}, "the demo policy was not new")
    expect(PRODUCTION_ADMIN_ROLE in offer.roles, "carol may not request production admin")
    return f"{len(result.changes)} resources created; developers may request admin access"


def demo_person(stage: Stage, name: str) -> Actor:
    """A demo character acting through the portal-like path: a person resolved by name."""
    return person_in(stage.sessions, name=name, via="demo")


def owner_adds_member(stage: Stage) -> str:
    """An owner adds frank to an imported list; the group follows in Identity Center."""
    since = stage.last_operation()
    change = add_member(sessions=stage.sessions, list_name="developers", member="frank",
                        kind="user", actor=demo_person(stage, OWNER),
                        reason="frank moves to the product team",
                        max_nesting_depth=stage.runtime.settings.max_nesting_depth)
    stage.console.print(f"  {OWNER} (owner) added frank to developers: {change.action}")
    stage.follow("the membership sync", since_operation=since)
    members = members_in_identity_center(stage, "developers")
    expect("frank" in members, f"frank is not in the Developers group: {members}")
    return "frank is a member of the Developers group in Identity Center"


def requests_approved(stage: Stage) -> str:
    """A role request and a resource request over two accounts, approved by bob."""
    since, started = stage.last_operation(), stage.now()
    role_request = create_request(sessions=stage.sessions, actor=demo_person(stage, "carol"),
                                  roles=[PRODUCTION_ADMIN_ROLE], duration=LONG,
                                  reason="release night: production migration")
    resource_request = create_request(
        sessions=stage.sessions, duration=LONG, actor=demo_person(stage, "dave"),
        resources=["Staging/AdministratorAccess", "Sandbox/AdministratorAccess"],
        reason="debug the failing deploy on staging and sandbox")
    stage.requests["dave"] = resource_request.id
    for request in (role_request, resource_request):
        review_request(sessions=stage.sessions, request_id=request.id,
                       actor=demo_person(stage, REVIEWER), decision="approve",
                       reason="looks right")
    stage.console.print(f"  carol asked for role {PRODUCTION_ADMIN_ROLE}; dave for Staging and "
                        f"Sandbox AdministratorAccess; {REVIEWER} approved both")
    transitions = stage.follow("the approved requests", since_operation=since)
    stage.console.print(transitions_table(transitions, since=started))
    journeys = settled_in_order(transitions)
    expect(len(journeys) == 3, f"expected 3 assignment creates, saw {len(journeys)}")
    expect(all(j[-1] == "SUCCEEDED" and "SUBMITTED" in j for j in journeys.values()),
           f"every create should go IN_PROGRESS, then SUCCEEDED: {journeys}")
    expect(user_assignments(stage, "dave") == {"Staging/AdministratorAccess",
                                               "Sandbox/AdministratorAccess"},
           "dave's assignments are not in Identity Center")
    return "3 assignments created: IN_PROGRESS, then SUCCEEDED"


def short_request_expires(stage: Stage) -> str:
    """A 10-second request: created, then deleted on time by the expiry sweep."""
    since, started = stage.last_operation(), stage.now()
    request = create_request(sessions=stage.sessions, duration=SHORT,
                             resources=["Sandbox/AdministratorAccess"],
                             actor=demo_person(stage, "erin"),
                             reason="rotate the sandbox deploy key")
    approved = review_request(sessions=stage.sessions, request_id=request.id,
                              actor=demo_person(stage, REVIEWER), decision="approve")
    stage.console.print(f"  erin asked for Sandbox/AdministratorAccess for {SHORT.seconds}s; "
                        f"{REVIEWER} approved; it expires at "
                        f"{clock(present(approved.expires_at, 'no expiry'))}")
    created = stage.follow("erin's assignment", since_operation=since)
    expect(user_assignments(stage, "erin"), "erin's assignment was not created")
    stage.console.print("  the assignment exists; waiting for the expiry sweep ...")

    def revoked() -> bool:
        return all(g.state is GrantState.REVOKED for g in request_grants(stage, request.id))

    expired = stage.follow("the expiry", since_operation=since, until=revoked,
                           timeout=SHORT.total_seconds() + SETTLE_TIMEOUT)
    stage.console.print(transitions_table(merged(created, expired), since=started))
    gap = delete_gap(stage, request.id)
    limit = stage.runtime.settings.expiry_interval + EXPIRY_SLACK
    expect(not user_assignments(stage, "erin"), "erin's assignment outlived its expiry")
    expect(0 <= gap <= limit, f"the delete was sent {gap:.2f}s after expiry (limit {limit}s)")
    return f"expired and deleted: DeleteAccountAssignment sent {gap:.2f}s after expires_at"


def delete_gap(stage: Stage, request_id: str) -> float:
    """Seconds from the grant's expires_at to its DeleteAccountAssignment being submitted,
    both on the database clock; printed as the ledger has them."""
    [grant] = request_grants(stage, request_id)
    with stage.sessions() as session:
        delete = session.scalars(select(tables.Operation).where(
            tables.Operation.grant_id == grant.id,
            tables.Operation.kind == OperationKind.DELETE_ASSIGNMENT.value)).one()
    stage.console.print(rows_table([{
        "grant": grant.id, "expires_at": grant.expires_at, "delete recorded": delete.created_at,
        "delete submitted": delete.submitted_at, "AWS settled": delete.finished_at}],
        ("grant", "expires_at", "delete recorded", "delete submitted", "AWS settled"),
        title="from the ledger (database clock)"))
    return seconds_between(present(grant.expires_at, "the grant has no expiry"),
                           present(delete.submitted_at, "the delete was never sent"))


def promotion(stage: Stage) -> str:
    """dave's request becomes membership of platform-admins; his own grants retire."""
    since, started = stage.last_operation(), stage.now()
    request_id = stage.requests["dave"]
    # platform-admins grants more than dave asked for: the owner confirms it knowingly.
    promote_request(sessions=stage.sessions, request_id=request_id,
                    access_list="platform-admins", actor=demo_person(stage, OWNER),
                    confirm_broader=True)
    stage.console.print(f"  {OWNER} (owner of platform-admins) promoted dave's request "
                        f"{request_id} to long-term membership")
    transitions = stage.follow("the promotion", since_operation=since)
    stage.console.print(transitions_table(transitions, since=started))
    members = members_in_identity_center(stage, "platform-admins")
    joined, first_delete = promotion_times(stage, request_id)
    stage.console.print(f"  ledger: dave's group membership pushed at {clock(joined)}, first "
                        f"temporary assignment delete sent at {clock(first_delete)}")
    expect("dave" in members, f"dave is not in the Platform Admins group: {members}")
    expect(not user_assignments(stage, "dave"), "dave's temporary assignments are still there")
    expect({g.state for g in request_grants(stage, request_id)} == {GrantState.REVOKED},
           "dave's temporary grants were not retired")
    expect(joined <= first_delete, "a temporary assignment went before the membership came")
    return "dave joined Platform Admins before his temporary grants were retired: no gap"


def promotion_times(stage: Stage, request_id: str) -> tuple[Any, Any]:
    """When the group membership reached Identity Center, and the first delete was sent."""
    grant_ids = [g.id for g in request_grants(stage, request_id)]
    with stage.sessions() as session:
        joined = session.scalar(select(tables.AuditEvent.at).where(
            tables.AuditEvent.action == "group.members_synced",
            tables.AuditEvent.target == "platform-admins")
            .order_by(tables.AuditEvent.id.desc()).limit(1))
        first_delete = session.scalar(select(tables.Operation.submitted_at).where(
            tables.Operation.grant_id.in_(grant_ids),
            tables.Operation.kind == OperationKind.DELETE_ASSIGNMENT.value)
            .order_by(tables.Operation.submitted_at).limit(1))
    expect(joined and first_delete, "the promotion left no membership push or delete")
    return joined, first_delete


def drift(stage: Stage) -> str:
    """An assignment made with boto3 behind grantledger's back is reported as foreign."""
    with stage.sessions() as session:
        frank = present(present(session.get(tables.User, "frank"), "no user frank")
                        .principal_id, "frank has no Identity Center UserId")
        admin = present(session.scalar(select(tables.PermissionSet.arn).where(
            tables.PermissionSet.name == "AdministratorAccess")), "no AdministratorAccess")
    with stage.outside_grantledger() as sandbox:
        create_behind_the_back(sandbox, principal_id=frank, account_id=PRODUCTION,
                               permission_set_arn=admin)
    stage.console.print("  someone gave frank AdministratorAccess on Production directly "
                        "(boto3 sso-admin CreateAccountAssignment)")
    sync = full_sync_task(stage)
    labels, audited = foreign_assignments(stage)
    stage.console.print(f"  next full sync: {describe_counts(sync['counts'])}; recorded as "
                        f"foreign in the ledger: {', '.join(labels)} ({audited} "
                        "assignment.foreign audit event)")
    expect(sync["counts"].get("foreign", 0) == 1, f"expected 1 foreign assignment: {sync}")
    expect(labels == ["user:frank -> Production/AdministratorAccess"] and audited == 1,
           f"foreign: {labels}, audited {audited} times")
    expect(user_assignments(stage, "frank") >= {"Production/AdministratorAccess"},
           "drift mode report must leave the assignment alone")
    return "reported as foreign (drift mode report: audited, left in place)"


def foreign_assignments(stage: Stage) -> tuple[list[str], int]:
    """The foreign assignments the sync recorded, and how many were audited."""
    with stage.sessions() as session:
        foreign = kv.read_state(session, FOREIGN_KEY, {}).get("assignments", [])
        audited = session.scalar(select(func.count()).select_from(tables.AuditEvent).where(
            tables.AuditEvent.action == "assignment.foreign"))
    names = stage.names()
    return [names.assignment((f["principal_type"], f["principal_id"], f["account_id"],
                              f["permission_set_arn"])) for f in foreign], audited or 0


def create_behind_the_back(sandbox: Any, *, principal_id: str, account_id: str,
                           permission_set_arn: str) -> None:
    """CreateAccountAssignment through plain boto3, waiting until AWS says SUCCEEDED."""
    sso = sandbox.client("sso-admin")
    status = sso.create_account_assignment(
        InstanceArn=sandbox.instance_arn, TargetId=account_id, TargetType="AWS_ACCOUNT",
        PermissionSetArn=permission_set_arn, PrincipalType="USER",
        PrincipalId=principal_id)["AccountAssignmentCreationStatus"]
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while status["Status"] == "IN_PROGRESS" and time.monotonic() < deadline:
        time.sleep(SAMPLE_EVERY * 4)
        status = sso.describe_account_assignment_creation_status(
            InstanceArn=sandbox.instance_arn,
            AccountAssignmentCreationRequestId=status["RequestId"],
        )["AccountAssignmentCreationStatus"]
    expect(status["Status"] == "SUCCEEDED", f"the direct create ended {status}")


def self_review(stage: Stage) -> str:
    """erin may not approve her own request."""
    erin = demo_person(stage, "erin")
    request = create_request(sessions=stage.sessions, roles=[PRODUCTION_ADMIN_ROLE],
                             duration=LONG, reason="quick production fix", actor=erin)
    try:
        review_request(sessions=stage.sessions, request_id=request.id, actor=erin,
                       decision="approve")
    except PolicyDenied as refused:
        stage.console.print(f"  erin tried to approve request {request.id} herself: "
                            f"[red]refused[/]: {refused.render()}")
    else:
        expect(False, "erin approved her own request")
    with stage.sessions() as session:
        state = present(session.get(tables.AccessRequest, request.id), "request lost").state
    expect(state is RequestState.PENDING, f"the request is {state}, not PENDING")
    return "self-review refused; the request waits for another reviewer"


def story(policy_dir: Path) -> list[Step]:
    """The steps, in order; ``policy_dir`` holds the demo's roles and lists (step 3)."""
    return [
        Step("Preview Identity Center (accounts, permission sets, groups)", preview),
        Step("Import with a default owner; the first sync changes nothing", enrol),
        Step("Apply the demo roles and lists (who may request, who reviews)",
             lambda stage: apply_policy(stage, policy_dir)),
        Step("An owner adds a member; the group follows in Identity Center", owner_adds_member),
        Step("A role request and a resource request, approved", requests_approved),
        Step("A 10-second request expires and is revoked on time", short_request_expires),
        Step("A request promoted to an access list, without a gap", promotion),
        Step("Drift: an assignment made behind grantledger's back", drift),
        Step("Self-review is refused", self_review),
    ]

"""Building the benchmarks' organizations on a drill :class:`~ops.drills.stack.Stack`:
N accounts and some permission sets (in the sandbox and, as an import leaves them, in the
ledger), users and roles applied through the resource service, and ledger probes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import yaml
from botocore.exceptions import ClientError
from sqlalchemy import func, select

from models.ledger import tables
from models.ledger.db import transaction
from models.ledger.enums import GrantState, OperationState
from models.resources import load_sources
from ops.drills.stack import Stack, StackOptions
from tasks import events
from tasks.access.resources import apply_resources
from tasks.events import Next
from workers.sandbox import Seeded
from workers.settings import Settings

PERMISSION_SETS = ("ReadOnlyAccess", "PowerUserAccess", "AdministratorAccess")
# The product's own defaults for polling and sweeps (the drills use faster loops); no
# periodic full sync during a run.
PRODUCT_TIMING: dict[str, Any] = {
    **{name: Settings.model_fields[name].default for name in (
        "status_polling", "status_poll_interval", "poll_first_delay", "poll_max_delay",
        "expiry_interval", "poll_sweep_interval")},
    "sync_interval": 3600.0}
AWS_SETTLE = {"settle_delay": 1.0, "settle_jitter": 4.0}  # operations settle in 1-5 s


def aws_like_stack(**changes: Any) -> Stack:
    """Two worker processes (4 pool processes each), beat, AWS's limits and settle times."""
    options = StackOptions(workers=2, concurrency=4, settle_delay=AWS_SETTLE["settle_delay"],
                           settle_jitter=AWS_SETTLE["settle_jitter"],
                           settings={**PRODUCT_TIMING, **changes.pop("settings", {})})
    for name, value in changes.items():
        setattr(options, name, value)
    return Stack(options)


def announce_to(stack: Stack) -> None:
    """Send what services announce after commit (``events.desired_state_changed``: the
    targeted sync an approval asks for) to the stack's broker, as a deployment's API
    process does: this process's default Celery app was built from its own environment."""
    from tasks import events

    events.use_dispatcher(events.celery_dispatcher(stack.app))


def account_ids(count: int) -> list[str]:
    return [f"{300000000000 + i}" for i in range(count)]


def seed_fleet(stack: Stack, *, accounts: int, users: Sequence[str] = ()) -> Seeded:
    """``accounts`` accounts and the permission sets; ``users`` straight into the identity
    store (for benchmarks whose ledger is written directly, not pushed over SCIM)."""
    seeded = stack.sandbox.seed({
        "accounts": [{"id": i, "name": f"acct-{i}"} for i in account_ids(accounts)],
        "permission_sets": [{"name": name} for name in PERMISSION_SETS],
        "users": [{"user_name": u, "given_name": u.title(), "family_name": "Bench",
                   "email": f"{u}@example.com"} for u in users]})
    with transaction(stack.runtime.sessions) as session:
        for account_id in account_ids(accounts):
            session.add(tables.Account(id=account_id, name=f"acct-{account_id}"))
        for name, arn in seeded.permission_sets.items():
            session.add(tables.PermissionSet(arn=arn, name=name))
    return seeded


def role_document(name: str, permission_sets: list[str]) -> dict[str, Any]:
    """A role allowing ``permission_sets`` on every account."""
    rules = [{"account": "*", "permission_set": p} for p in permission_sets]
    return {"kind": "role", "version": "v7", "metadata": {"name": name},
            "spec": {"allow": {"account_assignments": rules}}}


def request_roles(permission_set: str) -> list[dict[str, Any]]:
    """``requester`` may ask for ``permission_set`` on any account (the role ``readers``
    allows it), ``approver`` reviews such requests."""
    requester = {"kind": "role", "version": "v7", "metadata": {"name": "requester"},
                 "spec": {"allow": {"request": {"account_assignments": [
                     {"account": "*", "permission_set": permission_set}],
                     "max_duration": "8h"}}}}
    approver = {"kind": "role", "version": "v7", "metadata": {"name": "approver"},
                "spec": {"allow": {"review_requests": {"roles": ["readers"]}}}}
    return [role_document("readers", [permission_set]), requester, approver]


def user_document(name: str, roles: list[str]) -> dict[str, Any]:
    return {"kind": "user", "metadata": {"name": name}, "spec": {
        "email": f"{name}@example.com", "given_name": name.title(), "family_name": "Bench",
        "roles": roles}}


def apply(stack: Stack, documents: list[dict[str, Any]]) -> None:
    """Apply resource documents through the service (one transaction, audited)."""
    text = yaml.safe_dump_all(documents)
    apply_resources(sessions=stack.runtime.sessions, actor="bench",
                    loaded=load_sources([("bench.yaml", text)]))


def count_grants(stack: Stack, state: GrantState) -> int:
    with stack.runtime.sessions() as session:
        return session.scalar(select(func.count()).select_from(tables.Grant)
                              .where(tables.Grant.state == state)) or 0


def unsettled(stack: Stack) -> int:
    """Operations still QUEUED or SUBMITTED."""
    with stack.runtime.sessions() as session:
        return session.scalar(select(func.count()).select_from(tables.Operation).where(
            tables.Operation.state.in_((OperationState.QUEUED, OperationState.SUBMITTED)))) or 0


def users_pushed(stack: Stack) -> int:
    with stack.runtime.sessions() as session:
        return session.scalar(select(func.count()).select_from(tables.User)
                              .where(tables.User.principal_id.is_not(None))) or 0


def full_syncs(stack: Stack) -> int:
    """Full syncs finished so far (their audit events)."""
    with stack.runtime.sessions() as session:
        return session.scalar(select(func.count()).select_from(tables.AuditEvent)
                              .where(tables.AuditEvent.action == "sync.full")) or 0


def synced(stack: Stack, *, timeout: float = 1800) -> float:
    """Run one full sync on the workers; wait for it and for the operations it started.
    (A full sync published while another runs is skipped: so wait for the one running.)"""
    done = full_syncs(stack)
    stack.enqueue([Next(events.SYNC_FULL)])
    return wait(lambda: full_syncs(stack) > done and not unsettled(stack), timeout=timeout,
                what="full sync", interval=0.2)


def wait(condition: Callable[[], bool], *, timeout: float, what: str,
         interval: float = 0.25) -> float:
    """Poll until ``condition``; seconds it took. RuntimeError after ``timeout``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"{what}: not reached in {timeout:g}s")
        time.sleep(interval)
    return time.monotonic() - started


def naive_assignment(client: Any, instance_arn: str, *, action: str, principal_id: str,
                     account_id: str, arn: str) -> None:
    """The naive baseline's one step (how common tools do it): ``action`` ("create" or
    "delete") one user assignment, then Describe its status every second until settled."""
    noun = "Creation" if action == "create" else "Deletion"
    answer = retrying(lambda: getattr(client, f"{action}_account_assignment")(
        InstanceArn=instance_arn, TargetId=account_id, TargetType="AWS_ACCOUNT",
        PermissionSetArn=arn, PrincipalType="USER", PrincipalId=principal_id))
    request_id = answer[f"AccountAssignment{noun}Status"]["RequestId"]
    describe = getattr(client, f"describe_account_assignment_{noun.lower()}_status")
    while True:
        time.sleep(1.0)
        status = retrying(lambda: describe(**{
            "InstanceArn": instance_arn, f"AccountAssignment{noun}RequestId": request_id}))
        if status[f"AccountAssignment{noun}Status"]["Status"] != "IN_PROGRESS":
            return


def retrying(call: Callable[[], Any]) -> Any:
    """``call()``, again a second after each ThrottlingException."""
    while True:
        try:
            return call()
        except ClientError as err:
            if err.response["Error"]["Code"] != "ThrottlingException":
                raise
            time.sleep(1.0)

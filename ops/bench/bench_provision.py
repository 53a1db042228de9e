"""Bulk provisioning: 1,000 user assignments from one change (a role held by 100 users starts
granting two permission sets on five accounts), applied then synced, on 2 real worker
processes + Redis + PostgreSQL + the sandbox with AWS's limits (20 sso-admin requests/s,
15 outstanding creates, operations settling in 1-5 s).

    .venv/bin/python -m ops.bench.bench_provision [--quick]

Reports wall time, AWS requests/s achieved as a share of the 20/s ceiling, the bound the
limits put on the wall time (the larger of: the requests at 20/s, the creates through 15
slots held for the settle times the sandbox drew) and the share of that binding limit
used, throttling seen and grants FAILED by throttling, and the speed-up over a naive
baseline measured in the same run: one assignment at a time, create then poll every second
(how common open-source tools do it), timed on a sample and extrapolated to the same count.
Writes ops/bench/results/provision.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from sqlalchemy import func, select

from models.ledger import tables
from models.ledger.enums import GrantState
from ops.bench.common import (
    OUTSTANDING_CREATES,
    SSO_ADMIN_RATE,
    by_service,
    call_delta,
    command,
    machine,
    table,
    write_results,
)
from ops.bench.fleet import (
    account_ids,
    apply,
    aws_like_stack,
    count_grants,
    naive_assignment,
    role_document,
    seed_fleet,
    synced,
    unsettled,
    user_document,
    users_pushed,
    wait,
)
from ops.drills.stack import Stack
from tasks import events
from tasks.events import Next

GRANTED = ["ReadOnlyAccess", "PowerUserAccess"]
ACCOUNTS = 5


def prepare(stack: Stack, users: int) -> list[str]:
    """Users holding the (still empty) role ``wide``, pushed to Identity Center."""
    seed_fleet(stack, accounts=ACCOUNTS)
    names = [f"user{i:04d}" for i in range(users)]
    apply(stack, [role_document("wide", []), *[user_document(n, ["wide"]) for n in names]])
    synced(stack)
    wait(lambda: users_pushed(stack) == users, timeout=60, what="users pushed over SCIM")
    return names


def provision(stack: Stack, expected: int) -> dict[str, Any]:
    """The one change, a full sync, and everything until every grant is ACTIVE."""
    before, started = stack.sandbox.calls(), time.monotonic()
    throttled_before = sum(stack.sandbox.throttled().values())
    apply(stack, [role_document("wide", GRANTED)])
    stack.enqueue([Next(events.SYNC_FULL)])
    wall = wait(lambda: count_grants(stack, GrantState.ACTIVE) == expected and not
                unsettled(stack), timeout=3600, what=f"{expected} grants ACTIVE", interval=0.5)
    calls = call_delta(before, stack.sandbox.calls())
    sso = by_service(calls).get("sso-admin", 0)
    creates = calls.get("sso-admin:CreateAccountAssignment", 0)
    settle_s = sum(op.settles_at - op.created_at for op in stack.sandbox.center.operations(
        "CREATE") if op.settles_at is not None)  # the settle times the sandbox drew
    bound = max(sso / SSO_ADMIN_RATE, settle_s / OUTSTANDING_CREATES)
    return {"assignments": expected, "wall_s": round(wall, 1), "sso_admin_calls": sso,
            "calls": calls, "requests_per_s": round(sso / wall, 2),
            "share_of_ceiling": round(sso / wall / SSO_ADMIN_RATE, 3),
            "limits_bound_s": round(bound, 1), "wall_over_bound": round(wall / bound, 2),
            "share_of_binding_limit": round(bound / wall, 3),
            "mean_settle_s": round(settle_s / max(creates, 1), 2),
            "create_slot_use": round(settle_s / OUTSTANDING_CREATES / wall, 3),
            "throttled_calls": sum(stack.sandbox.throttled().values()) - throttled_before,
            "grants_failed_by_throttling": failed_by_throttling(stack),
            "started_at": started}


def failed_by_throttling(stack: Stack) -> int:
    """Grants that went FAILED with a throttling reason, ever (audit trail)."""
    with stack.runtime.sessions() as session:
        return session.scalar(select(func.count()).select_from(tables.AuditEvent).where(
            tables.AuditEvent.action == "grant.failed",
            tables.AuditEvent.reason.ilike("%throttl%"))) or 0


def naive_baseline(stack: Stack, *, sample: int, users: list[str]) -> dict[str, Any]:
    """Create one assignment, poll every second until settled, next (same sandbox)."""
    sandbox = stack.sandbox
    client = sandbox.client("sso-admin")
    with stack.runtime.sessions() as session:
        ids = {name: str(pid) for name, pid in session.execute(
            select(tables.User.name, tables.User.principal_id))}
        arn = str(session.scalar(select(tables.PermissionSet.arn).where(
            tables.PermissionSet.name == "AdministratorAccess")))
    started = time.monotonic()
    for index in range(sample):
        naive_assignment(client, sandbox.instance_arn, action="create",
                         principal_id=ids[users[index % len(users)]],
                         account_id=account_ids(ACCOUNTS)[index // len(users)], arn=arn)
    seconds = time.monotonic() - started
    return {"sample": sample, "sample_s": round(seconds, 1),
            "per_assignment_s": round(seconds / sample, 2)}


def report(result: dict[str, Any], baseline: dict[str, Any]) -> None:
    rows = [{"figure": k, "value": result[k]} for k in (
        "assignments", "wall_s", "sso_admin_calls", "requests_per_s", "share_of_ceiling",
        "limits_bound_s", "mean_settle_s", "wall_over_bound", "share_of_binding_limit",
        "create_slot_use",
        "throttled_calls", "grants_failed_by_throttling")]
    rows += [{"figure": f"naive: {k}", "value": v} for k, v in baseline.items()]
    print(table(rows, ["figure", "value"]))
    print(f"speed-up over the naive baseline: {result['speedup']}x (baseline timed on "
          f"{baseline['sample']} assignments and extrapolated to {result['assignments']})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 assignments, sample 5")
    args = parser.parse_args(argv)
    users, sample = (10, 5) if args.quick else (100, 30)
    print(machine())
    with aws_like_stack() as stack:
        names = prepare(stack, users)
        result = provision(stack, users * ACCOUNTS * len(GRANTED))
        baseline = naive_baseline(stack, sample=sample, users=names)
    baseline["extrapolated_s"] = round(baseline["per_assignment_s"] * result["assignments"], 1)
    result["speedup"] = round(baseline["extrapolated_s"] / result["wall_s"], 1)
    report(result, baseline)
    write_results("provision", {"quick": args.quick, "result": result, "baseline": baseline,
                                "limits": {"sso_admin_per_s": SSO_ADMIN_RATE,
                                           "outstanding_creates": OUTSTANDING_CREATES,
                                           "settle_s": "1-5"}},
                  command=command("bench_provision", quick=args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())

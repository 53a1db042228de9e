"""Emergency revocation: a user holding 50 assignments across 20 accounts (and one group) is
revoked on 2 real worker processes + Redis + PostgreSQL + the sandbox with AWS's limits
(20 sso-admin requests/s, 15 outstanding creates, operations settling 1 s after the call).

    .venv/bin/python -m ops.bench.bench_revoke [--quick]

Measures, from the moment `revoke` starts (database clock): the last DeleteAccountAssignment
submitted, the last one settled (every grant REVOKED), and the user gone from their group;
target: everything within 5 s. Compares with a naive baseline run in the same stack: the same
50 deletes one at a time, each polled every second until settled (--quick: 10 of them,
extrapolated). Prints the figures; writes ops/bench/results/revoke.json. Not a test.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from models.domain import PrincipalType
from models.ledger import tables
from models.ledger.enums import GrantState, OperationKind
from models.ledger.kv import read_state
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
    PERMISSION_SETS,
    PRODUCT_TIMING,
    account_ids,
    apply,
    count_grants,
    naive_assignment,
    seed_fleet,
    unsettled,
    user_document,
    wait,
)
from ops.drills.stack import Stack, StackOptions
from tasks import events
from tasks.access.offboarding import (
    remove_unexplained_assignments,
    restore_user,
    revocation_pending,
    revoke_user,
)
from tasks.events import Next, submit

ACCOUNTS, ASSIGNMENTS, TARGET_S = 20, 50, 5.0
LEAVER = "leaver"


def leaver_documents() -> list[dict[str, Any]]:
    """A role allowing 50 (account, permission set) pairs over all 20 accounts, a list
    granting one more through a group, and the leaver holding both."""
    pairs = [(a, p) for p in PERMISSION_SETS for a in account_ids(ACCOUNTS)][:ASSIGNMENTS]
    rules = [{"account": a, "permission_set": p} for a, p in pairs]
    role = {"kind": "role", "version": "v7", "metadata": {"name": "leaver-access"},
            "spec": {"allow": {"account_assignments": rules}}}
    oncall = {"kind": "role", "version": "v7", "metadata": {"name": "oncall"},
              "spec": {"allow": {"account_assignments": [
                  {"account": account_ids(ACCOUNTS)[-1],
                   "permission_set": "AdministratorAccess"}]}}}
    group = {"kind": "access_list", "version": "v1", "metadata": {"name": "oncall"},
             "spec": {"title": "On call", "owners": [{"name": "colleague"}],
                      "grants": {"roles": ["oncall"]},
                      "members": [{"name": LEAVER, "kind": "user"},
                                  {"name": "colleague", "kind": "user"}]}}
    return [role, oncall, user_document(LEAVER, ["leaver-access"]),
            user_document("colleague", []), group]


def provision(stack: Stack) -> None:
    seed_fleet(stack, accounts=ACCOUNTS)
    apply(stack, leaver_documents())
    stack.enqueue([Next(events.SYNC_FULL)])
    wait(lambda: count_grants(stack, GrantState.ACTIVE) == ASSIGNMENTS + 1 and not
         unsettled(stack), timeout=300, what="the leaver's assignments ACTIVE")


def revoke(stack: Stack) -> dict[str, Any]:
    """`grantledger revoke`'s steps, timed; the figures, relative to its start."""
    runtime, calls_before = stack.runtime, stack.sandbox.calls()
    throttled_before = sum(stack.sandbox.throttled().values())
    started_db, started = _clock(stack), time.monotonic()
    key = f"bench.revoke.{uuid.uuid4().hex}"
    revocation = revoke_user(sessions=runtime.sessions, user=LEAVER, reason="bench",
                             actor="bench", drift_mode=runtime.settings.drift_mode)
    committed = time.monotonic() - started
    stack.enqueue(revocation.next_work(report_key=key))
    enqueued = time.monotonic() - started
    stack.enqueue([submit(i) for i in remove_unexplained_assignments(
        runtime=runtime, revocation=revocation, actor="bench")])
    wait(lambda: _report(stack, key) is not None, timeout=120,
         what="targeted sync (group membership)", interval=0.05)
    group_left = time.monotonic() - started
    wait(lambda: _pending(stack, revocation) == 0, timeout=120, what="every delete settled",
         interval=0.05)
    wall = time.monotonic() - started
    submitted, settled = _operation_times(stack, revocation.principal_id or "")
    calls = call_delta(calls_before, stack.sandbox.calls())
    return {
        "assignments": len(revocation.grant_ids), "deletes": calls.get(
            "sso-admin:DeleteAccountAssignment", 0),
        "transaction_s": round(committed, 3), "burst_enqueued_s": round(enqueued, 3),
        "last_delete_submitted_s": round((submitted - started_db).total_seconds(), 2),
        "all_settled_s": round((settled - started_db).total_seconds(), 2),
        "group_left_s": round(group_left, 2), "wall_s": round(max(wall, group_left), 2),
        "members_removed": (_report(stack, key) or {}).get("counts", {}).get("members_removed"),
        "sso_admin_calls": by_service(calls).get("sso-admin", 0), "calls": calls,
        # every call shares AWS's 20/s: the deletes, one status call each, the listings
        "limits_bound_s": round(by_service(calls).get("sso-admin", 0) / SSO_ADMIN_RATE, 2),
        "throttled_calls": sum(stack.sandbox.throttled().values()) - throttled_before,
        "revoked": count_grants(stack, GrantState.REVOKED)}


def _clock(stack: Stack) -> datetime:
    with stack.runtime.sessions() as session:
        now = session.scalar(select(func.clock_timestamp()))
    assert isinstance(now, datetime)
    return now


def _report(stack: Stack, key: str) -> dict[str, Any] | None:
    with stack.runtime.sessions() as session:
        return read_state(session, key)


def _pending(stack: Stack, revocation: Any) -> int:
    with stack.runtime.sessions() as session:
        return revocation_pending(session, revocation)


def _operation_times(stack: Stack, principal_id: str) -> tuple[datetime, datetime]:
    operation = tables.Operation
    with stack.runtime.sessions() as session:
        row = session.execute(select(func.max(operation.submitted_at),
                                     func.max(operation.finished_at)).where(
            operation.kind == OperationKind.DELETE_ASSIGNMENT.value,
            operation.principal_type == PrincipalType.USER,
            operation.principal_id == principal_id)).one()
    submitted, settled = row
    assert submitted is not None and settled is not None, "no delete was recorded"
    return submitted, settled


def restore(stack: Stack) -> list[tuple[str, str, str]]:
    """Give the leaver everything back; their direct assignments (principal, account, ARN)."""
    restore_user(sessions=stack.runtime.sessions, user=LEAVER, reason="bench", actor="bench")
    stack.enqueue([Next(events.SYNC_PRINCIPALS, kwargs={"users": [LEAVER]})])
    wait(lambda: count_grants(stack, GrantState.ACTIVE) == ASSIGNMENTS + 1 and not
         unsettled(stack), timeout=300, what="the leaver restored")
    with stack.runtime.sessions() as session:
        principal_id = session.scalar(select(tables.User.principal_id)
                                      .where(tables.User.name == LEAVER))
    return sorted((k[1], k[2], k[3]) for k in stack.sandbox.assignments()
                  if k[0] == "USER" and k[1] == principal_id)


def naive_baseline(stack: Stack, assignments: list[tuple[str, str, str]]) -> dict[str, Any]:
    """Delete one assignment, poll DescribeAccountAssignmentDeletionStatus every second
    until settled, then the next (boto3 straight at the sandbox)."""
    client = stack.sandbox.client("sso-admin")
    started = time.monotonic()
    for principal_id, account_id, arn in assignments:
        naive_assignment(client, stack.sandbox.instance_arn, action="delete",
                         principal_id=principal_id, account_id=account_id, arn=arn)
    seconds = time.monotonic() - started
    return {"sample": len(assignments), "sample_s": round(seconds, 1),
            "per_assignment_s": round(seconds / len(assignments), 2)}


def report(result: dict[str, Any], baseline: dict[str, Any]) -> None:
    rows = [{"figure": k, "value": result[k]} for k in (
        "assignments", "deletes", "transaction_s", "burst_enqueued_s",
        "last_delete_submitted_s", "all_settled_s",
        "group_left_s", "sso_admin_calls", "limits_bound_s", "throttled_calls")]
    rows += [{"figure": f"naive: {k}", "value": v} for k, v in baseline.items()]
    print(table(rows, ["figure", "value"]))
    verdict = "within" if result["all_settled_s"] <= TARGET_S else "OVER"
    print(f"all {result['assignments']} revocations settled in {result['all_settled_s']} s "
          f"({verdict} the {TARGET_S:g} s target); {result['speedup']}x faster than the naive "
          f"baseline ({baseline['extrapolated_s']} s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="baseline on 10 deletes")
    args = parser.parse_args(argv)
    print(machine())
    options = StackOptions(workers=2, concurrency=4, settle_delay=1.0, settle_jitter=0.0,
                           settings=dict(PRODUCT_TIMING))
    with Stack(options) as stack:
        provision(stack)
        result = revoke(stack)
        held = restore(stack)
        baseline = naive_baseline(stack, held[:10] if args.quick else held)
    baseline["extrapolated_s"] = round(baseline["per_assignment_s"] * result["assignments"], 1)
    result["speedup"] = round(baseline["extrapolated_s"] / result["all_settled_s"], 1)
    report(result, baseline)
    write_results("revoke", {"quick": args.quick, "target_s": TARGET_S, "result": result,
                             "baseline": baseline, "limits": {
                                 "sso_admin_per_s": SSO_ADMIN_RATE,
                                 "outstanding_creates": OUTSTANDING_CREATES,
                                 "settle_s": 1.0, "workers": 2, "concurrency": 4}},
                  command=command("bench_revoke", quick=args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())

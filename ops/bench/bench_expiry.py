"""Expiry latency: 1,000 grants expiring within the same minute, on 2 real worker processes
+ beat + Redis + PostgreSQL + the sandbox with AWS's limits (20 sso-admin requests/s,
operations settling in 1-5 s).

    .venv/bin/python -m ops.bench.bench_expiry [--quick]

The grants are set up as provisioning leaves them (ACTIVE in the ledger from approved
requests, the assignments present in the sandbox), so the run measures expiry alone. For
each grant: lag = DeleteAccountAssignment received by the sandbox - ``expires_at`` (both on
this host's clock). Printed beside it, the limiter-bound lower bounds of the same lag: the
deletes alone sent at 20/s in expiry order (no polls, no sweep interval), and the same with
every revocation costing the calls it cost in this run (delete + status polls). Writes
ops/bench/results/expiry.json.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import insert, select

from models.domain import RequestState
from models.ledger import tables
from models.ledger.base import database_time
from models.ledger.db import transaction
from models.ledger.enums import GrantState, SourceKind
from ops.bench.common import (
    SSO_ADMIN_RATE,
    call_delta,
    command,
    machine,
    spread,
    table,
    write_results,
)
from ops.bench.fleet import account_ids, aws_like_stack, count_grants, seed_fleet, wait
from ops.drills.stack import Stack

ACCOUNTS, SETS = 5, ("ReadOnlyAccess", "PowerUserAccess")


def plan_grants(users: dict[str, str], arns: dict[str, str], count: int) -> list[dict]:
    """``count`` (user, account, permission set) combinations, ids included."""
    combos = [(name, pid, account, arns[ps]) for ps in SETS for account in account_ids(ACCOUNTS)
              for name, pid in sorted(users.items())]
    return [{"user": n, "principal_id": p, "account_id": a, "arn": s}
            for n, p, a, s in combos[:count]]


def write_ledger(stack: Stack, grants: list[dict], *, lead: float, window: float) -> None:
    """Users, APPROVED requests and ACTIVE grants expiring evenly over ``window`` seconds,
    starting ``lead`` seconds from now (database clock); the assignments in the sandbox."""
    with transaction(stack.runtime.sessions) as session:
        now = database_time(session)
        for name, pid in sorted({(g["user"], g["principal_id"]) for g in grants}):
            session.add(tables.User(name=name, email=f"{name}@example.com", given_name=name,
                                    family_name="Bench", principal_id=pid))
        session.flush()
        requests, rows = [], []
        for index, grant in enumerate(grants):
            expires = now + timedelta(seconds=lead + window * index / len(grants))
            request_id = uuid.uuid4().hex[:24]
            requests.append({"id": request_id, "user_name": grant["user"], "roles": [],
                             "resources": [], "reason": "bench", "duration_seconds": 60,
                             "state": RequestState.APPROVED, "decided_at": now,
                             "expires_at": expires})
            rows.append({"principal_type": "USER", "principal_name": grant["user"],
                         "principal_id": grant["principal_id"], "account_id": grant["account_id"],
                         "permission_set_arn": grant["arn"], "source_kind": SourceKind.REQUEST,
                         "source_id": request_id, "state": GrantState.ACTIVE, "starts_at": now,
                         "expires_at": expires, "activated_at": now})
        session.execute(insert(tables.AccessRequest), requests)
        session.execute(insert(tables.Grant), rows)
    for grant in grants:
        stack.sandbox.center.seed_assignment(("USER", grant["principal_id"],
                                              grant["account_id"], grant["arn"]))


def lags(stack: Stack) -> tuple[list[tuple[float, float]], dict[str, float]]:
    """Per grant, (expires_at, delete received - expires_at); and each grant's expiry."""
    with stack.runtime.sessions() as session:
        expiry = {(pid, acct, arn): at.timestamp() for pid, acct, arn, at in session.execute(
            select(tables.Grant.principal_id, tables.Grant.account_id,
                   tables.Grant.permission_set_arn, tables.Grant.expires_at)) if at}
    deletes = {op.key[1:]: op.created_at for op in stack.sandbox.center.operations("DELETE")}
    return [(due, deletes[key] - due) for key, due in expiry.items() if key in deletes], expiry


def by_window(measured: list[tuple[float, float]], *, width: float) -> list[dict[str, Any]]:
    """The lag spread of the grants expiring in each ``width``-second slice of the run."""
    first = min(due for due, _ in measured)
    slices: dict[int, list[float]] = {}
    for due, lag in measured:
        slices.setdefault(int((due - first) // width), []).append(lag)
    return [{"expiring_s": f"{n * width:g}-{(n + 1) * width:g}", "grants": len(lags_),
             **spread(lags_)} for n, lags_ in sorted(slices.items())]


def limiter_bound(expiries: list[float], *, calls_per_delete: float) -> list[float]:
    """The least lag per grant if each revocation spends ``calls_per_delete`` requests of
    the 20/s budget and deletes go out in expiry order as soon as the budget allows."""
    bound, sent = [], float("-inf")
    for due in sorted(expiries):
        sent = max(due, sent + calls_per_delete / SSO_ADMIN_RATE)
        bound.append(sent - due)
    return bound


def run(stack: Stack, count: int, *, lead: float, window: float) -> dict[str, Any]:
    users = {f"user{i:04d}": "" for i in range(-(-count // (ACCOUNTS * len(SETS))))}
    seeded = seed_fleet(stack, accounts=ACCOUNTS, users=list(users))
    grants = plan_grants(seeded.users, seeded.permission_sets, count)
    write_ledger(stack, grants, lead=lead, window=window)
    before = stack.sandbox.calls()
    wall = wait(lambda: count_grants(stack, GrantState.REVOKED) == count,
                timeout=lead + window + 900, what=f"{count} grants REVOKED", interval=0.5)
    timed, expiry = lags(stack)
    measured = [lag for _, lag in timed]
    calls = call_delta(before, stack.sandbox.calls())
    per_delete = sum(calls.values()) / max(calls.get("sso-admin:DeleteAccountAssignment", 1), 1)
    return {"grants": count, "window_s": window, "revoked": count_grants(
        stack, GrantState.REVOKED), "left_in_aws": len(stack.sandbox.assignments()),
        "deletes_seen": len(measured), "lag_s": spread(measured),
        "lag_by_window": by_window(timed, width=window / 6),
        "bound_deletes_only_s": spread(limiter_bound(list(expiry.values()),
                                                     calls_per_delete=1.0)),
        "calls_per_delete": round(per_delete, 2),
        "bound_with_polls_s": spread(limiter_bound(list(expiry.values()),
                                                   calls_per_delete=per_delete)),
        "wall_from_setup_s": round(wall, 1), "calls": calls,
        "throttled": sum(stack.sandbox.throttled().values())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 grants within 6 s")
    args = parser.parse_args(argv)
    count, window = (100, 6.0) if args.quick else (1000, 60.0)
    print(machine())
    with aws_like_stack() as stack:
        started = time.monotonic()
        result = run(stack, count, lead=10.0, window=window)
        result["bench_s"] = round(time.monotonic() - started, 1)
    rows = [{"lag": name, **result[key]} for name, key in (
        ("delete received - expires_at", "lag_s"),
        ("bound: deletes only at 20/s", "bound_deletes_only_s"),
        (f"bound: {result['calls_per_delete']} calls per delete", "bound_with_polls_s"))]
    print(table(rows, ["lag", "p50", "p99", "max", "mean"]))
    print(table(result["lag_by_window"], ["expiring_s", "grants", "p50", "p99", "max", "mean"]))
    print(f"{result['revoked']}/{count} revoked, {result['left_in_aws']} assignments left in "
          f"AWS, {result['throttled']} calls throttled; target p99 < 2 s while the limiter "
          f"allows it ({count} deletes at {SSO_ADMIN_RATE:g}/s take {count / SSO_ADMIN_RATE:g} s)")
    write_results("expiry", {"quick": args.quick, **result},
                  command=command("bench_expiry", quick=args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())

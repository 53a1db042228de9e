"""Steady-state cost: the AWS calls a full sync makes when nothing changed, for 10, 100 and
200 accounts (``--quick``: 5 and 20) at two assignment densities (1 and 5 users holding
ReadOnlyAccess on every account), on 2 real worker processes + Redis + PostgreSQL + the
sandbox. Target: calls grow with accounts, not with assignments.

    .venv/bin/python -m ops.bench.bench_steady [--quick]

Building each organization takes hundreds of creates, so these runs lift the rate limits
(sandbox and workers) and settle operations at once: a call count does not depend on how
fast calls may go. The measured sync is the real task (``grantledger.sync.full``) run by a
worker. Writes ops/bench/results/steady.json.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from models.ledger.enums import GrantState
from ops.bench.common import by_service, call_delta, command, machine, table, write_results
from ops.bench.fleet import (
    apply,
    count_grants,
    role_document,
    seed_fleet,
    synced,
    user_document,
    wait,
)
from ops.drills.stack import Stack, StackOptions

FAST = {"sso_admin_rate": 1000.0, "identitystore_rate": 1000.0, "scim_rate": 1000.0,
        "poll_first_delay": 0.05, "poll_max_delay": 0.5, "sync_interval": 3600.0}


def measure(accounts: int, density: int) -> dict[str, Any]:
    """Build ``accounts`` x ``density`` assignments, then count one no-change full sync."""
    options = StackOptions(settle_delay=0.0, sandbox_rate=None, beat=False, settings=FAST)
    with Stack(options) as stack:
        seed_fleet(stack, accounts=accounts)
        users = [f"user{i}" for i in range(density)]
        apply(stack, [role_document("reader", ["ReadOnlyAccess"]),
                      *[user_document(u, ["reader"]) for u in users]])
        synced(stack)
        wait(lambda: count_grants(stack, GrantState.ACTIVE) == accounts * density,
             timeout=600, what="organization built")
        before = stack.sandbox.calls()
        synced(stack)
        calls = call_delta(before, stack.sandbox.calls())
    services = by_service(calls)
    sso = services.get("sso-admin", 0)
    return {"accounts": accounts, "users_per_account": density,
            "assignments": accounts * density, "sso_admin_calls": sso,
            "sso_calls_per_account": round(sso / accounts, 2),
            "identitystore_calls": services.get("identitystore", 0),
            "scim_calls": services.get("scim", 0), "calls": calls}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 and 20 accounts")
    args = parser.parse_args(argv)
    sizes = (5, 20) if args.quick else (10, 100, 200)
    print(machine())
    rows = [measure(accounts, density) for accounts in sizes for density in (1, 5)]
    print(table(rows, ["accounts", "users_per_account", "assignments", "sso_admin_calls",
                       "sso_calls_per_account", "identitystore_calls", "scim_calls"]))
    for row in rows:
        print(f"{row['accounts']} accounts x {row['users_per_account']}: {row['calls']}")
    write_results("steady", {"quick": args.quick, "rows": rows},
                  command=command("bench_steady", quick=args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())

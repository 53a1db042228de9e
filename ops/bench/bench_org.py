"""A large organisation: 1,000 accounts, 100 permission sets, 5,000 users, 2,000 groups and
50,000 assignments in the sandbox, with AWS's limits (20 requests/s per API family, 15
outstanding creates, operations settling in 1-5 s), on 2 real worker processes + beat +
Redis + PostgreSQL; and the same organisation at a tenth of the size, for growth.

    .venv/bin/python -m ops.bench.bench_org [--quick] [--accounts 100 1000]

For each size: ``grantledger import --preview`` and then the enrolling ``grantledger
import`` (each a CLI process: wall time, peak memory (its max RSS), AWS calls by API, calls
per account, and the bound its calls put on it at 20/s per API family); a full sync with
nothing changed (calls, calls per account, time) and a full sync after 1% churn (1% of the
assignments removed in AWS out of band, which the sync re-creates). The organisation is
seeded straight into the sandbox's state (our own fake: generating 50,000 assignments
through its API would take 40 minutes at AWS's limits). Writes ops/bench/results/org.json.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from models.ledger.enums import GrantState
from ops.bench.common import (
    SSO_ADMIN_RATE,
    by_service,
    call_delta,
    command,
    machine,
    table,
    write_results,
)
from ops.bench.fleet import aws_like_stack, count_grants, synced
from ops.drills.stack import Stack
from ops.examples.generate_sandbox_fixture import (
    account_entries,
    group_entries,
    permission_set_entries,
    user_entries,
)

# The organisation at 1,000 accounts; a smaller size scales every count with the accounts.
PER_1000 = {"permission_sets": 100, "users": 5000, "groups": 2000, "assignments": 50_000}
SETS_PER_ACCOUNT = 5  # permission sets provisioned to each account (50 assignments each)
USER_SHARE = 0.1  # of the assignments, direct to users; the rest to groups
CHURN = 0.01
GRANTLEDGER = str(Path(sys.executable).with_name("grantledger"))


def organisation(accounts: int, *, seed: int = 7) -> dict[str, Any]:
    """The fixture: every count ``PER_1000`` scaled to ``accounts``; deterministic."""
    rng = random.Random(seed)
    scale = accounts / 1000
    counts = {k: max(int(v * scale), 5) for k, v in PER_1000.items()}
    fixture: dict[str, Any] = {
        "accounts": account_entries(accounts),
        "permission_sets": permission_set_entries(counts["permission_sets"]),
        "users": user_entries(counts["users"])}
    users = [u["user_name"] for u in fixture["users"]]
    fixture["groups"] = group_entries(counts["groups"], users, rng)
    groups = [g["display_name"] for g in fixture["groups"]]
    sets = [p["name"] for p in fixture["permission_sets"]]
    per_account = counts["assignments"] // accounts
    chosen: list[dict[str, str]] = []
    for account in fixture["accounts"]:
        provisioned = rng.sample(sets, k=min(SETS_PER_ACCOUNT, len(sets)))
        seen: set[tuple[str, str, str]] = set()
        while len(seen) < per_account:
            kind = "user" if rng.random() < USER_SHARE else "group"
            name = rng.choice(users if kind == "user" else groups)
            seen.add((kind, name, rng.choice(provisioned)))
        chosen += [{"account": account["id"], "permission_set": ps, kind: name}
                   for kind, name, ps in sorted(seen)]
    fixture["assignments"] = chosen
    return fixture


def cli(stack: Stack, arguments: list[str]) -> dict[str, Any]:
    """Run ``grantledger ARGUMENTS`` as its own process: wall time, peak RSS, AWS calls."""
    before = stack.sandbox.calls()
    started = time.monotonic()
    process = subprocess.Popen([GRANTLEDGER, *arguments, "-o", "json"], env=stack.environment(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"grantledger {' '.join(arguments)} failed: "
                           f"{process.stderr.read().decode()[-2000:] if process.stderr else ''}")
    calls = call_delta(before, stack.sandbox.calls())
    return {"wall_s": round(wall, 1), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            **call_figures(calls, wall)}


def call_figures(calls: dict[str, int], wall: float) -> dict[str, Any]:
    """Calls by API family and the least time they take at 20/s per family."""
    families = by_service(calls)
    limited = {k: v for k, v in families.items() if k in ("sso-admin", "identitystore")}
    bound = max(limited.values(), default=0) / SSO_ADMIN_RATE
    return {"calls": sum(families.values()), "by_family": families, "by_call": calls,
            "bound_s": round(bound, 1),
            "wall_over_bound": round(wall / bound, 2) if bound else None}


def full_sync(stack: Stack) -> dict[str, Any]:
    """One full sync on the workers (and the operations it starts), timed and counted."""
    before = stack.sandbox.calls()
    wall = synced(stack, timeout=3600)
    return {"wall_s": round(wall, 1), **call_figures(call_delta(before, stack.sandbox.calls()),
                                                     wall)}


def churn(stack: Stack, share: float, *, seed: int = 11) -> int:
    """Remove ``share`` of the assignments in AWS out of band; how many."""
    assignments = sorted(stack.sandbox.assignments())
    dropped = random.Random(seed).sample(assignments, k=max(1, int(len(assignments) * share)))
    for key in dropped:
        stack.sandbox.center.drop_assignment(key)
    return len(dropped)


def measure(accounts: int) -> dict[str, Any]:
    fixture = organisation(accounts)
    sizes = {k: len(v) for k, v in fixture.items()}
    print(f"{accounts} accounts: " + ", ".join(f"{v} {k}" for k, v in sizes.items()), flush=True)
    with aws_like_stack() as stack:
        started = time.monotonic()
        stack.sandbox.seed(fixture)
        seeded_s = time.monotonic() - started
        owner = fixture["users"][0]["user_name"]
        preview = cli(stack, ["import", "--preview"])
        print(f"  preview: {preview['wall_s']} s, {preview['calls']} calls", flush=True)
        enrol = cli(stack, ["import", "--default-owner", owner])
        print(f"  import: {enrol['wall_s']} s, {enrol['calls']} calls", flush=True)
        active = count_grants(stack, GrantState.ACTIVE)
        steady = full_sync(stack)
        print(f"  no-change sync: {steady['wall_s']} s, {steady['calls']} calls", flush=True)
        dropped = churn(stack, CHURN)
        churned = full_sync(stack)
        print(f"  sync after churn: {churned['wall_s']} s, {churned['calls']} calls", flush=True)
        left = len(set(stack.sandbox.center.snapshot()))
    row: dict[str, Any] = {"accounts": accounts, "fixture": sizes,
                           "seeded_s": round(seeded_s, 1), "grants_active": active,
                           "preview": preview, "import": enrol, "no_change_sync": steady,
                           "churned_assignments": dropped, "churn_sync": churned,
                           "assignments_after": left}
    for name in ("preview", "import", "no_change_sync", "churn_sync"):
        row[name]["calls_per_account"] = round(row[name]["calls"] / accounts, 2)
    return row


def report(rows: list[dict[str, Any]]) -> None:
    lines = []
    for row in rows:
        for name in ("preview", "import", "no_change_sync", "churn_sync"):
            run = row[name]
            lines.append({"accounts": row["accounts"], "run": name, "wall_s": run["wall_s"],
                          "bound_s": run["bound_s"], "wall/bound": run["wall_over_bound"],
                          "calls": run["calls"], "per_account": run["calls_per_account"],
                          "sso-admin": run["by_family"].get("sso-admin", 0),
                          "identitystore": run["by_family"].get("identitystore", 0),
                          "peak_rss_mib": run.get("peak_rss_mib")})
    print(table(lines, ["accounts", "run", "wall_s", "bound_s", "wall/bound", "calls",
                        "per_account", "sso-admin", "identitystore", "peak_rss_mib"]))
    for earlier, later in zip(rows, rows[1:], strict=False):
        x = later["accounts"] / earlier["accounts"]
        for name in ("preview", "import", "no_change_sync", "churn_sync"):
            a, b = earlier[name], later[name]
            print(f"growth x{x:g} accounts, {name}: calls x{b['calls'] / a['calls']:.1f}, "
                  f"time x{b['wall_s'] / a['wall_s']:.1f}"
                  + (f", peak RSS x{b['peak_rss_mib'] / a['peak_rss_mib']:.1f}"
                     if "peak_rss_mib" in a else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 accounts only")
    parser.add_argument("--accounts", type=int, nargs="+", default=None)
    args = parser.parse_args(argv)
    sizes = args.accounts or ([10] if args.quick else [100, 1000])
    print(machine())
    rows = [measure(accounts) for accounts in sizes]
    report(rows)
    name = "org" + "".join(f"-{a}" for a in args.accounts or [])  # sizes run apart
    write_results(name, {"quick": args.quick, "rows": rows, "limits": {
        "per_family_per_s": SSO_ADMIN_RATE, "settle_s": "1-5"}},
        command=command("bench_org", quick=args.quick,
                        extra="".join(f" {a}" for a in (args.accounts or []))))
    return 0


if __name__ == "__main__":
    sys.exit(main())

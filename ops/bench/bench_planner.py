"""Benchmark of the sync planner (``tasks.sync.planner.plan``): 1k / 10k / 100k grants against as
many AWS assignments, a naive O(n*m) planner on the small sizes for comparison, and the
re-plan after one membership change (whole instance, and the targeted sync's scope).

Run:  .venv/bin/python -m ops.bench.bench_planner [--sizes 1000 10000 100000]
Prints the figures and writes ops/bench/results/planner.json. Nothing is asserted: the
target (100k x 100k under a second) is read off the output.

The workload is a steady state with some churn, the shape of a periodic full sync:
90% of grants ACTIVE and present, 4% PENDING (to create), 2% PENDING and already present
(to activate), 2% REVOKING (to delete), 1% REVOKING with another grant still backing the
assignment (to retire), 1% ACTIVE but missing from AWS (to re-create); plus 1% foreign
assignments. Grants spread over 20 accounts x 50 permission sets; a tenth are GROUP grants.
"""

from __future__ import annotations

import argparse
import random
import statistics
from collections.abc import Callable

from models.domain import AssignmentKey
from models.ledger.enums import GrantState
from ops.bench.common import best_of, command, machine, write_results
from tasks.sync.planner import GrantView, plan

ACCOUNTS = [f"{100000000000 + i}" for i in range(20)]
SETS = [f"arn:aws:sso:::permissionSet/ssoins-bench/ps-{i:016x}" for i in range(50)]
MIX = [(0.90, "active"), (0.04, "create"), (0.02, "activate"), (0.02, "delete"),
       (0.01, "retire"), (0.01, "recreate")]


def workload(size: int, seed: int = 7) -> dict:
    """``size`` grants, the matching AWS state and principal ids."""
    rng = random.Random(seed)
    grants, actual, ids = [], set(), {}
    for index in range(size):
        kind = "GROUP" if index % 10 == 0 else "USER"
        name = f"{kind.lower()}-{index}"
        ids[(kind, name)] = f"id-{index}"
        account, arn = ACCOUNTS[index % len(ACCOUNTS)], SETS[(index // 20) % len(SETS)]
        key = AssignmentKey(kind, f"id-{index}", account, arn)
        role = _pick(rng.random())
        state = {"active": GrantState.ACTIVE, "create": GrantState.PENDING,
                 "activate": GrantState.PENDING, "delete": GrantState.REVOKING,
                 "retire": GrantState.REVOKING, "recreate": GrantState.ACTIVE}[role]
        grants.append(GrantView(index + 1, kind, name, account, arn, state, "role", "r"))
        if role == "retire":
            grants.append(GrantView(size + index + 1, kind, name, account, arn,
                                    GrantState.ACTIVE, "request", "q"))
        if role not in ("create", "recreate"):
            actual.add(key)
    for index in range(size // 100):
        actual.add(AssignmentKey("USER", f"stranger-{index}", ACCOUNTS[0], SETS[0]))
    return {"grants": grants, "actual": actual, "principal_ids": ids}


def _pick(draw: float) -> str:
    for share, role in MIX:
        if draw < share:
            return role
        draw -= share
    return "active"


def timed(run: Callable[[], object], repeat: int) -> float:
    """Best wall time of ``repeat`` runs, in seconds."""
    return best_of(repeat, run)[0]


def naive_plan(grants: list[GrantView], actual: set[AssignmentKey], principal_ids: dict) -> int:
    """The O(n*m) way: for every grant scan AWS's list, for every assignment scan the grants.
    Returns how many grants need work (enough to compare the cost, not the rules)."""
    listed = list(actual)
    work = 0
    for grant in grants:
        pid = principal_ids[(grant.principal_type, grant.principal_name)]
        present = any(k.principal_id == pid and k.account_id == grant.account_id
                      and k.permission_set_arn == grant.permission_set_arn for k in listed)
        work += present != (grant.state is GrantState.ACTIVE)
    for key in listed:
        work += not any(principal_ids[(g.principal_type, g.principal_name)] == key.principal_id
                        for g in grants)
    return work


def one_member_change(data: dict) -> tuple[float, float]:
    """A new user joins (one PENDING grant): re-plan everything, and only their scope."""
    grants = [*data["grants"], GrantView(10**9, "USER", "newcomer", ACCOUNTS[0], SETS[0],
                                         GrantState.PENDING, "role", "r")]
    ids = {**data["principal_ids"], ("USER", "newcomer"): "id-newcomer"}
    whole = timed(lambda: plan(grants=grants, actual=data["actual"], principal_ids=ids), 3)
    scoped = timed(lambda: plan(grants=grants[-1:], actual=set(),
                                principal_ids={("USER", "newcomer"): "id-newcomer"}), 50)
    return whole, scoped


def bench(sizes: list[int], naive_sizes: set[int]) -> dict:
    results: dict = {"sizes": []}
    for size in sizes:
        data = workload(size)
        changes = plan(**data)
        seconds = timed(lambda data=data: plan(**data), 3 if size >= 100_000 else 5)
        row = {"grants": len(data["grants"]), "actual": len(data["actual"]),
               "changes": len(changes), "plan_seconds": round(seconds, 4)}
        if size in naive_sizes:
            naive = timed(lambda data=data: naive_plan(data["grants"], data["actual"],
                                                       data["principal_ids"]), 1)
            row |= {"naive_seconds": round(naive, 4), "speedup": round(naive / seconds, 1)}
        whole, scoped = one_member_change(data)
        row |= {"replan_one_member_seconds": round(whole, 4),
                "replan_scoped_seconds": round(scoped, 6)}
        results["sizes"].append(row)
        print(_line(row), flush=True)
    return results


def _line(row: dict) -> str:
    text = (f"{row['grants']:>7} grants x {row['actual']:>7} assignments: plan "
            f"{row['plan_seconds'] * 1000:8.1f} ms, {row['changes']} changes")
    if "naive_seconds" in row:
        text += f"; naive O(n*m) {row['naive_seconds'] * 1000:9.1f} ms ({row['speedup']}x)"
    return text + (f"; one-member change: re-plan all {row['replan_one_member_seconds'] * 1000:.1f}"
                   f" ms, targeted {row['replan_scoped_seconds'] * 1e6:.0f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--naive-up-to", type=int, default=3000,
                        help="run the O(n*m) baseline for sizes up to this")
    args = parser.parse_args()
    naive = {s for s in args.sizes if s <= args.naive_up_to} or {min(args.sizes)}
    results = bench(args.sizes, naive)
    times = [r["plan_seconds"] for r in results["sizes"]]
    results["median_plan_seconds"] = statistics.median(times)
    print(machine())
    write_results("planner", results, command=command("bench_planner"))


if __name__ == "__main__":
    main()

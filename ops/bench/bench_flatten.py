"""Benchmark: flattening nested access lists, against a naive recursive reference.

    .venv/bin/python -m ops.bench.bench_flatten [--repeat 3] [--seed 7]

Builds random nesting DAGs (10 levels, ~10 members per list, 5% of memberships expired) of
1k / 10k / 100k memberships in two profiles: "typical" (10% of members are nested lists)
and "heavy" (30%: deep fan-out, where memoisation matters most). It times
``models.flatten.flatten`` (best of ``--repeat``) and the naive definition (recursion, no
memo) on the same input, checks that both agree, prints a table and writes
ops/bench/results/flatten.json. Figures are printed, never asserted: the unit tests check
correctness, this script shows the cost.
"""

from __future__ import annotations

import argparse
import random
from datetime import UTC, datetime, timedelta

from models.domain import AccessListResource, MemberKind
from models.flatten import flatten
from ops.bench.common import best_of, command, machine, write_results

NOW = datetime(2026, 6, 1, tzinfo=UTC)
LEVELS = 10
MEMBERS_PER_LIST = 10


PROFILES = {"typical": 0.10, "heavy": 0.30}  # share of members that are nested lists


def build_lists(memberships: int, rng: random.Random, *,
                nested_share: float) -> dict[str, AccessListResource]:
    """``memberships / 10`` lists on 10 levels; a list nests only lists of deeper levels."""
    count = max(memberships // MEMBERS_PER_LIST, LEVELS)
    names = [f"list-{i}" for i in range(count)]
    users = [f"user-{i}" for i in range(max(memberships // 5, 1))]
    per_level = count // LEVELS
    lists = {}
    for index, name in enumerate(names):
        deeper = names[(index // per_level + 1) * per_level:]
        members = [_member(rng, users, deeper, nested_share)
                   for _ in range(MEMBERS_PER_LIST)]
        unique = list({(m["kind"], m["name"]): m for m in members}.values())
        lists[name] = AccessListResource.model_validate({
            "kind": "access_list", "metadata": {"name": name},
            "spec": {"title": name, "members": unique}})
    return lists


def _member(rng: random.Random, users: list[str], deeper: list[str], share: float) -> dict:
    nested = deeper and rng.random() < share
    expires = NOW - timedelta(days=1) if rng.random() < 0.05 else None
    return {"name": rng.choice(deeper) if nested else rng.choice(users),
            "kind": "access_list" if nested else "user", "expires": expires}


def naive_flatten(lists: dict[str, AccessListResource], at: datetime) -> dict[str, frozenset]:
    """The definition, recursively, with no memo: each list re-walks everything below it."""
    def reach(name: str) -> set[str]:
        users: set[str] = set()
        for member in lists[name].spec.members:
            if member.active_at(at):
                if member.kind is MemberKind.USER:
                    users.add(member.name)
                elif member.name in lists:
                    users |= reach(member.name)
        return users
    return {name: frozenset(reach(name)) for name in lists}


def measure(memberships: int, *, profile: str, repeat: int, seed: int) -> dict:
    lists = build_lists(memberships, random.Random(seed), nested_share=PROFILES[profile])
    fast, flat = best_of(repeat, lambda: flatten(lists, at=NOW))
    naive, reference = best_of(1, lambda: naive_flatten(lists, NOW))
    if flat != reference:
        raise SystemExit(f"flatten disagrees with the naive reference at {memberships}")
    return {"profile": profile,
            "memberships": sum(len(item.spec.members) for item in lists.values()),
            "lists": len(lists), "flattened_pairs": sum(len(u) for u in flat.values()),
            "flatten_s": round(fast, 4), "naive_s": round(naive, 4),
            "speedup": round(naive / fast, 1) if fast else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rows = [measure(size, profile=profile, repeat=args.repeat, seed=args.seed)
            for profile in PROFILES for size in (1_000, 10_000, 100_000)]
    print(f"{'profile':<8} {'memberships':>11} {'lists':>6} {'pairs':>9} {'flatten':>9} "
          f"{'naive':>9} {'x':>6}")
    for row in rows:
        print(f"{row['profile']:<8} {row['memberships']:>11} {row['lists']:>6} "
              f"{row['flattened_pairs']:>9} "
              f"{row['flatten_s'] * 1000:>7.1f}ms {row['naive_s'] * 1000:>7.1f}ms "
              f"{row['speedup']:>6}")
    print(machine())
    write_results("flatten", {"levels": LEVELS, "rows": rows}, command=command("bench_flatten"))


if __name__ == "__main__":
    main()

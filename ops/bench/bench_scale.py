"""Planner and flattening scale: growth 1k -> 10k -> 100k (``--quick``: 1k -> 10k), each
against its naive baseline measured in the same run, 10,000 nested access lists, and the
re-plan after a one-member change. Reuses ``bench_planner`` and ``bench_flatten``.

    .venv/bin/python -m ops.bench.bench_scale [--quick]

Prints tables and writes ops/bench/results/scale.json. Timed figures are reported, never
asserted.
"""

from __future__ import annotations

import argparse
import sys

from ops.bench import bench_flatten, bench_planner
from ops.bench.common import command, machine, table, write_results

FULL_SIZES = [1_000, 10_000, 100_000]
QUICK_SIZES = [1_000, 10_000]


def growth(rows: list[dict], key: str, size_key: str) -> list[dict]:
    """Each row's time as a multiple of the previous size's (10x the input each step)."""
    for previous, row in zip(rows, rows[1:], strict=False):
        row[f"{key}_growth"] = round(row[key] / previous[key], 1) if previous[key] else None
        row["size_growth"] = round(row[size_key] / previous[size_key], 1)
    return rows


def planner(sizes: list[int]) -> list[dict]:
    rows = bench_planner.bench(sizes, {sizes[0]})["sizes"]
    return growth(rows, "plan_seconds", "grants")


def flatten(sizes: list[int]) -> list[dict]:
    rows = [bench_flatten.measure(size, profile="heavy", repeat=3, seed=7) for size in sizes]
    return growth(rows, "flatten_s", "memberships")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k and 10k only (CI)")
    args = parser.parse_args(argv)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    print(machine())
    plans = planner(sizes)
    print(table(plans, ["grants", "actual", "changes", "plan_seconds", "plan_seconds_growth",
                        "size_growth", "naive_seconds", "speedup", "replan_one_member_seconds",
                        "replan_scoped_seconds"]))
    flats = flatten(sizes)
    print(table(flats, ["memberships", "lists", "flattened_pairs", "flatten_s",
                        "flatten_s_growth", "size_growth", "naive_s", "speedup"]))
    write_results("scale", {"quick": args.quick, "planner": plans, "flatten": flats},
                  command=command("bench_scale", quick=args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())

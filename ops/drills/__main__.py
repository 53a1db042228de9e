"""``python -m ops.drills NAME... | all [--quick] [--json FILE]``: run drills, print the
report (one row per fault: PASS/FAIL/SKIP and the invariants that broke); exit 1 on a FAIL.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ops.drills.catalog import BY_NAME, DRILLS
from ops.drills.runner import FULL, QUICK, DrillResult, run


def report(results: list[DrillResult]) -> str:
    """The drill report as a Markdown table, then each failure's violations."""
    lines = ["| drill | fault | result | seconds | revocation lag p99 / max (s) "
             "| invariants broken | notes |", "|---|---|---|---|---|---|---|"]
    for result in results:
        row = result.row()
        lines.append(f"| {row['drill']} | {row['fault']} | {row['result']} | {row['seconds']} "
                     f"| {row['lag']} | {row['broken'] or '-'} | {row['notes']} |")
    for result in results:
        if result.status == "FAIL":
            lines += ["", f"{result.name} FAILED (logs: {result.notes.get('logs')}):",
                      *[f"  - {v}" for v in result.violations]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.drills", description=__doc__)
    parser.add_argument("names", nargs="*", help="drill names, or `all`")
    parser.add_argument("--quick", action="store_true", help="smaller workload, shorter "
                        "outages (the CI sizes)")
    parser.add_argument("--ci", action="store_true", help="the fast subset pytest runs")
    parser.add_argument("--list", action="store_true", help="list the drills and exit")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.list or not (args.names or args.ci):
        print("\n".join(f"{d.name:28} {d.fault}" for d in DRILLS))
        return 0
    unknown = [n for n in args.names if n != "all" and n not in BY_NAME]
    if unknown:
        parser.error(f"unknown drill(s): {', '.join(unknown)} (see --list)")
    chosen = [d for d in DRILLS if "all" in args.names or d.name in args.names
              or (args.ci and d.ci)]
    logging.basicConfig(level=logging.WARNING)
    results = []
    for drill in chosen:
        print(f"drill {drill.name}: {drill.fault} ...", flush=True)
        results.append(run(drill, scale=QUICK if args.quick else FULL))
        print(f"  {results[-1].status} in {results[-1].seconds:.0f}s "
              f"{results[-1].row()['broken']}", flush=True)
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps([r.row() | {"violations": [str(v) for v in
                                         r.violations]} for r in results], indent=2) + "\n")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: enrolment import of a large organization from the sandbox server.

    .venv/bin/python -m ops.bench.bench_import [--accounts 200] [--permission-sets 20] \\
        [--users 5000] [--groups 300] [--rate 20] [--database-url postgresql://...]

Generates the fixture with ops/examples/generate_sandbox_fixture.py, serves it from an
in-process sandbox (throttling at ``--rate`` requests/s like AWS; 0 = unlimited), imports it
into a fresh ledger (SQLite in a temp dir unless ``--database-url``), then imports again
(nothing to change) and runs the scheduled refresh. Prints wall time, AWS calls by API,
throttled calls, and what was imported; writes ops/bench/results/import.json. Figures are
printed, never asserted: the tests check correctness, this shows the cost.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ops.bench.common import call_delta, command, machine, write_results
from ops.examples.generate_sandbox_fixture import build_fixture
from tasks.importing import importer
from workers.runtime import Runtime
from workers.sandbox import Sandbox
from workers.settings import Settings


def timed_run(label: str, sandbox: Sandbox, run: Any) -> dict[str, Any]:
    """Run one import, with the sandbox's view of the AWS calls it made."""
    calls_before, throttled_before = sandbox.calls(), sandbox.throttled()
    started = time.perf_counter()
    summary = run()
    seconds = time.perf_counter() - started
    calls = call_delta(calls_before, sandbox.calls())
    throttled = call_delta(throttled_before, sandbox.throttled())
    print(f"{label:<10} {seconds:7.1f} s  {sum(calls.values()):6d} AWS calls  "
          f"{sum(throttled.values()):4d} throttled  "
          f"{len(summary.new['access_lists']):4d} lists  {summary.new_grants:5d} grants  "
          f"{len(summary.new['users']):5d} users")
    return {"seconds": round(seconds, 2), "aws_calls": calls, "throttled": throttled,
            "summary": {k: v for k, v in summary.as_dict().items() if k != "skipped"}}


def settings_for(sandbox: Sandbox, database_url: str, rate: float) -> Settings:
    """Our limiter at the sandbox's rate, as an install would be configured for AWS."""
    limit = rate or 100_000.0
    return Settings(database_url=database_url, broker_url="memory://",
                    aws_endpoint_url=sandbox.endpoint_url, instance_arn=sandbox.instance_arn,
                    identity_store_id=sandbox.identity_store_id, sso_admin_rate=limit,
                    identitystore_rate=limit)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--permission-sets", type=int, default=20)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--groups", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20.0,
                        help="sandbox and limiter requests/s per API family (0: unlimited)")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    args = parser.parse_args(argv)
    fixture = build_fixture(accounts=args.accounts, permission_sets=args.permission_sets,
                            users=args.users, groups=args.groups)
    print("fixture: " + ", ".join(f"{len(v)} {k}" for k, v in fixture.items()))
    with tempfile.TemporaryDirectory() as scratch, \
            Sandbox(settle_delay=0.0, rate=args.rate or None).start() as sandbox:
        started = time.perf_counter()
        sandbox.seed(fixture)
        print(f"seeded the sandbox in {time.perf_counter() - started:.1f} s")
        url = args.database_url or f"sqlite:///{Path(scratch) / 'ledger.db'}"
        runtime = Runtime(settings_for(sandbox, url, args.rate))
        owner = fixture["users"][0]["user_name"]
        runs = {
            "enrolment": timed_run("enrolment", sandbox, lambda: importer.run_import(
                runtime=runtime, default_owners=[owner], actor="bench")),
            "re-import": timed_run("re-import", sandbox, lambda: importer.run_import(
                runtime=runtime, default_owners=[owner], actor="bench")),
            "refresh": timed_run("refresh", sandbox, lambda: importer.refresh(runtime=runtime)),
        }
        runtime.close()
    print(machine())
    write_results("import", {"ledger": url.split(":", 1)[0], "rate": args.rate,
                             "fixture": {k: len(v) for k, v in fixture.items()}, "runs": runs},
                  command=command("bench_import", extra="".join(
                      f" {a}" for a in (sys.argv[1:] if argv is None else argv))))


if __name__ == "__main__":
    main()

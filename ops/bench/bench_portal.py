"""Benchmark: the web portal's server render time per page on a large ledger.

    .venv/bin/python -m ops.bench.bench_portal [--samples 40] [--quick]

Fills a throwaway PostgreSQL database (GRANTLEDGER_BENCH_PG, default the local server) with
10,000 grants, 1,000 access requests, 500 access lists (10 members each) and 2,000 users,
then asks each portal page ``--samples`` times as a signed-in user who is an operator, a
member and owner of lists, and a requester with grants and requests of their own. The time
is the whole answer in-process (FastAPI's TestClient: routing, session, CSRF token, the
service calls, Jinja2), p50 and p95 per page, and the p95 of the process's CPU time (less
skewed by a busy machine); the target is p95 < 150 ms. Writes
ops/bench/results/portal.json. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from base64 import b64encode
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import sqlalchemy as sa  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from itsdangerous import TimestampSigner  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from models.domain import MemberKind, PrincipalType, RequestState  # noqa: E402
from models.ledger import migrate, tables  # noqa: E402
from models.ledger.db import transaction  # noqa: E402
from models.ledger.enums import GrantState, SourceKind  # noqa: E402
from ops.bench.common import percentile, table, write_results  # noqa: E402
from ops.drills.services import database_beside  # noqa: E402
from workers.api import create_app  # noqa: E402
from workers.portal.app import SESSION_COOKIE  # noqa: E402
from workers.runtime import Runtime  # noqa: E402
from workers.settings import Settings  # noqa: E402

PG = os.environ.get("GRANTLEDGER_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
SECRET = "bench-portal-" + "k" * 40
VIEWER = "user-0000"
PERMISSION_SETS = ("ReadOnlyAccess", "PowerUserAccess", "AdministratorAccess", "BillingAccess")
TARGET_MS = 150.0
SIZES = {"full": {"grants": 10_000, "requests": 1_000, "lists": 500, "users": 2_000,
                  "accounts": 50},
         "quick": {"grants": 1_000, "requests": 100, "lists": 50, "users": 200, "accounts": 10}}


def throwaway_database() -> AbstractContextManager[str]:
    return database_beside(PG, prefix="gl_bench_portal")


def seed(runtime: Runtime, size: dict[str, int]) -> None:
    """The large ledger: accounts x permission sets, users, lists, grants, requests."""
    now = datetime.now(UTC)
    accounts = [f"{100000000000 + i:012d}" for i in range(size["accounts"])]
    arns = {ps: f"arn:aws:sso:::permissionSet/ssoins-bench/ps-{ps.lower()}"
            for ps in PERMISSION_SETS}
    users = [f"user-{i:04d}" for i in range(size["users"])]
    requester = {"allow": {"request": {"account_assignments": [
        {"account": "*", "permission_set": "ReadOnlyAccess"}], "max_duration": "8h"}}}
    with transaction(runtime.sessions) as session:
        session.add_all(tables.Account(id=a, name=f"account-{i}") for i, a in enumerate(accounts))
        session.add_all(tables.PermissionSet(arn=arn, name=ps) for ps, arn in arns.items())
        session.add(tables.Role(name="bench-requester", spec=requester))
        # the viewer audits (the Audit and Status pages) and reviews every request
        session.add(tables.Role(name="bench-auditor", spec={"options": {"auditor": True}}))
        session.add(tables.Role(name="bench-reviewer",
                                spec={"allow": {"review_requests": {"roles": ["*"]}}}))
        session.add_all(tables.User(name=u, email=f"{u}@example.com", roles=[
            "bench-requester", *(["bench-auditor", "bench-reviewer"] if u == VIEWER else [])])
            for u in users)
        session.flush()
        for index in range(size["lists"]):
            name = f"list-{index:03d}"
            session.add(tables.AccessList(name=name, title=f"List {index}",
                                          owners=[users[index % 50]], granted_roles=[]))
            session.flush()
            members = {users[(index * 7 + k * 13) % len(users)] for k in range(10)}
            session.add_all(tables.Membership(list_name=name, member_name=m,
                                              member_kind=MemberKind.USER) for m in members)
        pairs = [(a, ps) for a in accounts for ps in PERMISSION_SETS]
        for index in range(size["grants"]):
            account, ps = pairs[index % len(pairs)]
            session.add(tables.Grant(
                principal_type=PrincipalType.USER, principal_name=users[index % len(users)],
                account_id=account, permission_set_arn=arns[ps], source_kind=SourceKind.ROLE,
                source_id=f"bench-{index}", state=GrantState.ACTIVE, activated_at=now,
                expires_at=now + timedelta(hours=1 + index % 8)))
        states = list(RequestState)
        session.add_all(tables.AccessRequest(
            id=f"req-bench{index:05d}", user_name=users[index % len(users)],
            resources=[f"{accounts[index % len(accounts)]}/ReadOnlyAccess"],
            reason="benchmark", duration_seconds=3600, state=states[index % len(states)])
            for index in range(size["requests"]))


def cookie(runtime: Runtime, user: str) -> str:
    """The session cookie of ``user`` (the portal's session keeps the user's id)."""
    with runtime.sessions() as session:
        user_id = session.scalar(sa.select(tables.User.id).where(tables.User.name == user))
    now = time.time()
    session = {"user_id": user_id, "signed_in": now, "seen": now, "csrf": "bench"}
    return TimestampSigner(SECRET).sign(b64encode(json.dumps(session).encode())).decode()


def measure(client: TestClient, path: str, samples: int) -> dict[str, Any]:
    """Wall and CPU time of ``samples`` answers (CPU: this process, server and client)."""
    took, cpu = [], []
    for _ in range(samples):
        started, started_cpu = time.perf_counter(), time.process_time()
        answer = client.get(path)
        took.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
        assert answer.status_code == 200, f"{path}: {answer.status_code} {answer.text[:300]}"
    return {"page": path, "p50_ms": percentile(took, 0.5), "p95_ms": percentile(took, 0.95),
            "cpu_p95_ms": percentile(cpu, 0.95), "bytes": len(answer.content)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--quick", action="store_true", help="a tenth of the sizes")
    args = parser.parse_args(argv)
    size = SIZES["quick" if args.quick else "full"]
    with throwaway_database() as url:
        migrate.upgrade(url)
        settings = Settings(database_url=url, broker_url="memory://",
                            api_token=SecretStr("bench-" + "t" * 40),
                            session_secret=SecretStr(SECRET))
        runtime = Runtime(settings)
        seeded = time.perf_counter()
        seed(runtime, size)
        print(f"seeded {size} in {time.perf_counter() - seeded:.1f}s")
        pages = ["/", "/request", "/request?q=account-1", "/requests/req-bench00000",
                 "/reviews", "/reviews?offset=100", "/lists", "/lists?every=1&offset=250",
                 "/lists/list-000", f"/audit?account={100000000000:012d}",
                 f"/audit?at={datetime.now(UTC).isoformat()[:19]}", "/status"]
        with TestClient(create_app(runtime)) as client:
            client.cookies.set(SESSION_COOKIE, cookie(runtime, VIEWER), domain="testserver.local")
            for path in pages:  # warm-up: templates compiled, connections pooled
                measure(client, path, 2)
            rows = [measure(client, path, args.samples) for path in pages]
        runtime.close()
    print(table(rows, ["page", "p50_ms", "p95_ms", "cpu_p95_ms", "bytes"]))
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    worst = max(row["p95_ms"] for row in rows)
    print(f"worst p95: {worst:.1f} ms (target < {TARGET_MS:.0f} ms)")
    write_results("portal", {"sizes": size, "samples": args.samples, "pages": rows,
                             "load_average": os.getloadavg()[0],
                             "worst_p95_ms": worst, "target_ms": TARGET_MS},
                  command="python -m ops.bench.bench_portal" + (" --quick" if args.quick
                                                                 else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

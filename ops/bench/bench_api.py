"""API under load: 100 concurrent clients against `grantledger api --workers 4` on PostgreSQL
with the large organisation loaded (1,000 accounts, 5,000 users, 2,000 groups as access
lists, 50,000 grants), loopback only, for a bounded time.

    .venv/bin/python -m ops.bench.bench_api [--quick] [--clients 100] [--seconds 60]

Each client is a user with its own token, in a loop (an asyncio/httpx load generator in
this process): my grants (GET /v1/grants?user=me), what I may request (GET /v1/requestable),
an access list's members (GET /v1/access-lists/NAME), a new request (POST /v1/requests);
approvers approve the created requests (POST /v1/requests/ID/approve). Reports throughput,
p50/p99/max per route and errors; then checks that every created request is in the ledger
exactly once. Target: p99 < 300 ms per read route, 0 errors, nothing lost. Workers (1
process) and the sandbox run beside it, so approvals lead to real targeted syncs. Writes
ops/bench/results/api.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from typing import Any

import httpx
from sqlalchemy import func, select, update

from models.ledger import tables
from models.ledger.db import transaction
from ops.bench.bench_org import GRANTLEDGER, organisation
from ops.bench.common import command, machine, percentile, spread, table, write_results
from ops.bench.fleet import announce_to, apply, request_roles, wait
from ops.drills.stack import Stack, StackOptions
from tasks.access.permissions import operator
from tasks.access.tokens import create_token
from tasks.importing import importer

UNLIMITED = {"sso_admin_rate": 1000.0, "identitystore_rate": 1000.0, "scim_rate": 1000.0,
             "sync_interval": 3600.0, "import_interval": 3600.0}
MIX = (("my_grants", 0.30), ("requestable", 0.25), ("list_members", 0.25),
       ("create_request", 0.10), ("approve", 0.10))
READ_ROUTES = ("my_grants", "requestable", "list_members")
TARGET_P99_S = 0.300
APPROVERS = 4
PERMISSION_SET = "ReadOnlyAccess"


def load_organisation(stack: Stack, accounts: int) -> dict[str, Any]:
    """Seed the sandbox and import it into the ledger (limits lifted: not what is measured)."""
    fixture = organisation(accounts)
    stack.sandbox.seed(fixture)
    started = time.monotonic()
    importer.run_import(runtime=stack.runtime, default_owners=[fixture["users"][0]["user_name"]],
                        actor="bench")
    with stack.runtime.sessions() as session:
        counts = {name: session.scalar(select(func.count()).select_from(table_)) for name, table_
                  in (("users", tables.User), ("access_lists", tables.AccessList),
                      ("grants", tables.Grant), ("accounts", tables.Account))}
        lists = list(session.scalars(select(tables.AccessList.name)))
        account_ids = list(session.scalars(select(tables.Account.id)))
    return {"imported_s": round(time.monotonic() - started, 1), "counts": counts,
            "lists": lists, "accounts": account_ids, "users": [u["user_name"]
                                                               for u in fixture["users"]]}


def grant_roles(stack: Stack, clients: list[str], approvers: list[str]) -> dict[str, str]:
    """Clients may request ReadOnlyAccess anywhere, approvers review it; a token each."""
    apply(stack, request_roles(PERMISSION_SET))
    with transaction(stack.runtime.sessions) as session:  # imported users, roles added
        for names, role in ((clients, "requester"), (approvers, "approver")):
            session.execute(update(tables.User).where(tables.User.name.in_(names))
                            .values(roles=[role]))
    return {name: create_token(sessions=stack.runtime.sessions, user=name,
                                 actor=operator("bench"))[1]
            for name in [*clients, *approvers]}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_api(stack: Stack, *, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = open(stack.log_dir / "api.log", "wb")  # noqa: SIM115 - the process's log
    process = subprocess.Popen([GRANTLEDGER, "api", "--port", str(port), "--workers",
                                str(workers)], env=stack.environment(), stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait(lambda: _ready(url, process), timeout=60, what="the API answering", interval=0.2)
    return process, url


def stop_api(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server and its worker processes (their own process group), SIGKILL
    if they are still there after 10 s."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _ready(url: str, process: subprocess.Popen[bytes]) -> bool:
    if process.poll() is not None:
        raise RuntimeError(f"the API exited with {process.returncode}")
    try:
        return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


class Load:
    """The load generator's shared state: samples, errors, requests created and pending."""

    def __init__(self, *, url: str, tokens: dict[str, str], clients: list[str],
                 approvers: list[str], lists: list[str], accounts: list[str], reason: str):
        self.url, self.tokens, self.reason = url, tokens, reason
        self.clients, self.approvers, self.lists, self.accounts = (clients, approvers, lists,
                                                                   accounts)
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, list[str]] = defaultdict(list)
        self.created: list[str] = []
        self.pending: list[str] = []
        self.approved: list[str] = []

    async def client(self, http: httpx.AsyncClient, user: str, rng: random.Random,
                     until: float) -> None:
        while time.monotonic() < until:
            route = rng.choices([r for r, _ in MIX], weights=[w for _, w in MIX])[0]
            if route == "approve" and not self.pending:
                route = "create_request"
            await self.call(http, route, user, rng)

    async def call(self, http: httpx.AsyncClient, route: str, user: str,
                   rng: random.Random) -> None:
        method, path, body, caller, expected = self.request(route, user, rng)
        started = time.monotonic()
        try:
            answer = await http.request(method, path, json=body, headers={
                "Authorization": f"Bearer {self.tokens[caller]}"})
        except httpx.HTTPError as err:
            self.errors[route].append(f"{type(err).__name__}: {err}")
            return
        self.samples[route].append(time.monotonic() - started)
        if answer.status_code != expected:
            self.errors[route].append(f"{answer.status_code}: {answer.text[:200]}")
        elif route == "create_request":
            self.created.append(answer.json()["id"])
            self.pending.append(answer.json()["id"])
        elif route == "approve":
            self.approved.append(path.split("/")[-2])

    def request(self, route: str, user: str, rng: random.Random
                ) -> tuple[str, str, Any, str, int]:
        """(method, path, body, calling user, expected status) of one call."""
        if route == "my_grants":
            return "GET", f"/v1/grants?user={user}", None, user, 200
        if route == "requestable":
            return "GET", "/v1/requestable", None, user, 200
        if route == "list_members":
            return "GET", f"/v1/access-lists/{rng.choice(self.lists)}", None, user, 200
        if route == "create_request":
            resource = f"{rng.choice(self.accounts)}/{PERMISSION_SET}"
            return "POST", "/v1/requests", {"resources": [resource], "reason": self.reason,
                                            "duration": "1h"}, user, 201
        request_id = self.pending.pop(rng.randrange(len(self.pending)))
        return ("POST", f"/v1/requests/{request_id}/approve", {"reason": "bench"},
                rng.choice(self.approvers), 200)


async def drive(load: Load, *, seconds: float, seed: int = 5) -> float:
    """Every client in its loop until ``seconds`` have passed; the wall time."""
    limits = httpx.Limits(max_connections=len(load.clients),
                          max_keepalive_connections=len(load.clients))
    async with httpx.AsyncClient(base_url=load.url, limits=limits, timeout=30.0) as http:
        started = time.monotonic()
        until = started + seconds
        await asyncio.gather(*[load.client(http, user, random.Random(seed + i), until)
                               for i, user in enumerate(load.clients)])
        return time.monotonic() - started


def ledger_check(stack: Stack, load: Load) -> dict[str, Any]:
    """Every created request in the ledger exactly once, and nothing else with our reason."""
    with stack.runtime.sessions() as session:
        stored = list(session.scalars(select(tables.AccessRequest.id).where(
            tables.AccessRequest.reason == load.reason)))
    created = set(load.created)
    return {"created": len(load.created), "created_unique": len(created),
            "in_ledger": len(stored), "missing": len(created - set(stored)),
            "unexpected": len(set(stored) - created),
            "duplicates": len(stored) - len(set(stored)),
            "approved": len(load.approved)}


def figures(load: Load, wall: float) -> list[dict[str, Any]]:
    rows = []
    for route, _ in MIX:
        samples = load.samples.get(route, [])
        p99 = percentile(samples, 0.99)
        target = (("met" if p99 is not None and p99 < TARGET_P99_S else "NOT met")
                  if route in READ_ROUTES else "-")
        rows.append({"route": route, "calls": len(samples), "per_s": round(len(samples) / wall, 1),
                     **{f"{k}_ms": None if v is None else round(v * 1000, 1)
                        for k, v in spread(samples).items()},
                     "errors": len(load.errors.get(route, [])), "p99<300ms": target})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="20 accounts, 20 clients, 2 API workers, 8 s")
    parser.add_argument("--clients", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--accounts", type=int, default=None)
    parser.add_argument("--api-workers", type=int, default=None)
    args = parser.parse_args(argv)
    quick = (20, 20, 8.0, 2) if args.quick else (1000, 100, 60.0, 4)
    accounts = args.accounts or quick[0]
    clients_n, seconds = args.clients or quick[1], args.seconds or quick[2]
    api_workers = args.api_workers or quick[3]
    print(machine())
    options = StackOptions(workers=1, concurrency=2, beat=False, sandbox_rate=None,
                           settle_delay=1.0, settings=UNLIMITED)
    with Stack(options) as stack:
        announce_to(stack)
        org = load_organisation(stack, accounts)
        print(f"organisation loaded in {org['imported_s']} s: {org['counts']}", flush=True)
        clients = org["users"][:clients_n]
        approvers = org["users"][clients_n:clients_n + APPROVERS]
        tokens = grant_roles(stack, clients, approvers)
        api, url = start_api(stack, workers=api_workers)
        try:
            load = Load(url=url, tokens=tokens, clients=clients, approvers=approvers,
                        lists=org["lists"], accounts=org["accounts"],
                        reason=f"bench-{os.getpid()}-{time.time():.0f}")
            wall = asyncio.run(drive(load, seconds=seconds))
        finally:
            stop_api(api)
        check = ledger_check(stack, load)
    rows = figures(load, wall)
    total = sum(r["calls"] for r in rows)
    print(table(rows, ["route", "calls", "per_s", "p50_ms", "p99_ms", "max_ms", "mean_ms",
                       "errors", "p99<300ms"]))
    print(f"{clients_n} clients, {api_workers} API workers, {wall:.1f} s: {total} calls, "
          f"{total / wall:.1f}/s; errors: {sum(r['errors'] for r in rows)}")
    print(f"ledger: {check}")
    for route, messages in load.errors.items():
        print(f"  {route} errors (first 3): {messages[:3]}")
    write_results("api", {"quick": args.quick, "accounts": accounts, "clients": clients_n,
                          "seconds": seconds, "api_workers": api_workers,
                          "organisation": org["counts"], "wall_s": round(wall, 1),
                          "calls": total, "per_s": round(total / wall, 1), "routes": rows,
                          "errors": {k: v[:20] for k, v in load.errors.items()},
                          "ledger": check, "target_p99_ms": TARGET_P99_S * 1000},
                  command=command("bench_api", quick=args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`grantledger run`, the single-node install, as a process: the embedded defaults (SQLite,
in-process worker and sandbox) serving a request end to end, and the Redis shape (worker
and beat as children); both stop cleanly on SIGTERM / Ctrl-C and leave no process behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import httpx
import redis

from tests import waiting
from tests.e2e.conftest import REPO
from tests.stack_support import database_beside, free_port

DEADLINE = 60.0
STOP_WITHIN = 20.0
RUN_REDIS_DB = 13
RUN_TOKEN = "run-e2e-" + "x" * 32
GRANTLEDGER = str(Path(sys.executable).with_name("grantledger"))  # the console script


def eventually(condition: Callable[[], Any], *, what: str, log: Path) -> Any:
    return waiting.eventually(condition, what=what, timeout=DEADLINE, every=0.2,
                              tail=lambda: log.read_text(errors="replace")[-3000:])


def clean_environment(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRANTLEDGER_")}
    return {**env, "PYTHONPATH": str(REPO), **settings}


@contextmanager
def running(cwd: Path, env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`grantledger run` until the block ends; then SIGTERM, if still running."""
    log = cwd / "run.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([GRANTLEDGER, "run", "--port", str(port)], cwd=cwd, env=env,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        eventually(lambda: healthy(port) or process.poll() is not None, what="run started",
                   log=log)
        assert process.poll() is None, log.read_text()
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # only when a test failed half-way
            process.wait()


def healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def stop(process: subprocess.Popen[bytes], signum: int) -> int:
    process.send_signal(signum)
    return process.wait(timeout=STOP_WITHIN)


def exports(log: Path) -> dict[str, str]:
    """The `export NAME=value` lines `run` prints for its in-process sandbox."""
    lines = [line.strip().removeprefix("export ") for line in log.read_text().splitlines()
             if line.strip().startswith("export GRANTLEDGER_")]
    return dict(line.split("=", 1) for line in lines)


def cli(cwd: Path, env: dict[str, str], *args: str) -> str:
    finished = subprocess.run([GRANTLEDGER, *args], cwd=cwd,
                              env=env, capture_output=True, text=True, timeout=DEADLINE)
    assert finished.returncode == 0, f"grantledger {' '.join(args)}: {finished.stderr}"
    return finished.stdout


def staging_admin_of(sandbox: dict[str, str], user: str) -> Callable[[], bool]:
    """Whether ``user`` holds an assignment on Staging, asked of the sandbox with boto3."""
    options = {"endpoint_url": sandbox["GRANTLEDGER_AWS_ENDPOINT_URL"], "region_name":
               "us-east-1", "aws_access_key_id": "t", "aws_secret_access_key": "t"}
    store, sso = boto3.client("identitystore", **options), boto3.client("sso-admin", **options)
    user_id = store.get_user_id(
        IdentityStoreId=sandbox["GRANTLEDGER_IDENTITY_STORE_ID"],
        AlternateIdentifier={"UniqueAttribute": {"AttributePath": "userName",
                                                 "AttributeValue": user}})["UserId"]
    return lambda: any(row["AccountId"] == "222222222222" for row in
                       sso.list_account_assignments_for_principal(
                           InstanceArn=sandbox["GRANTLEDGER_INSTANCE_ARN"], PrincipalId=user_id,
                           PrincipalType="USER")["AccountAssignments"])


def test_the_embedded_node_serves_a_request_and_stops_on_sigterm(tmp_path: Path) -> None:
    port, env = free_port(), clean_environment()
    with running(tmp_path, env, port) as node:
        log = tmp_path / "run.log"
        sandbox = exports(log)
        assert "a sandbox Identity Center serves from this process" in log.read_text()
        # The CLI is another process: it reaches the node's ledger (./grantledger.db) and,
        # through the printed settings, its sandbox.
        tools = {**env, **sandbox}
        cli(tmp_path, tools, "import", "--default-owner", "alice")
        cli(tmp_path, tools, "apply", "-f", str(REPO / "ops/examples/demo"))
        carol, bob = (json.loads(cli(tmp_path, tools, "token", "create", "--user", user, "-o",
                                     "json"))["token"] for user in ("carol", "bob"))
        api = f"http://127.0.0.1:{port}/v1"
        created = httpx.post(f"{api}/requests", headers={"Authorization": f"Bearer {carol}"},
                             json={"resources": ["Staging/AdministratorAccess"],
                                   "reason": "run e2e"}).json()
        approved = httpx.post(f"{api}/requests/{created['id']}/approve", json={},
                              headers={"Authorization": f"Bearer {bob}"})
        assert approved.status_code == 200, approved.text
        # the in-process worker heard the approval and created the assignment
        eventually(staging_admin_of(sandbox, "carol"), what="carol's assignment", log=log)
        assert stop(node, signal.SIGTERM) == 0
    assert "Finished server process" in log.read_text()
    assert not healthy(port)


@contextmanager
def redis_node(tmp_path: Path, pg_url: str, redis_url: str, **settings: str
               ) -> Iterator[tuple[subprocess.Popen[bytes], int, str, list[int]]]:
    """`grantledger run` on PostgreSQL and Redis: (the node, its port, the broker, the pids
    of its worker and beat children); the children are checked gone afterwards."""
    broker = redis_url.rsplit("/", 1)[0] + f"/{RUN_REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    port = free_port()
    with database_beside(pg_url, prefix="gl_run") as database_url, running(
            tmp_path, clean_environment(GRANTLEDGER_DATABASE_URL=database_url,
                                        GRANTLEDGER_BROKER_URL=broker,
                                        GRANTLEDGER_API_TOKEN=RUN_TOKEN, **settings),
            port) as node:
        children = eventually(lambda: child_pids(node.pid) if len(child_pids(node.pid)) == 2
                              else None, what="worker and beat children",
                              log=tmp_path / "run.log")
        yield node, port, broker, children
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()]
    redis.Redis.from_url(broker).flushdb()


def test_the_redis_node_runs_worker_and_beat_children_and_stops_them_on_ctrl_c(
        tmp_path: Path, pg_url: str, redis_url: str) -> None:
    with redis_node(tmp_path, pg_url, redis_url) as (node, port, broker, _):
        synced = httpx.post(f"http://127.0.0.1:{port}/v1/sync",
                            headers={"Authorization": f"Bearer {RUN_TOKEN}"})
        assert synced.status_code == 202
        eventually(lambda: sweeps_sent(broker) >= 3, what="three expiry sweeps",
                   log=tmp_path / "run.log")
        assert stop(node, signal.SIGINT) == 0
    log = (tmp_path / "run.log").read_text()
    for noise in ("Sending due task", "] received", "] succeeded in", "No hostname",
                  "superuser privileges"):
        assert noise not in log  # DEBUG lines (GRANTLEDGER_LOG_LEVEL=DEBUG shows them)


def sweeps_sent(broker: str) -> int:
    """How often beat sent the expiry sweep (redbeat's record of the entry)."""
    meta = redis.Redis.from_url(broker).hget("redbeat:expiry-sweep", "meta")
    return json.loads(meta).get("total_run_count", 0) if meta else 0


def test_a_child_that_does_not_stop_is_killed_at_the_deadline_and_named(
        tmp_path: Path, pg_url: str, redis_url: str) -> None:
    with redis_node(tmp_path, pg_url, redis_url,
                    GRANTLEDGER_RUN_STOP_TIMEOUT="4") as (node, _, _, children):
        [beat] = [pid for pid in children
                  if b"beat" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]
        os.kill(beat, signal.SIGSTOP)  # a child that cannot react to SIGTERM
        node.send_signal(signal.SIGTERM)
        assert node.wait(timeout=4 + 8) == 3
    assert f"did not stop within 4s (GRANTLEDGER_RUN_STOP_TIMEOUT), killed: beat (pid {beat})" \
        in (tmp_path / "run.log").read_text()


def child_pids(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []

"""End-to-end fixtures: real Celery worker processes (`celery -A workers.celery.app worker`)
on Redis, a PostgreSQL ledger of their own, and a Sandbox served from this test process.

Workers are subprocesses with GRANTLEDGER_* settings in their environment, exactly as a
deployment runs them; they are stopped (then killed, if they linger) at teardown.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from tests.integration.sync_support import World, create_database, sandbox_settings
from workers.celery.app import QUEUES, make_celery
from workers.runtime import Runtime
from workers.sandbox import Sandbox
from workers.settings import Settings

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 30.0
E2E_REDIS_DB = 11  # 9: shared; 12: API tests; 13: `run` e2e; 14: stack e2e


def worker_environment(settings: Settings) -> dict[str, str]:
    """The GRANTLEDGER_* variables a worker process reads (what a deployment sets)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRANTLEDGER_")}
    names = ("database_url", "broker_url", "aws_mode", "aws_endpoint_url", "scim_url",
             "instance_arn", "identity_store_id", "poll_first_delay", "poll_max_delay",
             "sso_admin_rate", "identitystore_rate", "scim_rate", "drift_mode")
    for name in names:
        env[f"GRANTLEDGER_{name.upper()}"] = str(getattr(settings, name))
    for secret in ("scim_token", "api_token"):
        env[f"GRANTLEDGER_{secret.upper()}"] = getattr(settings, secret).get_secret_value()
    env["PYTHONPATH"] = str(REPO)
    return env


class Workers:
    """Celery worker processes: start, wait until they answer, stop, kill a child."""

    def __init__(self, env: dict[str, str], app: Celery, *, count: int = 2,
                 concurrency: int = 2) -> None:
        self.env, self.app, self.count, self.concurrency = env, app, count, concurrency
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Any] = []

    def start(self, log_dir: Path) -> Workers:
        for index in range(self.count):
            log = open(log_dir / f"worker-{index}-{uuid.uuid4().hex[:6]}.log", "wb")  # noqa: SIM115
            self.logs.append(log)
            self.processes.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "workers.celery.app", "worker",
                 "--pool", "prefork", f"--concurrency={self.concurrency}",
                 f"--queues={','.join(QUEUES)}", "--loglevel=WARNING", "--without-gossip",
                 "--without-mingle", f"--hostname=e2e{index}-{uuid.uuid4().hex[:6]}@%h"],
                cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT))
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while len(self.app.control.ping(timeout=0.5) or []) < len(self.alive()):
            dead = [p for p in self.processes if p.poll() is not None]
            assert not dead, f"a worker exited at start: {self.tail()}"
            assert time.monotonic() < deadline, f"workers not ready: {self.tail()}"

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.processes if p.poll() is None]

    def children(self) -> list[int]:
        """Pids of the pool processes (prefork children) of every worker."""
        found = []
        for process in self.alive():
            path = Path(f"/proc/{process.pid}/task/{process.pid}/children")
            found += [int(pid) for pid in path.read_text().split()]
        return found

    def stop(self) -> None:
        for process in self.alive():
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self.processes.clear()
        for log in self.logs:
            log.close()

    def tail(self) -> str:
        return "\n".join(Path(log.name).read_text(errors="replace")[-2000:] for log in self.logs)


@pytest.fixture(scope="module")
def e2e_sandbox() -> Iterator[Sandbox]:
    with Sandbox(settle_delay=0.2).start() as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def e2e_redis_url(redis_url: str) -> str:
    """A Redis database of these tests' own (flushed first): other test sessions on the same
    machine flush the shared one, which would drop our queues' bindings mid-test."""
    import redis

    url = redis_url.rsplit("/", 1)[0] + f"/{E2E_REDIS_DB}"
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture(scope="module")
def e2e_settings(e2e_sandbox: Sandbox, e2e_redis_url: str) -> Iterator[Settings]:
    database = create_database()
    url = next(database)
    yield sandbox_settings(e2e_sandbox, url, broker_url=e2e_redis_url, poll_first_delay=0.2,
                           poll_max_delay=1.0)
    database.close()


@pytest.fixture(scope="module")
def e2e_app(e2e_settings: Settings) -> Celery:
    """A Celery app of this process on the workers' Redis (to send tasks and ping)."""
    return make_celery(e2e_settings)


@pytest.fixture(scope="module")
def workers(e2e_settings: Settings, e2e_app: Celery,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    running = Workers(worker_environment(e2e_settings), e2e_app).start(
        tmp_path_factory.mktemp("workers"))
    yield running
    running.stop()


@pytest.fixture
def e2e_world(e2e_settings: Settings, e2e_sandbox: Sandbox) -> Iterator[World]:
    runtime = Runtime(e2e_settings)
    world = World(runtime, e2e_sandbox)
    world.reset()
    yield world
    runtime.close()

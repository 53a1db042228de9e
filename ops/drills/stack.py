"""The drill and benchmark harness: a whole grantledger install on this machine.

One :class:`Stack` = the Sandbox served from this process (AWS's limits on), a private
``redis-server``, a throwaway PostgreSQL database (on the machine's server, or on a private
cluster the drill may stop), real ``celery -A workers.celery.app worker`` processes and a
real beat (redbeat), all configured through ``GRANTLEDGER_*`` variables as a deployment
configures them. This process keeps a :class:`Runtime` on the same ledger to write the
workload and read the invariants, and a Celery app to publish tasks.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from celery import Celery
from pydantic import SecretStr

from models.ledger import migrate
from ops.drills.services import PrivatePostgres, PrivateRedis, SentinelRedis, wait_until
from tasks.events import Next, enqueue
from workers.celery.app import BEAT_SCHEDULER, QUEUES, make_celery
from workers.runtime import Runtime
from workers.sandbox import Sandbox
from workers.settings import Settings

REPO = Path(__file__).resolve().parents[2]
PG_ADMIN_URL = os.environ.get("GRANTLEDGER_TEST_PG_ADMIN_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
READY_TIMEOUT = 45.0
# Fast loops so a drill sees recovery in seconds; AWS's own limits stay as they are.
DRILL_SETTINGS: dict[str, Any] = {
    "expiry_interval": 1.0, "poll_sweep_interval": 1.0, "sync_interval": 10.0,
    "import_interval": 3600.0, "poll_first_delay": 0.3, "poll_max_delay": 1.0,
    "sso_admin_rate": 20.0, "identitystore_rate": 20.0, "scim_rate": 20.0,
}
ENV_NAMES = ("database_url", "broker_url", "aws_mode", "aws_endpoint_url", "scim_url",
             "instance_arn", "identity_store_id", *DRILL_SETTINGS, "drift_mode",
             "max_outstanding_creates", "poll_give_up_after", "revoke_stuck_after_attempts")

_sandbox: Sandbox | None = None


def shared_sandbox() -> Sandbox:
    """The process's one Sandbox (moto's state is process-wide), started on first use."""
    global _sandbox
    if _sandbox is None:
        _sandbox = Sandbox(settle_delay=0.3, rate=20.0).start()
    return _sandbox


def stop_shared_sandbox() -> None:
    """Stop the process's drill Sandbox (tests: before another module starts its own)."""
    global _sandbox
    if _sandbox is not None:
        _sandbox.stop()
        _sandbox = None


@dataclass
class StackOptions:
    """What differs between drills and benchmarks."""

    workers: int = 2
    concurrency: int = 2
    beat: bool = True
    settle_delay: float = 0.3
    settle_jitter: float = 0.0
    sandbox_rate: float | None = 20.0  # AWS: ~20 sso-admin requests/s
    private_postgres: bool = False
    settings: dict[str, Any] = field(default_factory=dict)  # overrides of DRILL_SETTINGS
    copies: int = 1  # 10: every task published ten times (workers `-A ops.drills.tenfold`)
    command_prefix: list[str] = field(default_factory=list)  # e.g. faketime
    extra_env: dict[str, str] = field(default_factory=dict)
    sentinel: bool = False  # Redis as a master, a replica and three sentinels


class Stack:
    """Sandbox + Redis + PostgreSQL + worker and beat processes; ``start()`` / ``close()``."""

    def __init__(self, options: StackOptions | None = None, *,
                 log_dir: Path | None = None) -> None:
        self.options = options or StackOptions()
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="gl-drill-logs-"))
        self.sandbox = shared_sandbox()
        self.redis: Any = SentinelRedis() if self.options.sentinel else PrivateRedis()
        self.postgres = PrivatePostgres() if self.options.private_postgres else None
        self.database = f"gl_drill_{uuid.uuid4().hex[:10]}"
        self.workers: list[subprocess.Popen[bytes]] = []
        self.beats: list[subprocess.Popen[bytes]] = []
        self._orphans: list[int] = []  # pool children of killed workers (killed too)
        self._specs: dict[int, tuple[str, list[str], dict[str, Any]]] = {}  # pid -> spawn
        self.restarts: list[str] = []  # processes the supervisor restarted (revive())
        self._started: tuple[Settings, Runtime, Celery] | None = None

    # -- life cycle -----------------------------------------------------------------------

    def start(self) -> Stack:
        if threading.current_thread() is threading.main_thread():
            # `kill PID` / `timeout` must still run close(): no orphaned servers or workers
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
        self.redis.start()
        if self.postgres is not None:
            self.postgres.init()
        url = self._create_database()
        self._reset_sandbox()
        settings = self._settings(url)
        self._started = (settings, Runtime(settings), make_celery(settings))
        if self.options.copies > 1:
            from ops.drills.tenfold import tenfold

            tenfold(self.app, self.options.copies)
        self.start_workers()
        if self.options.beat:
            self.start_beat()
            # A beat that cannot reach Redis while starting exits (its supervisor restarts
            # it): faults are injected only once it leads.
            wait_until(lambda: bool(self.redis.client().exists("redbeat::lock")),
                       timeout=READY_TIMEOUT, what="beat holding its lock")
        return self

    def close(self) -> None:
        for process in [*self.beats, *self.workers]:
            stop_process(process, signal.SIGKILL)
        for pid in self._orphans:
            _kill_quietly(pid)
        if self._started is not None:
            self.runtime.close()
            self.app.close()
        self.sandbox.faults.clear()
        self._drop_database()
        self.redis.close()
        if self.postgres is not None:
            self.postgres.close()

    def _parts(self) -> tuple[Settings, Runtime, Celery]:
        if self._started is None:
            raise RuntimeError("the stack is not started: call start() first")
        return self._started

    @property
    def settings(self) -> Settings:
        """The settings every process of the stack runs with."""
        return self._parts()[0]

    @property
    def runtime(self) -> Runtime:
        """This process's runtime on the stack's ledger and sandbox."""
        return self._parts()[1]

    @property
    def app(self) -> Celery:
        """A Celery app on the stack's broker, to publish tasks and ping workers."""
        return self._parts()[2]

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _admin_url(self) -> str:
        return self.postgres.admin_url if self.postgres is not None else PG_ADMIN_URL

    def _create_database(self) -> str:
        admin = sa.create_engine(self._admin_url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{self.database}"'))
        admin.dispose()
        url = self._admin_url().rsplit("/", 1)[0] + f"/{self.database}"
        migrate.upgrade(url)
        return url

    def _drop_database(self) -> None:
        if self.postgres is not None:
            return  # the whole cluster goes
        admin = sa.create_engine(self._admin_url(), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                     "WHERE datname = :n"), {"n": self.database})
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.database}"'))
        finally:
            admin.dispose()

    def _reset_sandbox(self) -> None:
        sandbox = self.sandbox
        sandbox.settle_delay, sandbox.settle_jitter = (self.options.settle_delay,
                                                       self.options.settle_jitter)
        sandbox.rate = self.options.sandbox_rate
        sandbox.reset()
        sandbox.faults.clear()

    def _settings(self, database_url: str) -> Settings:
        values: dict[str, Any] = {
            **DRILL_SETTINGS, **self.options.settings, "database_url": database_url,
            "broker_url": self.redis.url, "aws_mode": "sandbox",
            "redis_master_name": getattr(self.redis, "master_name", None),
            "aws_endpoint_url": self.sandbox.endpoint_url, "scim_url": self.sandbox.scim_url,
            "scim_token": SecretStr(self.sandbox.scim_token),
            "instance_arn": self.sandbox.instance_arn,
            "identity_store_id": self.sandbox.identity_store_id,
            "api_token": SecretStr("drill-" + uuid.uuid4().hex)}
        return Settings(**values)

    # -- processes ------------------------------------------------------------------------

    def environment(self, **overrides: Any) -> dict[str, str]:
        """The ``GRANTLEDGER_*`` environment of a worker or beat (what a deployment sets)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRANTLEDGER_")}
        settings = self.settings.model_copy(update=overrides)
        for name in ENV_NAMES:
            env[f"GRANTLEDGER_{name.upper()}"] = str(getattr(settings, name))
        for secret in ("scim_token", "api_token"):
            env[f"GRANTLEDGER_{secret.upper()}"] = getattr(settings, secret).get_secret_value()
        if settings.redis_master_name:
            env["GRANTLEDGER_REDIS_MASTER_NAME"] = settings.redis_master_name
        env["PYTHONPATH"] = str(REPO)
        return {**env, **self.options.extra_env}

    def _spawn(self, role: str, arguments: list[str], **overrides: Any
               ) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{role}-{uuid.uuid4().hex[:6]}.log", "wb")  # noqa: SIM115
        app_module = "ops.drills.tenfold" if self.options.copies > 1 else "workers.celery.app"
        command = [*self.options.command_prefix, sys.executable, "-m", "celery", "-A",
                   app_module, *arguments]
        process = subprocess.Popen(command, cwd=self.log_dir, env=self.environment(**overrides),
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self._specs[process.pid] = (role, arguments, overrides)
        return process

    def revive(self) -> list[str]:
        """What docker-compose's ``restart: unless-stopped`` does: start again every worker
        or beat that exited without the drill stopping it (kill_workers / stop_beats forget
        theirs first); the roles restarted, also kept in ``restarts``."""
        revived = []
        for processes in (self.workers, self.beats):
            for index, process in enumerate(processes):
                if process.poll() is None:
                    continue
                role, arguments, overrides = self._specs[process.pid]
                processes[index] = self._spawn(role, arguments, **overrides)
                revived.append(f"{role} (exit {process.returncode})")
        self.restarts += revived
        return revived

    def start_workers(self, count: int | None = None, **overrides: Any) -> None:
        """Start worker processes and wait until every one answers a ping."""
        for index in range(count or self.options.workers):
            self.workers.append(self._spawn(f"worker{index}", [
                "worker", "--pool", "prefork", f"--concurrency={self.options.concurrency}",
                f"--queues={','.join(QUEUES)}", "--loglevel=INFO", "--without-gossip",
                "--without-mingle", f"--hostname=drill{index}-{uuid.uuid4().hex[:6]}@%h"],
                **overrides))
        self.wait_workers_ready()

    def wait_workers_ready(self) -> None:
        def answering() -> bool:
            dead = [p for p in self.workers if p.poll() is not None]
            if dead:
                raise RuntimeError(f"a worker exited at start:\n{self.tail()}")
            return len(self.app.control.ping(timeout=0.5) or []) >= len(self.workers)
        wait_until(answering, timeout=READY_TIMEOUT, what="workers")

    def start_beat(self, **overrides: Any) -> subprocess.Popen[bytes]:
        beat = self._spawn(f"beat{len(self.beats)}", [
            "beat", "-S", BEAT_SCHEDULER, "--max-interval", "1",
            "--loglevel=INFO", f"--pidfile={self.log_dir}/beat-{uuid.uuid4().hex[:6]}.pid"],
            **overrides)
        self.beats.append(beat)
        return beat

    def children(self) -> list[int]:
        """Pids of the prefork pool processes of every live worker."""
        found = []
        for process in self.workers:
            if process.poll() is None:
                path = Path(f"/proc/{process.pid}/task/{process.pid}/children")
                found += [int(pid) for pid in path.read_text().split()]
        return found

    def kill_workers(self, sig: int = signal.SIGKILL) -> None:
        """Signal every worker main process (SIGTERM: a warm shutdown, waited for); the pool
        children a killed worker leaves behind are killed too."""
        children = self.children()
        self._orphans += children
        for process in self.workers:
            stop_process(process, sig, timeout=60)
        for pid in children:
            _kill_quietly(pid)
        self.workers = []

    def stop_beats(self, sig: int = signal.SIGKILL) -> None:
        for beat in self.beats:
            stop_process(beat, sig)
        self.beats = []

    # -- work -----------------------------------------------------------------------------

    def enqueue(self, work: Iterable[Next]) -> int:
        return enqueue(list(work), app=self.app)

    def tail(self, chars: int = 3000) -> str:
        logs = sorted(self.log_dir.glob("*.log"))
        return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')[-chars:]}" for p in logs)


def stop_process(process: subprocess.Popen[bytes], sig: int, *, timeout: float = 20) -> None:
    """Send ``sig``; after ``timeout`` seconds without exiting, SIGKILL."""
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _kill_quietly(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def poll_until(condition: Any, *, timeout: float, interval: float = 0.5) -> bool:
    """Call ``condition`` until it is truthy or ``timeout`` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)

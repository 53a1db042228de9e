"""Private Redis and PostgreSQL servers for the drills: started on free ports from the
installed binaries, so a drill can stop, flush and restart them without touching the
machine's own services.

PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres``
system user (``runuser``); otherwise it runs as whoever we are.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

READY_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(ready: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll ``ready`` every 0.1 s; RuntimeError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {timeout:g}s")
        time.sleep(0.1)


class PrivateRedis:
    """``redis-server`` on a free port; ``stop(save=True)`` then ``start()`` keeps the data
    (a restart), ``flushall()`` loses it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="gl-drill-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self) -> PrivateRedis:
        log = open(self.directory / "redis.log", "ab")  # noqa: SIM115 - the server keeps it
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory), "--protected-mode", "no"],
            stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._answers, timeout=READY_TIMEOUT, what="redis-server")
        return self

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def stop(self, *, save: bool = False) -> None:
        """Shut down; ``save``: write the data first so the next ``start()`` has it."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(redis.RedisError):  # the connection drops as it exits
            self.client().shutdown(save=save, nosave=not save)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def flushall(self) -> None:
        self.client().flushall()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def postgres_bin(name: str) -> str:
    """The path of a PostgreSQL server binary (``initdb``, ``pg_ctl``), newest version."""
    installed = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    found = installed[-1] if installed else shutil.which(name)
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (looked in "
                           "/usr/lib/postgresql/*/bin and PATH)")
    return found


class PrivatePostgres:
    """A throwaway PostgreSQL cluster (``initdb`` in a temp dir) on a free port, trust auth.

    ``stop()`` is an immediate shutdown (what a crash or a lost host looks like to clients);
    ``start()`` brings the same data back.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="gl-drill-pg-"))
        self.data = self.directory / "data"
        self._as_postgres = os.geteuid() == 0

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)

    def init(self) -> PrivatePostgres:
        if self._as_postgres:
            shutil.chown(self.directory, user="postgres")
        self._run(postgres_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8")
        return self.start()

    def start(self) -> PrivatePostgres:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} "
                   "-c fsync=off -c synchronous_commit=off -c max_connections=200")
        self._run(postgres_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l",
                  str(self.directory / "server.log"), "-w", "-t", "60", "start")
        return self

    def stop(self) -> None:
        self._run(postgres_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def close(self) -> None:
        if self.running():
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

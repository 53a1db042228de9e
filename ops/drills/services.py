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
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
import sqlalchemy as sa

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


# Loopback ports the Sentinel drill's master, replica and sentinels take (a range of their
# own, so they never collide with the machine's or another drill's redis-server).
SENTINEL_DRILL_PORTS = range(7300, 7400)


def free_port_in(ports: range, *, taken: set[int]) -> int:
    """A port of ``ports`` nobody listens on (and not in ``taken``)."""
    for port in ports:
        if port in taken:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port
    raise RuntimeError(f"no free loopback port in {ports.start}-{ports.stop - 1}")


def sentinel_command() -> list[str]:
    """Debian's ``redis-sentinel``, or ``redis-server --sentinel`` (the same binary)."""
    if shutil.which("redis-sentinel"):
        return ["redis-sentinel"]
    if shutil.which("redis-server"):
        return ["redis-server"]  # with --sentinel after the config file
    raise RuntimeError("neither redis-sentinel nor redis-server is installed "
                       "(apt-get install -y redis-server redis-sentinel)")


class SentinelRedis:
    """A Redis master, one replica and three sentinels (quorum 2) on loopback ports, as a
    small production Sentinel setup; ``kill_master()`` is the fault, the sentinels promote
    the replica. ``url`` is the kombu form every grantledger process is given."""

    MASTER_NAME = "grantledger"
    DOWN_AFTER_MS = 1000  # sentinels call the master down after this long without answers
    FAILOVER_TIMEOUT_MS = 10000

    def __init__(self) -> None:
        taken: set[int] = set()
        self.master_port = free_port_in(SENTINEL_DRILL_PORTS, taken=taken)
        self.replica_port = free_port_in(SENTINEL_DRILL_PORTS, taken=taken)
        self.sentinel_ports = [free_port_in(SENTINEL_DRILL_PORTS, taken=taken)
                               for _ in range(3)]
        self.directory = Path(tempfile.mkdtemp(prefix="gl-drill-sentinel-"))
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return ";".join(f"sentinel://127.0.0.1:{port}" for port in self.sentinel_ports) + "/0"

    @property
    def master_name(self) -> str:
        return self.MASTER_NAME

    def start(self) -> SentinelRedis:
        self._server("master", self.master_port)
        self._server("replica", self.replica_port, "--replicaof", "127.0.0.1",
                     str(self.master_port))
        wait_until(self._replica_in_sync, timeout=READY_TIMEOUT, what="replica in sync")
        for index, port in enumerate(self.sentinel_ports):
            self._sentinel(index, port)
        wait_until(self._sentinels_agree, timeout=READY_TIMEOUT, what="sentinels")
        return self

    def _spawn(self, name: str, command: list[str]) -> None:
        log = open(self.directory / f"{name}.log", "ab")  # noqa: SIM115 - the server keeps it
        self.processes[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                cwd=self.directory)

    def _server(self, name: str, port: int, *extra: str) -> None:
        data = self.directory / name
        data.mkdir(exist_ok=True)
        self._spawn(name, ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                           "--save", "", "--appendonly", "no", "--dir", str(data),
                           "--protected-mode", "no", *extra])
        wait_until(lambda: self._answers(port), timeout=READY_TIMEOUT, what=f"redis {name}")

    def _sentinel(self, index: int, port: int) -> None:
        config = self.directory / f"sentinel-{index}.conf"
        config.write_text(
            f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {self.directory}\n"
            f"sentinel monitor {self.MASTER_NAME} 127.0.0.1 {self.master_port} 2\n"
            f"sentinel down-after-milliseconds {self.MASTER_NAME} {self.DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {self.MASTER_NAME} {self.FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {self.MASTER_NAME} 1\n")
        command = sentinel_command()
        extra = ["--sentinel"] if command == ["redis-server"] else []
        self._spawn(f"sentinel-{index}", [*command, str(config), *extra])
        wait_until(lambda: self._answers(port), timeout=READY_TIMEOUT,
                   what=f"sentinel {index}")

    @staticmethod
    def _answers(port: int) -> bool:
        try:
            return bool(redis.Redis(host="127.0.0.1", port=port, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def _replica_in_sync(self) -> bool:
        info = redis.Redis(host="127.0.0.1", port=self.replica_port,
                           socket_timeout=1).info("replication")
        return info.get("master_link_status") == "up"

    def _sentinels_agree(self) -> bool:
        """Every sentinel knows the master, its replica and the other two sentinels."""
        for port in self.sentinel_ports:
            client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
            try:
                state = client.sentinel_master(self.MASTER_NAME)
            except redis.RedisError:
                return False
            if int(state.get("num-slaves", 0)) < 1 or int(state.get("num-other-sentinels",
                                                                       0)) < 2:
                return False
        return True

    def master_address(self) -> tuple[str, int] | None:
        """Where the sentinels say the master is (the first that answers), or None."""
        for port in self.sentinel_ports:
            try:
                found = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1).execute_command(
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.MASTER_NAME)
            except redis.RedisError:
                continue
            if found:
                return found[0].decode(), int(found[1])
        return None

    def client(self) -> redis.Redis:
        """A client on the current master (found through the sentinels)."""
        from redis.sentinel import Sentinel

        sentinel = Sentinel([("127.0.0.1", port) for port in self.sentinel_ports],
                            socket_timeout=2)
        return sentinel.master_for(self.MASTER_NAME, socket_timeout=2)

    def kill_master(self) -> None:
        """kill -9 of the master: what a lost host looks like to everyone else."""
        self.processes["master"].kill()
        self.processes["master"].wait(timeout=10)

    def writable_master(self) -> bool:
        """The sentinels name a master other than the killed one, and it takes writes."""
        address = self.master_address()
        if address is None or address[1] == self.master_port:
            return False
        try:
            return bool(redis.Redis(host=address[0], port=address[1], socket_timeout=1)
                        .set("grantledger:drill:probe", "1"))
        except redis.RedisError:
            return False

    def close(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)


@contextmanager
def database_beside(pg_url: str, *, prefix: str) -> Iterator[str]:
    """An empty PostgreSQL database on ``pg_url``'s server, dropped afterwards (processes
    under test migrate it themselves)."""
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield pg_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                       "WHERE datname = :n"), {"n": name})
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()

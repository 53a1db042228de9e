"""A worker's Prometheus endpoint (`grantledger worker --metrics-port`): the AWS calls and
settled operations of its pool processes, summed, and still counted after a child is
killed with SIGKILL. A real `grantledger worker` process on Redis, a PostgreSQL ledger and
the Sandbox; every wait polls with a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import httpx
import pytest
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families

from tasks import events
from tasks.events import Next, enqueue
from tests import waiting
from tests.e2e.conftest import REPO, worker_environment
from tests.e2e.test_workers import expected, ledger_matches_aws, policy
from tests.integration.sync_support import World
from workers.settings import Settings

DEADLINE = 60.0
CREATE = "CreateAccountAssignment"


eventually = partial(waiting.eventually, timeout=DEADLINE)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def worker_command(port: int, *, loglevel: str = "WARNING") -> list[str]:
    return [sys.executable, "-m", "workers.cli.main", "worker", "--concurrency", "2",
            "--loglevel", loglevel, "--metrics-port", str(port),
            "--metrics-host", "127.0.0.1"]


class MetricsWorker:
    """One `grantledger worker --metrics-port` process."""

    def __init__(self, env: dict[str, str], log_dir: Path, *, loglevel: str = "WARNING") -> None:
        self.port = free_port()
        name = f"worker-{uuid.uuid4().hex[:6]}"
        # stderr: the log lines; stdout: Celery's own console notices ("Warm shutdown")
        self.log, self.console = log_dir / f"{name}.log", log_dir / f"{name}.out"
        with open(self.log, "wb") as err, open(self.console, "wb") as out:
            self.process = subprocess.Popen(worker_command(self.port, loglevel=loglevel),
                                            cwd=REPO, env=env, stdout=out, stderr=err)

    def samples(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Every sample the endpoint serves, by (name, labels)."""
        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        return {(sample.name, frozenset(sample.labels.items())): sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples}

    def value(self, name: str, **labels: str) -> float:
        return self.samples().get((name, frozenset(labels.items())), 0.0)

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    def serving(self) -> bool:
        assert self.process.poll() is None, f"worker exited: {self.tail()}"
        try:
            self.samples()
        except httpx.HTTPError:
            return False
        return True

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def tail(self) -> str:
        return "\n".join(path.read_text(errors="replace")[-3000:]
                         for path in (self.log, self.console))


@contextmanager
def running(env: dict[str, str], app: Celery, log_dir: Path,
            **options: str) -> Iterator[MetricsWorker]:
    worker = MetricsWorker(env, log_dir, **options)
    try:
        eventually(worker.serving, what="metrics endpoint")
        eventually(lambda: app.control.ping(timeout=0.5), what="worker answers ping")
        yield worker
    finally:
        worker.stop()


@pytest.fixture
def metrics_worker(e2e_settings: Settings, e2e_app: Celery,
                   tmp_path: Path) -> Iterator[MetricsWorker]:
    with running(worker_environment(e2e_settings), e2e_app, tmp_path) as worker:
        yield worker


def creates_sent(world: World) -> int:
    return world.sandbox.calls().get(f"sso-admin:{CREATE}", 0)


def test_worker_metrics_sum_the_pool_processes_and_survive_a_killed_child(
        metrics_worker: MetricsWorker, e2e_world: World, e2e_app: Celery):
    names = policy(e2e_world, 3)
    before = creates_sent(e2e_world)
    enqueue([Next(events.SYNC_FULL)], app=e2e_app)
    eventually(lambda: ledger_matches_aws(e2e_world)
               and e2e_world.aws_assignments() == expected(e2e_world, names),
               what="ledger = AWS")

    sent = creates_sent(e2e_world) - before
    assert sent == 4  # 3 users + the admins group
    assert metrics_worker.value("grantledger_aws_calls_total", api=CREATE) == sent
    assert metrics_worker.value("grantledger_operations_settled_total",
                                kind="create_assignment", outcome="SUCCEEDED") == sent
    assert metrics_worker.value("grantledger_aws_call_seconds_count", api=CREATE) == sent

    killed = metrics_worker.children()
    assert killed, "a prefork worker has pool processes"
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    eventually(lambda: metrics_worker.children()
               and not set(metrics_worker.children()) & set(killed), what="pool respawned")
    assert metrics_worker.value("grantledger_aws_calls_total", api=CREATE) == sent

    e2e_world.add_user("late", roles=["prod-read"])
    enqueue([Next(events.SYNC_FULL)], app=e2e_app)
    eventually(lambda: ledger_matches_aws(e2e_world)
               and e2e_world.aws_assignments() == expected(e2e_world, names | {"late"}),
               what="ledger = AWS after the new children ran")
    assert creates_sent(e2e_world) - before == sent + 1
    assert metrics_worker.value("grantledger_aws_calls_total", api=CREATE) == sent + 1


def test_a_metrics_port_in_use_stops_the_worker_at_start(e2e_settings: Settings):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        done = subprocess.run(worker_command(port), cwd=REPO,
                              env=worker_environment(e2e_settings), capture_output=True,
                              text=True, timeout=60)
    assert done.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "--metrics-port" in done.stderr  # what to do next


def test_a_json_logging_worker_logs_only_json_lines_tagged_with_the_task(
        e2e_settings: Settings, e2e_app: Celery, e2e_world: World, tmp_path: Path):
    env = {**worker_environment(e2e_settings), "GRANTLEDGER_LOG_FORMAT": "json"}
    names = policy(e2e_world, 1)
    # DEBUG: a task's received/succeeded lines are routine (DEBUG) since quiet logging
    with running(env, e2e_app, tmp_path, loglevel="DEBUG") as worker:
        enqueue([Next(events.SYNC_FULL)], app=e2e_app)
        eventually(lambda: ledger_matches_aws(e2e_world)
                   and e2e_world.aws_assignments() == expected(e2e_world, names),
                   what="ledger = AWS")
    written = worker.log.read_text()
    records = [json_line(line) for line in written.splitlines()]  # no banner: stderr is JSON
    assert any(r.get("task") == "grantledger.sync.full" and r.get("task_id")
               and r["process"].startswith("ForkPoolWorker") for r in records), written[-3000:]
    assert {"timestamp", "level", "logger", "event"} <= set(records[0])
    assert e2e_settings.api_token.get_secret_value() not in written


def json_line(line: str) -> dict:
    try:
        return json.loads(line)
    except ValueError:
        pytest.fail(f"not a JSON line: {line!r}")

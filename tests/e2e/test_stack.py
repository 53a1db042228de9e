"""The compose stack without Docker: every service's `command` from docker-compose.yml, run
as a native process against the local PostgreSQL (an empty database beside the pg_url
fixture's, migrated by the `migrate` service) and Redis (a database number of its own), on
free ports; each waits for what it `depends_on`, health checked with the file's own
`healthcheck` commands.

Then a request goes end to end the way people drive it: import and apply with the CLI, a
user token requests, a reviewer token approves, the admin token asks for a sync, and the
assignment appears in (then, after its short duration, leaves) the sandbox Identity Center
as boto3 sees it. Flower asks for its basic auth and starts a manual resync through its
REST API. Everything waits by polling with a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import redis

from tests import waiting
from tests.stack_support import (
    REPO,
    database_beside,
    free_port,
    load_compose,
    service_command,
    service_environment,
    start_order,
    with_address,
)

DEADLINE = 60.0
STOP_GRACE = 15.0
LOCAL = {"postgres", "redis"}  # given by this machine (the pg_url / redis_url fixtures)
STACK_REDIS_DB = 14  # a database of its own: other tests' workers must not take our tasks
FLOWER_USER, FLOWER_PASSWORD = "admin", secrets.token_urlsafe(12)
REQUEST_SECONDS = 8
# Faster than production so the test is short; everything else is the file's.
TUNING = {"GRANTLEDGER_POLL_FIRST_DELAY": "0.3", "GRANTLEDGER_POLL_MAX_DELAY": "1",
          "GRANTLEDGER_EXPIRY_INTERVAL": "1", "GRANTLEDGER_POLL_SWEEP_INTERVAL": "1"}


eventually = partial(waiting.eventually, timeout=DEADLINE, every=0.2)


class Stack:
    """The compose services as process groups of this machine."""

    def __init__(self, *, database_url: str, broker_url: str, log_dir: Path) -> None:
        self.compose = load_compose()
        self.ports = {name: free_port() for name in ("sandbox", "api", "flower",
                                                     "worker-metrics")}
        self.admin_token = secrets.token_urlsafe(32)
        # What an operator puts in .env, read through the file's ${VAR:-default} forms.
        sandbox = f"http://127.0.0.1:{self.ports['sandbox']}"
        self.variables = {
            "GRANTLEDGER_API_TOKEN": self.admin_token,
            "FLOWER_BASIC_AUTH": f"{FLOWER_USER}:{FLOWER_PASSWORD}",
            "GRANTLEDGER_AWS_ENDPOINT_URL": sandbox,
            "GRANTLEDGER_SCIM_URL": f"{sandbox}/scim/v2/",
        }
        self.addresses = {"GRANTLEDGER_DATABASE_URL": database_url,
                          "GRANTLEDGER_BROKER_URL": broker_url}
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    # -- what each service runs ---------------------------------------------------------------

    def environment(self, service: str) -> dict[str, str]:
        declared = service_environment(self.compose, service, self.variables)
        # The file's hosts (postgres, redis) are containers; here they are local services.
        assert set(self.addresses) <= set(declared), "compose lost a GRANTLEDGER_* address"
        if "GRANTLEDGER_WORKER_METRICS_PORT" in declared:  # the container's port: a free one
            declared.update(GRANTLEDGER_WORKER_METRICS_PORT=str(self.ports["worker-metrics"]),
                            GRANTLEDGER_WORKER_METRICS_HOST="127.0.0.1")
        base = {k: v for k, v in os.environ.items() if not k.startswith("GRANTLEDGER_")}
        return {**base, **declared, **self.addresses, **TUNING, "PYTHONPATH": str(REPO)}

    def command(self, service: str) -> list[str]:
        command = service_command(self.compose, service, self.variables)
        command = with_address(command, host="127.0.0.1", port=self.ports.get(service))
        return [executable(command[0]), *command[1:]]

    def healthcheck(self, service: str) -> list[str] | None:
        check = self.compose["services"][service].get("healthcheck")
        if not check:
            return None
        argv = [part.replace("127.0.0.1:" + str(compose_port(self.compose, service)),
                             f"127.0.0.1:{self.ports.get(service)}") for part in check["test"][1:]]
        return [executable(argv[0]), *argv[1:]]

    # -- life cycle ---------------------------------------------------------------------------

    def up(self) -> Stack:
        """Start every service after what it depends on, as Compose would."""
        for service in start_order(self.compose, skip=frozenset(LOCAL)):
            for dependency, rule in (self.compose["services"][service].get("depends_on")
                                     or {}).items():
                if dependency not in LOCAL and rule["condition"] == "service_healthy":
                    self.wait_healthy(dependency)
            if service == "migrate":
                self.run_to_completion(service)
            else:
                self.start(service)
        for service in self.processes:
            self.wait_healthy(service)
        return self

    def run_to_completion(self, service: str) -> None:
        finished = subprocess.run(self.command(service), cwd=REPO, env=self.environment(service),
                                  capture_output=True, text=True, timeout=DEADLINE)
        assert finished.returncode == 0, f"{service}: {finished.stdout}\n{finished.stderr}"

    def start(self, service: str) -> None:
        log = open(self.log_dir / f"{service}.log", "wb")  # noqa: SIM115 - closed by the process end
        self.processes[service] = subprocess.Popen(
            self.command(service), cwd=REPO, env=self.environment(service), stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def wait_healthy(self, service: str) -> None:
        check = self.healthcheck(service)
        if check is None:
            return

        def healthy() -> bool:
            assert self.processes[service].poll() is None, f"{service} exited\n{self.tail()}"
            return subprocess.run(check, cwd=REPO, env=self.environment(service),
                                  capture_output=True, timeout=30).returncode == 0

        eventually(healthy, what=f"{service} healthy", every=0.3, tail=self.tail)

    def down(self) -> None:
        """SIGTERM each process group (reverse start order), then SIGKILL what lingers."""
        for process in reversed(self.processes.values()):
            signal_group(process, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                signal_group(process, signal.SIGKILL)
                process.wait(timeout=5)
            signal_group(process, signal.SIGKILL)  # pool children left behind, if any

    def tail(self) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-1500:]}"
                         for path in sorted(self.log_dir.glob("*.log")))

    # -- what people use ----------------------------------------------------------------------

    def cli(self, *args: str) -> str:
        finished = subprocess.run([executable("grantledger"), *args], cwd=REPO,
                                  env=self.environment("api"), capture_output=True, text=True,
                                  timeout=DEADLINE)
        assert finished.returncode == 0, f"grantledger {' '.join(args)}: {finished.stderr}"
        return finished.stdout

    def api(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=f"http://127.0.0.1:{self.ports['api']}",
                            headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def flower(self, *, auth: bool = True) -> httpx.Client:
        return httpx.Client(base_url=f"http://127.0.0.1:{self.ports['flower']}", timeout=30,
                            auth=(FLOWER_USER, FLOWER_PASSWORD) if auth else None)

    def aws(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.variables["GRANTLEDGER_AWS_ENDPOINT_URL"],
                            region_name="us-east-1", aws_access_key_id="stack",
                            aws_secret_access_key="stack")


def executable(name: str) -> str:
    """The image's PATH: grantledger, celery and python come from this virtualenv."""
    if name == "python":
        return sys.executable
    return str(Path(sys.executable).with_name(name))


def compose_port(compose: dict, service: str) -> int | None:
    command = compose["services"][service].get("command") or []
    for index, part in enumerate(command):
        if part == "--port":
            return int(command[index + 1])
        if part.startswith("--port="):
            return int(part.split("=", 1)[1])
    return None


def signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group is gone already
        os.killpg(process.pid, signum)


@pytest.fixture(scope="module")
def stack(pg_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Stack]:
    broker_url = redis_url.rsplit("/", 1)[0] + f"/{STACK_REDIS_DB}"
    broker = redis.Redis.from_url(broker_url)
    broker.flushdb()
    with database_beside(pg_url, prefix="gl_stack") as database_url:
        running = Stack(database_url=database_url, broker_url=broker_url,
                        log_dir=tmp_path_factory.mktemp("stack"))
        try:
            yield running.up()
        finally:
            running.down()
            broker.flushdb()


# --- the story through the stack -----------------------------------------------------------


def carols_assignment(stack: Stack) -> Callable[[], bool]:
    """Whether carol holds Staging/AdministratorAccess herself, as boto3 reports it."""
    store, sso = stack.aws("identitystore"), stack.aws("sso-admin")
    [instance] = sso.list_instances()["Instances"]
    carol = store.get_user_id(IdentityStoreId=instance["IdentityStoreId"], AlternateIdentifier={
        "UniqueAttribute": {"AttributePath": "userName", "AttributeValue": "carol"}})["UserId"]

    def held() -> bool:
        pages = sso.get_paginator("list_account_assignments_for_principal").paginate(
            InstanceArn=instance["InstanceArn"], PrincipalId=carol, PrincipalType="USER")
        rows = [row for page in pages for row in page["AccountAssignments"]]
        return any(row["AccountId"] == "222222222222" for row in rows)

    return held


def succeeded_syncs(flower: httpx.Client) -> dict[str, Any]:
    """The grantledger.sync.full tasks Flower saw succeed, by task id."""
    answer = flower.get("/api/tasks", params={"taskname": "grantledger.sync.full"})
    assert answer.status_code == 200, answer.text
    return {task_id: task for task_id, task in answer.json().items()
            if task.get("state") == "SUCCESS"}


def worker_metric(stack: Stack, name: str, **labels: str) -> float:
    """One sample of the worker's /metrics (compose: GRANTLEDGER_WORKER_METRICS_PORT)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"http://127.0.0.1:{stack.ports['worker-metrics']}/metrics",
                     timeout=10).text
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == name and sample.labels == labels)


def token_for(stack: Stack, user: str) -> str:
    return json.loads(stack.cli("token", "create", "--user", user, "-o", "json"))["token"]


def test_a_request_goes_through_the_stack_and_expires(stack: Stack) -> None:
    stack.cli("import", "--default-owner", "alice")
    stack.cli("apply", "-f", "ops/examples/demo/")
    carol, bob = token_for(stack, "carol"), token_for(stack, "bob")
    with stack.api(carol) as api:
        created = api.post("/v1/requests", json={
            "resources": ["Staging/AdministratorAccess"], "reason": "stack e2e",
            "duration": f"{REQUEST_SECONDS}s"})
    assert created.status_code == 201, created.text
    with stack.api(bob) as api:
        approved = api.post(f"/v1/requests/{created.json()['id']}/approve", json={})
    assert approved.status_code == 200 and approved.json()["state"] == "APPROVED", approved.text
    with stack.api(stack.admin_token) as api:
        sync = api.post("/v1/sync")
    assert sync.status_code == 202, sync.text

    held = carols_assignment(stack)
    eventually(held, what="carol's assignment in Identity Center", tail=stack.tail)
    # The worker's own endpoint counts the create its pool process sent.
    assert worker_metric(stack, "grantledger_aws_calls_total",
                         api="CreateAccountAssignment") >= 1
    eventually(lambda: not held(), what="carol's assignment deleted after its expiry",
               timeout=REQUEST_SECONDS + DEADLINE, tail=stack.tail)
    with stack.api(stack.admin_token) as api:
        request = api.get(f"/v1/requests/{created.json()['id']}").json()
    assert request["state"] == "EXPIRED"
    # Flower watched it all: the sync the API enqueued is among the run's sync tasks.
    with stack.flower() as flower:
        eventually(lambda: sync.json()["task_id"] in succeeded_syncs(flower),
                   what="Flower lists the API's sync", tail=stack.tail)


def test_flower_wants_its_password(stack: Stack) -> None:
    with stack.flower(auth=False) as anonymous:
        assert anonymous.get("/").status_code == 401
        assert anonymous.get("/api/tasks").status_code == 401
        assert anonymous.post("/api/task/async-apply/grantledger.sync.full").status_code == 401
        assert anonymous.get("/metrics").status_code == 401  # Flower 2.2 alone answers 200
    with stack.flower(auth=False) as anonymous, stack.flower() as signed_in:
        assert anonymous.get("/healthcheck").text == "OK"  # the compose health check
        assert signed_in.get("/api/workers").status_code == 200
        assert "flower_events_total" in signed_in.get("/metrics").text


def test_flower_starts_a_manual_resync_and_lists_the_runs_sync_tasks(stack: Stack) -> None:
    # What the README tells an operator to run:
    #   curl -u user:pass -X POST http://host:5555/api/task/async-apply/grantledger.sync.full
    with stack.flower() as flower:
        started = flower.post("/api/task/async-apply/grantledger.sync.full")
        assert started.status_code == 200, started.text
        task_id = started.json()["task-id"]
        uuid.UUID(task_id)

        finished = eventually(lambda: task_id in succeeded_syncs(flower) and
                              succeeded_syncs(flower), what="Flower sees the resync succeed",
                              tail=stack.tail)
    assert {task["name"] for task in finished.values()} == {"grantledger.sync.full"}

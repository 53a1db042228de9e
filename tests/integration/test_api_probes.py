"""/healthz, /readyz and /metrics against real (and really unreachable) PostgreSQL and Redis,
and enqueueing a full sync through Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from models.ledger import tables
from models.ledger.base import database_time
from models.ledger.db import transaction
from models.ledger.enums import GrantState, SourceKind
from models.ledger.kv import write_state
from tests.integration.api_support import ADMIN, api_settings
from tests.integration.requests_support import PERMISSION_SETS, STAGING
from workers.api import create_app
from workers.runtime import Runtime

pytest_plugins = ["tests.integration.api_fixtures"]

CLOSED_PORT_DB = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"
CLOSED_PORT_BROKER = "redis://127.0.0.1:1/0"


@pytest.fixture
def client_for() -> Iterator:
    """Build a TestClient over a Runtime with the given settings; closed afterwards."""
    opened: list[tuple[TestClient, Runtime]] = []

    def build(**settings: object) -> TestClient:
        database_url = str(settings.pop("database_url"))
        api_runtime = Runtime(api_settings(database_url, **settings))
        client = TestClient(create_app(api_runtime))
        opened.append((client, api_runtime))
        return client

    yield build
    for client, api_runtime in opened:
        client.close()
        api_runtime.close()


def test_readyz_names_an_unreachable_database(client_for) -> None:
    client = client_for(database_url=CLOSED_PORT_DB)
    assert client.get("/healthz").status_code == 200
    answer = client.get("/readyz")
    assert answer.status_code == 503
    checks = {c["name"]: c for c in answer.json()["checks"]}
    assert not checks["database"]["ok"] and "cannot reach" in checks["database"]["detail"]
    assert checks["broker"]["ok"]
    assert client.get("/v1/users", headers=ADMIN).status_code == 503
    assert _samples(client.get("/metrics").text)[("grantledger_ledger_up", ())] == 0


def test_readyz_names_an_unreachable_broker_and_sync_says_503(client_for, api_db_url) -> None:
    client = client_for(database_url=api_db_url, broker_url=CLOSED_PORT_BROKER)
    answer = client.get("/readyz")
    assert answer.status_code == 503
    checks = {c["name"]: c["ok"] for c in answer.json()["checks"]}
    assert checks == {"database": True, "broker": False}
    assert client.post("/v1/sync", headers=ADMIN).status_code == 503
    status = client.get("/v1/status", headers=ADMIN)
    assert status.status_code == 200 and set(status.json()["queues"].values()) == {None}


def test_readyz_refuses_a_database_not_at_head(client_for, tmp_path) -> None:
    client = client_for(database_url=f"sqlite:///{tmp_path / 'empty.db'}",
                        broker_url=CLOSED_PORT_BROKER)
    checks = {c["name"]: c for c in client.get("/readyz").json()["checks"]}
    assert "db upgrade" in checks["database"]["fix"]


def test_sync_enqueues_a_full_sync_in_redis(client_for, api_db_url, api_redis_url) -> None:
    broker = redis.Redis.from_url(api_redis_url)
    broker.delete("sync")
    client = client_for(database_url=api_db_url, broker_url=api_redis_url)
    try:
        answer = client.post("/v1/sync", headers=ADMIN)
        assert answer.status_code == 202
        queued = [json.loads(raw) for raw in broker.lrange("sync", 0, -1)]
    finally:
        broker.delete("sync")
    assert [m["headers"]["task"] for m in queued] == ["grantledger.sync.full"]
    assert queued[0]["headers"]["id"] == answer.json()["task_id"]


def test_metrics_expose_the_ledger_gauges(client_for, api_runtime: Runtime, api_world, api_db_url,
                                          api_redis_url) -> None:
    _add_grants(api_runtime)
    broker = redis.Redis.from_url(api_redis_url)
    broker.delete("poll")
    broker.rpush("poll", "a", "b", "c")
    try:
        text = client_for(database_url=api_db_url, broker_url=api_redis_url).get("/metrics").text
    finally:
        broker.delete("poll")
    samples = _samples(text)
    assert samples[("grantledger_grants", (("state", "ACTIVE"),))] == 1
    assert samples[("grantledger_grants", (("state", "REVOKING"),))] == 1
    assert samples[("grantledger_grants", (("state", "FAILED"),))] == 0
    assert 90 <= samples[("grantledger_expiry_lag_seconds", ())] < 150
    assert samples[("grantledger_stuck_revocations", ())] == 1
    assert samples[("grantledger_queue_depth", (("queue", "poll"),))] == 3
    assert 0 <= samples[("grantledger_last_full_sync_age_seconds", ())] < 60
    assert samples[("grantledger_ledger_up", ())] == 1
    assert "# TYPE grantledger_aws_calls_total counter" in text


def _add_grants(api_runtime: Runtime) -> None:
    """An ACTIVE grant 90 s overdue, a stuck revocation, and a recorded full sync."""
    arn = PERMISSION_SETS["ReadOnlyAccess"]
    with transaction(api_runtime.sessions) as session:
        overdue = database_time(session, -90)
        for name, state, extra in (("alice", GrantState.ACTIVE, {"expires_at": overdue}),
                                   ("bob", GrantState.REVOKING, {"stuck": True})):
            session.add(tables.Grant(principal_type="USER", principal_name=name,
                                     account_id=STAGING, permission_set_arn=arn,
                                     source_kind=SourceKind.REQUEST, source_id=f"req-{name}",
                                     state=state, **extra))
        write_state(session, "last_full_sync", {"finished": True})


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value, from Prometheus text."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}

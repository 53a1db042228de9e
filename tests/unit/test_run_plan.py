"""`grantledger run`: which shape a node takes from its settings, and what it says."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from models.errors import ConfigError
from workers.run import RunPlan, child_environment, describe, plan_run, sandbox_exports
from workers.settings import Settings

PG = "postgresql+psycopg://gl:secret@db:5432/gl"
REDIS = "redis://:pw@redis:6379/0"


def settings(**values: object) -> Settings:
    defaults = {"database_url": "sqlite:///x.db", "broker_url": "memory://",
                "aws_mode": "sandbox", "aws_endpoint_url": None, "api_token": None,
                "scim_url": None, "scim_token": None, "instance_arn": None,
                "identity_store_id": None}
    return Settings(**{**defaults, **values})


def test_the_embedded_defaults_run_everything_in_process_with_a_sandbox() -> None:
    assert plan_run(settings()) == RunPlan(in_process_worker=True, in_process_sandbox=True)


def test_redis_means_worker_and_beat_children_and_an_endpoint_means_no_sandbox() -> None:
    plan = plan_run(settings(database_url=PG, broker_url=REDIS,
                             aws_endpoint_url="http://sandbox:5000"))
    assert plan == RunPlan(in_process_worker=False, in_process_sandbox=False)
    assert not plan_run(settings(aws_mode="aws", database_url=PG)).in_process_sandbox


def test_a_sqlite_ledger_is_not_shared_by_worker_processes() -> None:
    with pytest.raises(ConfigError, match="SQLite ledger cannot be shared"):
        plan_run(settings(broker_url=REDIS))
    with pytest.raises(ConfigError, match="neither memory:// nor redis://"):
        plan_run(settings(broker_url="amqp://rabbit"))


def test_startup_says_where_things_run_without_showing_credentials() -> None:
    node = settings(database_url=PG, broker_url=REDIS, aws_endpoint_url="http://127.0.0.1:9",
                    scim_url="http://127.0.0.1:9/scim/v2/", scim_token=SecretStr("tok"))
    sandboxed = describe(RunPlan(False, True), node, api_url="http://h:1")
    text = "\n".join(sandboxed)
    assert "secret" not in text and ":pw@" not in text
    assert "child processes on redis:6379/0" in text
    assert "a sandbox Identity Center serves from this process at http://127.0.0.1:9" in text
    assert "export GRANTLEDGER_SCIM_TOKEN=tok" in text
    assert "no admin" in text
    embedded = "\n".join(describe(RunPlan(True, False), settings(api_token=SecretStr("a" * 40)),
                                  api_url="http://h:1"))
    assert "in this process (in-process broker)" in embedded and "no admin" not in embedded


def test_children_reach_the_in_process_sandbox_through_their_environment() -> None:
    node = settings(aws_endpoint_url="http://127.0.0.1:9", instance_arn="arn:i",
                    scim_token=SecretStr("tok"))
    assert sandbox_exports(node) == ["GRANTLEDGER_AWS_ENDPOINT_URL=http://127.0.0.1:9",
                                     "GRANTLEDGER_INSTANCE_ARN=arn:i",
                                     "GRANTLEDGER_SCIM_TOKEN=tok"]
    env = child_environment(node)
    assert env["GRANTLEDGER_AWS_ENDPOINT_URL"] == "http://127.0.0.1:9" and "PATH" in env

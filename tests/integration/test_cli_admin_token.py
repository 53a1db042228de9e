"""Only the processes that serve HTTP need the admin token, and they refuse a weak one:
`grantledger` run as a process against a PostgreSQL ledger and a Redis broker (the stack
mode), with and without GRANTLEDGER_API_TOKEN."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import throwaway_database

GRANTLEDGER = str(Path(sys.executable).parent / "grantledger")
ALICE = ("kind: user\nmetadata: {name: alice}\n"
         "spec: {email: alice@example.com, given_name: Alice, family_name: Doe}\n")


@pytest.fixture(scope="module")
def stack_env() -> Iterator[dict[str, str]]:
    """A stack-mode environment with no admin token, over a migrated ledger of its own."""
    redis = os.environ.get("GRANTLEDGER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    with throwaway_database("gl_cli_token", migrated=True) as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRANTLEDGER_")}
        yield env | {"GRANTLEDGER_DATABASE_URL": url, "GRANTLEDGER_BROKER_URL": redis,
                     "USER": "operator"}


def grantledger(env: dict[str, str], *args: str, stdin: str | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GRANTLEDGER, *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.mark.parametrize("command", [
    ("apply", "-f", "-"), ("get", "users", "-o", "json"), ("audit", "-o", "json"),
    ("validate", "-f", "-"), ("token", "list"),
])
def test_ledger_commands_run_without_the_admin_token(stack_env: dict[str, str],
                                                     command: tuple[str, ...]) -> None:
    result = grantledger(stack_env, *command, stdin=ALICE)
    assert result.returncode == 0, result.stderr
    assert "GRANTLEDGER_API_TOKEN" not in result.stderr


@pytest.mark.parametrize("token", [None, "short-token", "changeme" * 4, "x" * 40])
def test_serving_the_api_refuses_a_missing_or_weak_admin_token(
        stack_env: dict[str, str], token: str | None) -> None:
    env = stack_env | ({"GRANTLEDGER_API_TOKEN": token} if token else {})
    result = grantledger(env, "api", "--port", "9", timeout=30)
    assert result.returncode != 0
    assert "GRANTLEDGER_API_TOKEN is" in result.stderr
    assert "unset" in result.stderr if token is None else "too weak" in result.stderr

"""`grantledger doctor` passes on a healthy install and names the failing check otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from models.ledger import migrate
from workers.sandbox import Sandbox


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(settle_delay=0.0).start() as running:
        running.seed("ops/examples/sandbox-small.yaml")
        yield running


@pytest.fixture(scope="module")
def healthy_env(sandbox, pg_url) -> dict[str, str]:
    migrate.upgrade(pg_url)
    return {
        **os.environ,
        "GRANTLEDGER_DATABASE_URL": pg_url,
        "GRANTLEDGER_BROKER_URL": "memory://",
        "GRANTLEDGER_API_TOKEN": "doctor-test-token-0123456789-abcdefghij",
        "GRANTLEDGER_AWS_ENDPOINT_URL": sandbox.endpoint_url,
        "GRANTLEDGER_SCIM_URL": sandbox.scim_url,
        "GRANTLEDGER_SCIM_TOKEN": sandbox.scim_token,
        "AWS_ACCESS_KEY_ID": "sandbox", "AWS_SECRET_ACCESS_KEY": "sandbox",
    }


def doctor(env: dict[str, str]) -> tuple[int, dict[str, dict]]:
    result = subprocess.run(
        [sys.executable, "-m", "workers.cli.main", "doctor", "-o", "json"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, {row["name"]: row for row in json.loads(result.stdout)}


def test_healthy_install_passes_every_check(healthy_env) -> None:
    code, checks = doctor(healthy_env)
    assert code == 0, checks
    assert {"settings", "database", "clock", "broker", "aws instance", "aws ListAccounts",
            "aws ListPermissionSets", "aws ListUsers", "aws ListGroups",
            "aws ListAccountAssignmentCreationStatus", "aws ListAccountAssignmentDeletionStatus",
            "scim"} <= set(checks)
    assert all(row["ok"] for row in checks.values())


def test_a_refused_status_listing_names_the_action_and_describe_polling(sandbox,
                                                                        healthy_env) -> None:
    sandbox.faults.update({"denied": ["ListAccountAssignmentDeletionStatus"]})
    try:
        code, checks = doctor(healthy_env)
        described, without = doctor({**healthy_env, "GRANTLEDGER_STATUS_POLLING": "describe"})
    finally:
        sandbox.faults.update({"denied": []})
    assert code != 0
    [failed] = [row for row in checks.values() if not row["ok"]]
    assert failed["name"] == "aws ListAccountAssignmentDeletionStatus"
    assert "sso:ListAccountAssignmentDeletionStatus" in failed["detail"]
    assert "grantledger iam-policy" in failed["fix"] and "ops/bootstrap-aws" in failed["fix"]
    assert "GRANTLEDGER_STATUS_POLLING=describe" in failed["fix"]
    # Describe polling never lists: nothing to probe, nothing failing.
    assert described == 0 and not any(name.endswith("Status") for name in without)


@pytest.mark.parametrize(("change", "failing"), [
    ({"GRANTLEDGER_AWS_ENDPOINT_URL": "http://127.0.0.1:9", "GRANTLEDGER_SCIM_URL":
      "http://127.0.0.1:9/scim/v2/"}, {"aws instance", "scim"}),
    ({"GRANTLEDGER_INSTANCE_ARN": "arn:aws:sso:::instance/ssoins-missing"}, {"aws instance"}),
    ({"GRANTLEDGER_SCIM_TOKEN": "wrong-token"}, {"scim"}),
    ({"GRANTLEDGER_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:9/none"},
     {"database", "clock"}),
])
def test_broken_install_names_the_failing_check(healthy_env, change, failing) -> None:
    code, checks = doctor({**healthy_env, **change})
    assert code != 0
    assert {name for name, row in checks.items() if not row["ok"]} == failing
    assert all(checks[name]["fix"] for name in failing)


def test_slack_token_and_signing_secret_are_checked(healthy_env) -> None:
    from tests.e2e.fake_slack import FakeSlack

    slack = FakeSlack({})
    try:
        env = {**healthy_env, "GRANTLEDGER_SLACK_BOT_TOKEN": "xoxb-doctor",
               "GRANTLEDGER_SLACK_SIGNING_SECRET": "s" * 32,
               "GRANTLEDGER_SLACK_API_URL": slack.api_url}
        code, checks = doctor(env)
        assert code == 0, checks
        assert "bot token accepted: grantledger in Test" in checks["slack auth.test"]["detail"]
        assert checks["slack signing secret"]["ok"]
        assert [c.method for c in slack.calls] == ["auth.test"]
    finally:
        slack.stop()
    code, checks = doctor({**env, "GRANTLEDGER_SLACK_API_URL": "http://127.0.0.1:9/api/"})
    assert code != 0 and not checks["slack auth.test"]["ok"]
    assert "GRANTLEDGER_SLACK_BOT_TOKEN" in checks["slack auth.test"]["fix"]
    code, checks = doctor({**env, "GRANTLEDGER_SLACK_SIGNING_SECRET": ""})
    assert code != 0 and "GRANTLEDGER_SLACK_SIGNING_SECRET" in checks["settings"]["detail"]


def test_an_unsigned_webhook_is_shown(healthy_env) -> None:
    code, checks = doctor({**healthy_env,
                           "GRANTLEDGER_NOTIFY_WEBHOOK_URL": "https://example.com/hook"})
    assert code != 0
    assert "GRANTLEDGER_NOTIFY_WEBHOOK_SECRET" in checks["settings warning"]["detail"]

"""ops/bootstrap-aws, run as a process against the sandbox's IAM (moto): it creates the role
with exactly the actions of `grantledger iam-policy`, a second run changes nothing, a dry
run changes nothing, and a new trusted principal is the only update."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ops.bootstrap_aws import POLICY_NAME, canonical
from workers.adapters.aws.iam_policy import iam_policy, policy_actions
from workers.sandbox import Sandbox

SCRIPT = Path(__file__).resolve().parents[2] / "ops" / "bootstrap-aws"
RUNNER = "123456789012"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox().start() as running:
        yield running


@pytest.fixture
def role_name() -> str:
    return f"grantledger-{uuid.uuid4().hex[:8]}"


def bootstrap(sandbox: Sandbox, role_name: str, *args: str, code: int = 0) -> dict[str, Any]:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--endpoint-url", sandbox.endpoint_url,
                           "--role-name", role_name, "--json", *args],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == code, done.stderr
    return json.loads(done.stdout) if code == 0 else {"stderr": done.stderr}


def test_two_runs_create_the_role_once_with_exactly_the_iam_policy(sandbox, role_name):
    first = bootstrap(sandbox, role_name, "--trust", RUNNER)
    assert first["changed"] and first["steps"] == [
        f"create role {role_name}",
        f"set inline policy {POLICY_NAME} ({len(policy_actions(iam_policy()))} actions)"]
    second = bootstrap(sandbox, role_name, "--trust", RUNNER)
    assert (second["changed"], second["steps"], second["arn"]) == (False, [], first["arn"])
    iam = sandbox.client("iam")
    document = iam.get_role_policy(RoleName=role_name, PolicyName=POLICY_NAME)["PolicyDocument"]
    assert canonical(document) == canonical(iam_policy())
    assert policy_actions(document) == policy_actions(iam_policy())
    assert iam.list_role_policies(RoleName=role_name)["PolicyNames"] == [POLICY_NAME]
    trust = iam.get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"]
    assert canonical(trust)["Statement"]["Principal"] == {"AWS": f"arn:aws:iam::{RUNNER}:root"}


def test_dry_run_says_what_it_would_do_and_changes_nothing(sandbox, role_name):
    planned = bootstrap(sandbox, role_name, "--trust", RUNNER, "--dry-run")
    assert planned["dry_run"] and planned["arn"] is None and len(planned["steps"]) == 2
    iam = sandbox.client("iam")
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_role(RoleName=role_name)


def test_a_new_trusted_principal_only_updates_the_trust_policy(sandbox, role_name):
    bootstrap(sandbox, role_name, "--trust", RUNNER)
    updated = bootstrap(sandbox, role_name, "--trust", RUNNER,
                        "--trust-service", "ecs-tasks.amazonaws.com")
    assert updated["steps"] == [f"update who may assume {role_name}"]
    trust = sandbox.client("iam").get_role(RoleName=role_name)["Role"]
    assert canonical(trust["AssumeRolePolicyDocument"])["Statement"]["Principal"] == {
        "AWS": f"arn:aws:iam::{RUNNER}:root", "Service": "ecs-tasks.amazonaws.com"}
    assert bootstrap(sandbox, role_name, "--trust", RUNNER, "--trust-service",
                     "ecs-tasks.amazonaws.com")["changed"] is False


def test_without_anyone_to_trust_it_refuses_with_exit_2(sandbox, role_name):
    refused = bootstrap(sandbox, role_name, code=2)
    assert "--trust" in refused["stderr"]


def no_aws_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No AWS credentials, region, profile or instance metadata: a fresh laptop."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "GRANTLEDGER_"))}
    return env | {"AWS_CONFIG_FILE": str(tmp_path / "none"),
                  "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                  "AWS_EC2_METADATA_DISABLED": "true"} | extra


def test_the_region_comes_from_grantledger_settings(sandbox, role_name, tmp_path):
    env = no_aws_env(tmp_path, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                     GRANTLEDGER_AWS_REGION="eu-west-1")
    done = subprocess.run([sys.executable, str(SCRIPT), "--endpoint-url", sandbox.endpoint_url,
                           "--role-name", role_name, "--trust", RUNNER, "--json"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["steps"][0] == f"create role {role_name}"


def test_a_dry_run_without_credentials_prints_the_steps_and_what_it_could_not_check(
        role_name, tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--role-name", role_name,
                           "--trust", RUNNER, "--dry-run"],
                          env=no_aws_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == [f"would: create role {role_name}",
                         f"would: set inline policy {POLICY_NAME} "
                         f"({len(policy_actions(iam_policy()))} actions)"]
    assert lines[2].startswith(f"could not check: whether role {role_name}")
    assert "credentials" in lines[2]

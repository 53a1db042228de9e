"""`grantledger aws-config` on PostgreSQL + an in-process Sandbox: the profiles parse with
configparser and name exactly the user's active assignments (direct and through an access
list); --write is idempotent and leaves the rest of the file alone; no start URL is an error
that says which setting to set."""

from __future__ import annotations

import configparser
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from models.errors import ConfigError
from tasks.admin.aws_config import BEGIN, END, merge
from tests.integration.sync_support import ACCOUNTS, World
from workers.cli.main import app, register_commands
from workers.runtime import set_runtime

pytest_plugins = ["tests.integration.sync_fixtures"]
register_commands()

START_URL = "https://d-9067a1b2c3.awsapps.com/start"
PROD, STAGING = ACCOUNTS["Production"], ACCOUNTS["Staging"]


@pytest.fixture
def config_world(sync_world: World) -> Iterator[World]:
    """alice: ReadOnly on Production directly, Admin on Staging through the admins list."""
    sync_world.add_role("prod-read", allow=[("Production", "ReadOnlyAccess")])
    sync_world.add_role("staging-admin", allow=[("Staging", "AdministratorAccess")])
    sync_world.add_user("alice", roles=["prod-read"])
    sync_world.add_user("bob", roles=["staging-admin"])
    sync_world.add_list("admins", roles=["staging-admin"], users=["alice"])
    sync_world.sync()
    previous = set_runtime(sync_world.runtime)
    yield sync_world
    set_runtime(previous)


def aws_config(*args: str) -> str:
    result = CliRunner().invoke(app, ["aws-config", *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def parsed(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser()  # strict, like the AWS CLI: no section twice
    parser.read_string(text)
    return parser


def test_profiles_name_the_users_assignments_and_parse(config_world: World):
    text = aws_config("--user", "alice", "--start-url", START_URL, "--region", "eu-west-1")
    assert text.startswith(f"# start URL: {START_URL}")
    config = parsed(text)
    assert config.sections() == ["sso-session grantledger", "profile Production-ReadOnlyAccess",
                                 "profile Staging-AdministratorAccess"]
    assert dict(config["sso-session grantledger"]) == {
        "sso_start_url": START_URL, "sso_region": "us-east-1",
        "sso_registration_scopes": "sso:account:access"}
    assert dict(config["profile Staging-AdministratorAccess"]) == {
        "sso_session": "grantledger", "sso_account_id": STAGING,
        "sso_role_name": "AdministratorAccess", "region": "eu-west-1"}
    assert config["profile Production-ReadOnlyAccess"]["sso_account_id"] == PROD


def test_write_is_idempotent_and_keeps_the_rest_of_the_file(config_world: World, tmp_path,
                                                           monkeypatch):
    path = tmp_path / "aws" / "config"
    path.parent.mkdir()
    path.write_text("[default]\nregion = us-west-2\n\n[profile Staging-AdministratorAccess]\n"
                    "region = ap-south-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(path))
    first = aws_config("--user", "alice", "--start-url", START_URL, "--write")
    once = path.read_text()
    aws_config("--user", "alice", "--start-url", START_URL, "--write")
    assert path.read_text() == once and once.count(BEGIN) == 1 and once.count(END) == 1
    config = parsed(once)
    assert config["default"]["region"] == "us-west-2"
    assert config["profile Staging-AdministratorAccess"]["region"] == "ap-south-1"  # theirs
    assert config["profile Production-ReadOnlyAccess"]["sso_session"] == "grantledger"
    assert "wrote 1 profile(s)" in first


def test_a_suspended_user_gets_no_profile_and_no_start_url_is_an_error(config_world: World):
    from models.ledger import tables

    with config_world.runtime.sessions.begin() as session:
        session.get(tables.User, "alice").suspended = True
    assert parsed(aws_config("--user", "alice", "--start-url", START_URL)).sections() == [
        "sso-session grantledger"]
    result = CliRunner().invoke(app, ["aws-config", "--user", "bob"])
    assert isinstance(result.exception, ConfigError)
    assert "set GRANTLEDGER_SSO_START_URL" in result.exception.render()


def test_merge_replaces_only_our_block():
    sections = [("sso-session grantledger", {"sso_start_url": START_URL}),
                ("profile A-B", {"sso_account_id": PROD})]
    text, skipped = merge("[default]\nregion = x\n", sections)
    again, _ = merge(text + "\n[profile mine]\nregion = y\n", sections[:1])
    assert skipped == [] and "profile A-B" in text and "profile A-B" not in again
    assert parsed(again).sections() == ["default", "profile mine", "sso-session grantledger"]

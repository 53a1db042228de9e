"""Resource CLI pieces without a ledger: time arguments, inputs, help with examples."""

from __future__ import annotations

import os
import pwd
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from models.errors import InputError
from workers.cli.app import app
from workers.cli.commands_resources import actor_name, expand, parse_time
from workers.cli.main import register_commands

register_commands()

MY_COMMANDS = [
    ["validate"], ["apply"], ["delete"], ["get", "users"], ["get", "roles"],
    ["get", "access-lists"], ["access-list", "add-member"], ["access-list", "remove-member"],
    ["db", "upgrade"], ["db", "current"], ["audit"],
]


@pytest.mark.parametrize("text, expected", [
    ("2027-01-31", datetime(2027, 1, 31, tzinfo=UTC)),
    ("2027-01-31T09:30:00Z", datetime(2027, 1, 31, 9, 30, tzinfo=UTC)),
    ("2027-01-31T11:30:00+02:00", datetime(2027, 1, 31, 9, 30, tzinfo=UTC)),
    ("2027-01-31T09:30:00", datetime(2027, 1, 31, 9, 30, tzinfo=UTC)),  # no offset: UTC
])
def test_times_are_aware_utc(text: str, expected: datetime) -> None:
    parsed = parse_time(text, option="--at")
    assert parsed == expected and parsed.tzinfo is not None


def test_durations_mean_that_long_ago() -> None:
    moment = parse_time("2h", option="--since")
    assert abs(datetime.now(UTC) - timedelta(hours=2) - moment) < timedelta(seconds=5)
    assert abs(datetime.now(UTC) - parse_time("now", option="--at")) < timedelta(seconds=5)


def test_a_bad_time_names_the_option() -> None:
    with pytest.raises(typer.BadParameter, match="neither a time"):
        parse_time("last tuesday", option="--since")


def test_directories_expand_to_their_yaml_files(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text("")
    (tmp_path / "a.yml").write_text("")
    (tmp_path / "notes.txt").write_text("")
    assert expand([tmp_path]) == [tmp_path / "a.yml", tmp_path / "b.yaml"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no \\*.yaml or \\*.yml files"):
        expand([empty])


def test_the_audit_names_the_actor_as_given_and_the_real_os_user(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = pwd.getpwuid(os.geteuid()).pw_name
    assert actor_name("alice") == f"cli:alice (os: {real})"
    monkeypatch.setenv("USER", "bob")  # $USER is whatever the caller says: not the OS user
    monkeypatch.setenv("LOGNAME", "bob")
    assert actor_name(None) == f"cli:{real} (os: {real})"


@pytest.mark.parametrize("command", MY_COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "Example" in result.output


def test_add_member_needs_exactly_one_member() -> None:
    result = CliRunner().invoke(app, ["access-list", "add-member", "sre"])
    assert result.exit_code == 2
    both = CliRunner().invoke(app, ["access-list", "add-member", "sre", "--user", "a",
                                    "--list", "b"])
    assert both.exit_code == 2

"""The CLI entry point: help, version, error handling and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workers.cli.main", *args],
        capture_output=True, text=True, timeout=60,
    )


def test_help_lists_commands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    assert "version" in result.stdout and "validate" in result.stdout


def test_version_as_json() -> None:
    result = run_cli("version", "-o", "json")
    assert result.returncode == 0
    assert json.loads(result.stdout)["version"]


def test_unknown_command_is_a_usage_error() -> None:
    result = run_cli("no-such-command")
    assert result.returncode == 2
    assert "No such command" in result.stderr


def test_grantledger_error_prints_hint_and_exit_code(tmp_path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: role\nmetadata: {name: x}\nspec: [\n")
    result = run_cli("validate", "-f", str(broken))
    assert result.returncode == 2
    assert "broken.yaml:" in result.stderr
    assert "Traceback" not in result.stderr

"""Support for the tests of what a user first runs: docker-compose.yml read the way Compose
reads it (tests/unit/test_compose.py keeps the file honest, tests/e2e/test_stack.py runs its
commands natively), and the local resources those processes get (ports, a database).

Compose reading covers what the tests need: YAML with anchors and merge keys (PyYAML does
both), the ``${VAR}`` interpolation forms, start order from ``depends_on``, and rewriting a
command's ``--host`` / ``--port`` for a machine where the services are local processes.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ops.drills.services import database_beside  # noqa: F401 - the tests' import path

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}; $$ is a "$".
VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
                      r"(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


class MissingVariable(LookupError):
    """A ``${NAME:?message}`` whose variable is unset (Compose refuses to start)."""


def load_compose(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Substitute variables as Compose does (``:`` forms also treat empty as unset)."""
    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg") or ""
        value = env.get(name)
        missing = value is None or (op is not None and op.startswith(":") and value == "")
        if not missing:
            return value or ""
        if op and op.endswith("?"):
            raise MissingVariable(f"{name}: {arg}")
        return arg if op else ""

    return VARIABLE.sub(substitute, text)


def service_environment(compose: Mapping[str, Any], service: str,
                        env: Mapping[str, str]) -> dict[str, str]:
    """The service's ``environment``, interpolated from ``env``."""
    declared = compose["services"][service].get("environment") or {}
    if isinstance(declared, list):  # the "NAME=value" form
        declared = dict(item.split("=", 1) for item in declared)
    return {name: interpolate(str(value), env) for name, value in declared.items()}


def service_command(compose: Mapping[str, Any], service: str,
                    env: Mapping[str, str]) -> list[str]:
    """The service's ``command`` (list form), interpolated from ``env``."""
    command = compose["services"][service]["command"]
    assert isinstance(command, list), f"{service}: give the command as a list (exec form)"
    return [interpolate(str(part), env) for part in command]


def start_order(compose: Mapping[str, Any], *, skip: frozenset[str] = frozenset()) -> list[str]:
    """Services ordered so each comes after what it ``depends_on`` (stable by file order)."""
    services = compose["services"]
    ordered: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"depends_on cycle: {' -> '.join(path + (name,))}"
        if name in ordered:
            return
        for dependency in services[name].get("depends_on") or {}:
            visit(dependency, path + (name,))
        ordered.append(name)

    for name in services:
        visit(name, ())
    return [name for name in ordered if name not in skip]


def with_address(command: list[str], *, host: str | None = None,
                 port: int | None = None) -> list[str]:
    """``command`` with its ``--host`` / ``--port`` values (either spelling) replaced."""
    wanted = {"--host": host, "--port": port}
    rewritten: list[str] = []
    replace_next: str | None = None
    for part in command:
        option, _, _ = part.partition("=")
        if replace_next is not None:
            rewritten.append(str(wanted[replace_next]))
            replace_next = None
        elif option in wanted and wanted[option] is not None and "=" in part:
            rewritten.append(f"{option}={wanted[option]}")
        elif part in wanted and wanted[part] is not None:
            rewritten.append(part)
            replace_next = part
        else:
            rewritten.append(part)
    return rewritten


def cli_path(command: list[str]) -> list[str]:
    """The subcommand words of a ``grantledger`` command: ``["sandbox", "serve"]``."""
    words = []
    for part in command[1:]:
        if part.startswith("-"):
            break
        words.append(part)
    return words


def options_of(command: list[str]) -> list[str]:
    """The ``--long`` options a command passes (values left out)."""
    return [part.partition("=")[0] for part in command if part.startswith("--")]


# --- local resources ---------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port nobody listens on now (the OS's pick)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]



"""Rendering of command results as a rich table, JSON or YAML (`-o table|json|yaml`)."""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from enum import Enum
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

FORMATS = ("table", "json", "yaml")
OutputOption = typer.Option(
    "table", "--output", "-o", help="Output format: table, json or yaml.",
    case_sensitive=False,
)

stdout = Console()
UNBOUNDED_WIDTH = 100_000  # piped tables: wide enough that rich cuts no cell
stderr = Console(stderr=True)

# Exit codes of every command that does work (the one place they are decided: `finish`).
DONE_EXIT, FAILED_EXIT, BAD_INPUT_EXIT, PARTIAL_EXIT = 0, 1, 2, 3
EXIT_CODES_HELP = (
    "Exit codes: 0 everything done; 1 failed, or work still pending at --timeout; 2 bad "
    "input or refused, nothing done; 3 partly applied: the rest was done, each error is "
    "on stderr.")


def with_exit_codes(command: Any) -> Any:
    """Document `EXIT_CODES_HELP` in a command's --help (decorate below `app.command`)."""
    command.__doc__ = f"{inspect.cleandoc(command.__doc__ or '')}\n\n{EXIT_CODES_HELP}"
    return command


def finish(*, errors: Sequence[str] = (), unfinished: str | None = None) -> None:
    """End a command whose work may have partly failed, terraform-style: each error on
    stderr, then exit 3 (partly applied), or 1 when work is still unfinished."""
    for error in errors:
        stderr.print(f"[red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
    if unfinished:
        stderr.print(escape(unfinished), highlight=False, soft_wrap=True)
        raise typer.Exit(FAILED_EXIT)
    if errors:
        stderr.print(f"partly applied: {len(errors)} error(s) above; the rest was done",
                     highlight=False)
        raise typer.Exit(PARTIAL_EXIT)


def plain(value: Any) -> Any:
    """Turn a result into JSON-safe builtins (datetimes as ISO 8601, enums as values)."""
    if hasattr(value, "model_dump"):
        return plain(value.model_dump(mode="json"))
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [plain(v) for v in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Enum):
        return value.value
    return value


def emit(rows: Any, *, fmt: str, columns: Sequence[str] | None = None, title: str = "") -> None:
    """Print `rows` (a list of mappings, or one mapping) in the chosen format."""
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise typer.BadParameter(f"unknown output format {fmt!r}; choose from {', '.join(FORMATS)}")
    data = plain(rows)
    if fmt == "json":
        typer.echo(json.dumps(data, indent=2, sort_keys=False))
    elif fmt == "yaml":
        typer.echo(yaml.safe_dump(data, sort_keys=False).rstrip())
    else:
        table_console().print(as_table(data, columns=columns, title=title))


def table_console() -> Console:
    """Tables fit a terminal; piped (stdout not a terminal), nothing is cut: each row on one
    line with its whole values, for grep and cut (``-o json`` stays the machine format)."""
    if stdout.is_terminal:
        return stdout
    return Console(width=UNBOUNDED_WIDTH, highlight=False)


def as_table(data: Any, *, columns: Sequence[str] | None, title: str) -> Table:
    """A rich table for a list of mappings (or a key/value table for one mapping)."""
    if isinstance(data, Mapping):
        table = Table("field", "value", title=title or None)
        for key, value in data.items():
            table.add_row(str(key), cell(value))
        return table
    columns = list(columns or (data[0].keys() if data else []))
    table = Table(*columns, title=title or None)
    for row in data:
        table.add_row(*(cell(row.get(c)) for c in columns))
    return table


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)

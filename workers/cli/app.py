"""The typer application object every command module attaches to."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import typer
from rich.markup import escape

from workers.cli.output import OutputOption, emit

app = typer.Typer(
    name="grantledger",
    help=(
        "Access broker for AWS IAM Identity Center: owners manage long-term access with access "
        "lists, people request short-term elevation, and a ledger revokes every grant on time.\n\n"
        "Start with `grantledger demo` (no setup needed), then see README.md.\n\n"
        "The CLI acts with the database's authority: whoever can run it against the ledger "
        "can do anything an admin can. `--actor` is recorded as given, together with the OS "
        "user (cli:NAME (os: USER)); it is not authentication."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.command("version")
def version_command(output: str = OutputOption) -> None:
    """Print the grantledger version."""
    try:
        current = version("grantledger")
    except PackageNotFoundError:  # running from a checkout without install
        current = "0+unknown"
    if output == "table":
        typer.echo(current)
    else:
        emit({"version": current}, fmt=output)


# Sub-apps shared by several command modules (each module adds its commands to them).
get_app = typer.Typer(help="List or show things: users, roles, access-lists, accounts, "
                           "permission-sets, assignments, grants, requests, operations, "
                           "requestable.", no_args_is_help=True)
access_list_app = typer.Typer(help="Access-list membership and periodic reviews.",
                              no_args_is_help=True)
app.add_typer(get_app, name="get")
app.add_typer(access_list_app, name="access-list")


def reflow(doc: str | None) -> str | None:
    """Join each docstring paragraph into one line (rich wraps it to the terminal), but keep
    indented lines (examples) as they are."""
    if not doc:
        return doc
    import inspect

    lines, out = inspect.cleandoc(doc).splitlines(), list[str]()
    for line in lines:
        joinable = out and out[-1] and line and not line.startswith(" ") \
            and not out[-1].startswith(" ") and not out[-1].endswith(":")
        if joinable:
            out[-1] = f"{out[-1]} {line.strip()}"
        else:
            out.append(line)
    return "\n".join(out)


def reflow_help(typer_app: typer.Typer) -> None:
    """Reflow the help of every command below ``typer_app`` (see `reflow`)."""
    for command in typer_app.registered_commands:
        if command.help is None and command.callback is not None:
            # rich reads help as markup: a bracketed "[profile x]" would vanish
            command.help = escape(reflow(command.callback.__doc__) or "")
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            reflow_help(group.typer_instance)

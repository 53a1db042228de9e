"""The typer application object every command module attaches to."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import typer

from workers.cli.output import OutputOption, emit

app = typer.Typer(
    name="grantledger",
    help=(
        "Access broker for AWS IAM Identity Center: owners manage long-term access with access "
        "lists, people request short-term elevation, and a ledger revokes every grant on time.\n\n"
        "Start with `grantledger demo` (no setup needed), then see README.md."
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

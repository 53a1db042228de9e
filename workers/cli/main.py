"""The `grantledger` command: every operator action, one typer app.

Errors are `models.errors.GrantledgerError`s: printed on stderr with a hint, exit code from
the error (2 for bad input). Anything else is a bug: traceback and exit 1.
"""

from __future__ import annotations

import sys

from rich.markup import escape

from models.errors import GrantledgerError
from workers.cli.app import app, reflow_help
from workers.cli.output import stderr


def register_commands() -> None:
    """Attach every command module; each adds its commands to `app`."""
    from workers.cli import (  # noqa: F401
        commands_api,
        commands_db,
        commands_demo,
        commands_import,
        commands_lifecycle,
        commands_notify,
        commands_ops,
        commands_requests,
        commands_resources,
        commands_slack,
        commands_sync,
    )

    reflow_help(app)


# How the CLI spells the inputs a service error names (InputError.fields)
FLAGS = {"reason": "--reason TEXT", "roles": "--role ROLE",
         "resources": "--resource ACCOUNT/PERMISSION-SET", "force": "--force"}


def cli_text(err: GrantledgerError) -> str:
    """The error as the CLI shows it: the inputs it names, as flags."""
    fields = getattr(err, "fields", ())
    if not fields:
        return err.render()
    flags = " or ".join(FLAGS.get(name, f"--{name.replace('_', '-')}") for name in fields)
    return f"{err.message}\n  hint: {err.hint} ({flags})"


def main() -> None:
    """Console-script entry point."""
    register_commands()
    try:
        app()
    except GrantledgerError as err:
        stderr.print("[bold red]error:[/]", escape(cli_text(err)), highlight=False,
                     soft_wrap=True)
        sys.exit(err.exit_code)

if __name__ == "__main__":
    main()

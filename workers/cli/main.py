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


def main() -> None:
    """Console-script entry point."""
    register_commands()
    try:
        app()
    except GrantledgerError as err:
        stderr.print("[bold red]error:[/]", escape(err.render()), highlight=False, soft_wrap=True)
        sys.exit(err.exit_code)

if __name__ == "__main__":
    main()

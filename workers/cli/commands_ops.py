"""Operator commands: the local sandbox (and, as they land, demo, run, status, doctor)."""

from __future__ import annotations

from pathlib import Path

import typer

from workers.cli.app import app

sandbox_app = typer.Typer(help="The local IAM Identity Center (AWS APIs + SCIM) for trials, "
                               "tests and benchmarks.", no_args_is_help=True)
app.add_typer(sandbox_app, name="sandbox")


@sandbox_app.command("serve")
def sandbox_serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(5000, help="Port to listen on (0 picks a free one)."),
    fixture: Path | None = typer.Option(
        None, exists=True, dir_okay=False,
        help="YAML fixture to seed (e.g. ops/examples/sandbox-small.yaml)."),
    settle_delay: float = typer.Option(2.0, min=0, help="Seconds before an assignment "
                                       "operation leaves IN_PROGRESS."),
    rate: float = typer.Option(20.0, min=0, help="sso-admin requests/s before "
                               "ThrottlingException; 0 turns throttling off."),
) -> None:
    """Serve a faithful local Identity Center until Ctrl-C.

    Prints the GRANTLEDGER_* settings that point grantledger at it.

    Example: grantledger sandbox serve --port 5000 --fixture ops/examples/sandbox-small.yaml
    """
    from workers.sandbox import serve_forever

    serve_forever(host=host, port=port, fixture=str(fixture) if fixture else None,
                  settle_delay=settle_delay, rate=rate or None)

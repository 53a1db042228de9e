"""API commands: serve the HTTP API, and manage per-user API tokens.

`grantledger api` serves the FastAPI app (create_app over get_runtime()) with uvicorn.
`grantledger token create --user U` prints a token ONCE: the ledger keeps only its sha256.
"""

from __future__ import annotations

from typing import Any

import typer

from workers.cli.app import app
from workers.cli.commands_resources import (
    ActorOption,
    checked_text,
    cli_actor,
    ledger_sessions,
)
from workers.cli.output import OutputOption, emit

token_app = typer.Typer(help="Per-user API tokens (stored hashed, revocable).",
                        no_args_is_help=True)
app.add_typer(token_app, name="token")

TOKEN_COLUMNS = ("id", "user", "label", "created_at", "last_used_at", "revoked_at")


@app.command("api")
def api_command(
    host: str | None = typer.Option(None, help="Address to listen on "
                                    "(default: GRANTLEDGER_API_HOST, 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (default: GRANTLEDGER_API_PORT, 8080)."),
    workers: int = typer.Option(1, min=1, help="Server processes (uvicorn workers) sharing "
                                "the port; each has its own database pool. Not with the "
                                "embedded SQLite ledger."),
) -> None:
    """Serve the HTTP API until Ctrl-C: /v1 (bearer token), /healthz, /readyz, /metrics.

    OpenAPI at /openapi.json, interactive docs at /docs. Outside the embedded mode
    GRANTLEDGER_API_TOKEN must be set (the admin token, at least 32 characters); users call
    with their own tokens from `grantledger token create`.

    Example: GRANTLEDGER_API_TOKEN=... grantledger api --host 0.0.0.0 --port 8080 --workers 4
    """
    import uvicorn

    from models.errors import InputError
    from workers.api import create_app
    from workers.logs import configure
    from workers.runtime import get_runtime

    runtime = get_runtime()
    runtime.settings.check_serving()
    configure(runtime.settings)
    host = host or runtime.settings.api_host
    port = port if port is not None else runtime.settings.api_port
    options: dict[str, Any] = {"log_level": runtime.settings.log_level.lower(), "log_config": None}
    if workers > 1:
        if runtime.settings.embedded:
            raise InputError("--workers needs the PostgreSQL ledger: the embedded SQLite "
                             "ledger takes one writer", hint="drop --workers, or set "
                             "GRANTLEDGER_DATABASE_URL to PostgreSQL")
        # Each worker process builds its own app (and runtime) from the same settings.
        uvicorn.run("workers.api:create_app", factory=True, host=host, port=port,
                    workers=workers, **options)
        return
    if runtime.settings.embedded:
        runtime.sessions  # noqa: B018 - migrates the embedded SQLite ledger before serving
    uvicorn.run(create_app(runtime), host=host, port=port, **options)


@token_app.command("create")
def token_create_command(
    user: str = typer.Option(..., "--user", help="The user the token acts as."),
    label: str = typer.Option("", "--label", help="What the token is for (shown by list).",
                              callback=checked_text),
    actor: str | None = ActorOption,
    output: str = OutputOption,
) -> None:
    """Create a token that acts as USER in the API; it is printed once, never stored.

    Example: grantledger token create --user alice --label laptop
    """
    from tasks.access.tokens import create_token

    token_id, plaintext = create_token(sessions=ledger_sessions(), user=user, label=label,
                                       actor=cli_actor(actor))
    if output == "table":
        typer.echo(f"token {token_id} for {user} (shown once; store it now):")
        typer.echo(plaintext)
        return
    emit({"id": token_id, "user": user, "label": label.strip(), "token": plaintext}, fmt=output)


@token_app.command("list")
def token_list_command(
    user: str | None = typer.Option(None, "--user", help="Only this user's tokens."),
    output: str = OutputOption,
) -> None:
    """API tokens (revoked ones too); never their secrets.

    Example: grantledger token list --user alice
    """
    from dataclasses import asdict

    from tasks.access.tokens import list_tokens

    rows = [asdict(view) for view in list_tokens(sessions=ledger_sessions(), viewer=cli_actor(),
                                                  user=user)]
    emit(rows, fmt=output, columns=TOKEN_COLUMNS, title="API tokens")


@token_app.command("revoke")
def token_revoke_command(
    token_id: int = typer.Argument(..., metavar="ID", help="The token id (see token list)."),
    actor: str | None = ActorOption,
    output: str = OutputOption,
) -> None:
    """Revoke a token at once; API calls with it answer 401 from now on.

    Example: grantledger token revoke 3
    """
    from dataclasses import asdict

    from tasks.access.tokens import revoke_token

    view = revoke_token(sessions=ledger_sessions(), token_id=token_id, actor=cli_actor(actor))
    emit(asdict(view), fmt=output, title="revoked")

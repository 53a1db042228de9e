"""CLI commands: the Slack app (its manifest; `doctor` checks the token and the secret)."""

from __future__ import annotations

import json

import typer

from workers.cli.app import app

slack_app = typer.Typer(help="The Slack app: request and approve access in Slack "
                             "(GRANTLEDGER_SLACK_*).", no_args_is_help=True)
app.add_typer(slack_app, name="slack")


@slack_app.command("manifest")
def slack_manifest() -> None:
    """Print the Slack app manifest (scopes, slash command, interactivity URL) as JSON.

    The URLs are GRANTLEDGER_PORTAL_URL + /slack/events; the slash command is
    GRANTLEDGER_SLACK_COMMAND (default /access). Paste it at api.slack.com/apps ->
    Create New App -> From a manifest.

    Example: GRANTLEDGER_PORTAL_URL=https://grantledger.example.com grantledger slack manifest
    """
    from workers.settings import get_settings
    from workers.slack.manifest import app_manifest

    typer.echo(json.dumps(app_manifest(get_settings()), indent=2))

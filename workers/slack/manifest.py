"""``grantledger slack manifest``: the Slack app manifest (scopes, slash command,
interactivity), pointing at ``<GRANTLEDGER_PORTAL_URL>/slack/events``."""

from __future__ import annotations

from typing import Any

from models.errors import ConfigError
from workers.settings import Settings

EVENTS_PATH = "/slack/events"
# chat:write (messages, updates, ephemeral refusals), im:write (open direct messages),
# commands (the slash command), users:read + users:read.email (who a clicker is).
BOT_SCOPES = ["chat:write", "commands", "im:write", "users:read", "users:read.email"]


def events_url(settings: Settings) -> str:
    """Where Slack sends interactivity and slash commands."""
    if not settings.portal_url:
        raise ConfigError("GRANTLEDGER_PORTAL_URL is not set, so there is no URL for Slack",
                          hint="set it to the public https base URL of `grantledger api` "
                               "(e.g. https://grantledger.example.com)")
    return settings.portal_url.rstrip("/") + EVENTS_PATH


def app_manifest(settings: Settings) -> dict[str, Any]:
    """The manifest to paste at api.slack.com/apps -> Create New App -> From a manifest."""
    url = events_url(settings)
    return {
        "display_information": {"name": "grantledger",
                                "description": "Request and approve AWS access"},
        "features": {
            "bot_user": {"display_name": "grantledger", "always_online": True},
            "slash_commands": [{"command": settings.slack_command, "url": url,
                                "description": "Request AWS access; `mine` lists yours",
                                "usage_hint": "[mine]", "should_escape": False}],
        },
        "oauth_config": {"scopes": {"bot": BOT_SCOPES}},
        "settings": {"interactivity": {"is_enabled": True, "request_url": url},
                     "org_deploy_enabled": False, "socket_mode_enabled": False,
                     "token_rotation_enabled": False},
    }

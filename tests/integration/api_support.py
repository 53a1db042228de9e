"""Helpers for the API tests (fixtures in ``api_fixtures``)."""

from __future__ import annotations

import uuid

from pydantic import SecretStr

from tasks.access.permissions import operator
from tasks.access.tokens import create_token
from workers.runtime import Runtime
from workers.settings import Settings

ADMIN_TOKEN = "admin-" + uuid.uuid4().hex


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


ADMIN = bearer(ADMIN_TOKEN)


def api_settings(database_url: str, **overrides: object) -> Settings:
    """Stack-mode settings (Postgres ledger) with a known admin token."""
    fields: dict[str, object] = {"broker_url": "memory://", "api_token": SecretStr(ADMIN_TOKEN)}
    return Settings(database_url=database_url, **{**fields, **overrides})


def token_for(runtime: Runtime, user: str) -> dict[str, str]:
    """Authorization headers with a fresh per-user token for ``user``."""
    _, plaintext = create_token(sessions=runtime.sessions, user=user, label="test",
                                actor=operator("test"))
    return bearer(plaintext)

"""Per-user API tokens: created for one user, shown once, stored only as a sha256 digest.

A token acts as its user (the API never takes "act as" from a request body), so a token
stops working as soon as it is revoked, its user is deleted, or its user is suspended
(offboarding must not leave a working credential behind). Creation and revocation are
audited; the token itself never reaches the audit trail or the database.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from models.errors import InputError, NotFound, PolicyDenied
from models.ledger import tables
from models.ledger.audit import record
from models.ledger.base import db_now
from models.ledger.db import transaction

Sessions = sessionmaker[Session]
TOKEN_PREFIX = "glt_"  # tells a grantledger token apart in logs and secret scanners
MAX_LABEL_LENGTH = 200


@dataclass(frozen=True)
class TokenView:
    """A token as listed: everything but the secret (which the ledger does not have)."""

    id: int
    user: str | None
    label: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


def token_digest(plaintext: str) -> str:
    """The sha256 hex digest stored in place of the token."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


def new_token() -> str:
    """A fresh token: the prefix and 256 random bits."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def create_token(*, sessions: Sessions, user: str, label: str = "",
                 actor: str) -> tuple[int, str]:
    """Create a token for ``user``; returns (token id, the token). The token is shown once."""
    label = label.strip()
    if len(label) > MAX_LABEL_LENGTH:
        raise InputError(f"a token label has at most {MAX_LABEL_LENGTH} characters")
    plaintext = new_token()
    with transaction(sessions) as session:
        _active_user(session, user)
        row = tables.ApiToken(user_name=user, token_hash=token_digest(plaintext), label=label)
        session.add(row)
        session.flush()
        record(session, actor=actor, action="api_token.create", target_kind="api_token",
               target=str(row.id), principal_name=user, details={"label": label})
        return row.id, plaintext


def verify_token(*, sessions: Sessions, token: str) -> str | None:
    """The user a token acts as, or None (unknown, revoked, user gone or suspended)."""
    with transaction(sessions) as session:
        row = session.scalar(select(tables.ApiToken).where(
            tables.ApiToken.token_hash == token_digest(token),
            tables.ApiToken.revoked_at.is_(None), tables.ApiToken.user_name.is_not(None)))
        if row is None or row.user_name is None:
            return None
        person = session.get(tables.User, row.user_name)
        if person is None or person.suspended:
            return None
        session.execute(update(tables.ApiToken).where(tables.ApiToken.id == row.id)
                        .values(last_used_at=db_now()))
        return row.user_name


def revoke_token(*, sessions: Sessions, token_id: int, actor: str,
                 owner: str | None = None) -> TokenView:
    """Revoke one token (idempotent). With ``owner``, only a token of that user is found."""
    with transaction(sessions) as session:
        row = session.get(tables.ApiToken, token_id, with_for_update=True)
        if row is None or (owner is not None and row.user_name != owner):
            raise NotFound("token", str(token_id),
                           hint="list your tokens with: grantledger token list")
        if row.revoked_at is None:
            row.revoked_at = session.scalar(select(db_now()))
            record(session, actor=actor, action="api_token.revoke", target_kind="api_token",
                   target=str(row.id), principal_name=row.user_name,
                   details={"label": row.label})
        return _view(row)


def list_tokens(*, sessions: Sessions, user: str | None = None) -> list[TokenView]:
    """Tokens (revoked ones too), oldest first; only ``user``'s when given."""
    statement = select(tables.ApiToken).order_by(tables.ApiToken.id)
    if user is not None:
        statement = statement.where(tables.ApiToken.user_name == user)
    with sessions() as session:
        return [_view(row) for row in session.scalars(statement)]


def _active_user(session: Session, name: str) -> tables.User:
    person = session.get(tables.User, name)
    if person is None:
        raise NotFound("user", name)
    if person.suspended:
        raise PolicyDenied(f"user {name!r} is suspended: no new API tokens",
                           hint=f"lift it first with: grantledger restore --user {name}")
    return person


def _view(row: tables.ApiToken) -> TokenView:
    return TokenView(id=row.id, user=row.user_name, label=row.label, created_at=row.created_at,
                     last_used_at=row.last_used_at, revoked_at=row.revoked_at)

"""Per-user API tokens: created for one user, shown once, stored only as a sha256 digest.

A token acts as its user, by immutable user id (never by the reusable name), so a token stops
working as soon as it is revoked, its user is deleted or suspended (both also revoke it, in
the same transaction: ``revoke_tokens_of``), and a new user of the same name inherits
nothing. Creation and revocation are audited; the token never reaches the audit trail or the
database.
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
from models.ledger.audit import record, record_many
from models.ledger.base import db_now
from models.ledger.db import transaction
from tasks.access.permissions import Actor, active_user, require_admin

Sessions = sessionmaker[Session]
TOKEN_PREFIX = "glt_"  # tells a grantledger token apart in logs and secret scanners
MAX_LABEL_LENGTH = 200


@dataclass(frozen=True)
class TokenView:
    """A token as listed: everything but the secret (which the ledger does not have)."""

    id: int
    user: str | None
    user_id: str | None
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
                 actor: Actor) -> tuple[int, str]:
    """Create a token for ``user`` (operators only); returns (token id, the token), which is
    shown once."""
    require_admin(actor, "create API tokens")
    label = label.strip()
    if len(label) > MAX_LABEL_LENGTH:
        raise InputError(f"a token label has at most {MAX_LABEL_LENGTH} characters")
    plaintext = new_token()
    with transaction(sessions) as session:
        person = active_user(session, name=user)
        row = tables.ApiToken(user_name=person.name, user_id=person.id,
                              token_hash=token_digest(plaintext), label=label)
        session.add(row)
        session.flush()
        record(session, actor=actor.label, action="api_token.create", target_kind="api_token",
               target=str(row.id), principal_name=user,
               details={"label": label, "user_id": person.id})
        return row.id, plaintext


def verify_token(*, sessions: Sessions, token: str) -> str | None:
    """The id of the user a token acts as, or None (unknown, revoked, user gone or
    suspended)."""
    with transaction(sessions) as session:
        row = session.scalar(select(tables.ApiToken).where(
            tables.ApiToken.token_hash == token_digest(token),
            tables.ApiToken.revoked_at.is_(None), tables.ApiToken.user_id.is_not(None)))
        if row is None:
            return None
        person = session.scalar(select(tables.User).where(tables.User.id == row.user_id))
        if person is None or person.suspended:
            return None
        session.execute(update(tables.ApiToken).where(tables.ApiToken.id == row.id)
                        .values(last_used_at=db_now()))
        return row.user_id


def revoke_token(*, sessions: Sessions, token_id: int, actor: Actor) -> TokenView:
    """Revoke one token (idempotent). A person finds only their own tokens."""
    with transaction(sessions) as session:
        row = session.get(tables.ApiToken, token_id, with_for_update=True)
        if row is None or (not actor.admin and not actor.is_person(row.user_id)):
            raise NotFound("token", str(token_id),
                           hint="list your tokens with: grantledger token list")
        if row.revoked_at is None:
            row.revoked_at = session.scalar(select(db_now()))
            record(session, actor=actor.label, action="api_token.revoke",
                   target_kind="api_token", target=str(row.id), principal_name=row.user_name,
                   details={"label": row.label})
        return _view(row)


def revoke_tokens_of(session: Session, *, user_id: str, actor: str, reason: str) -> list[int]:
    """Revoke every live token of a person, in the caller's transaction (their deletion or
    suspension); the ids revoked."""
    revoked = list(session.scalars(
        update(tables.ApiToken)
        .where(tables.ApiToken.user_id == user_id, tables.ApiToken.revoked_at.is_(None))
        .values(revoked_at=db_now()).returning(tables.ApiToken.id)
        .execution_options(synchronize_session=False)))
    record_many(session, [{"actor": actor, "action": "api_token.revoke",
                           "target_kind": "api_token", "target": str(token_id),
                           "reason": reason} for token_id in sorted(revoked)])
    return sorted(revoked)


def list_tokens(*, sessions: Sessions, viewer: Actor, user: str | None = None) -> list[TokenView]:
    """Tokens (revoked ones too), oldest first: an operator's all or ``user``'s, a person's
    only their own."""
    statement = select(tables.ApiToken).order_by(tables.ApiToken.id)
    if not viewer.admin:
        if user not in (None, viewer.name):
            raise PolicyDenied("a user token lists only its own user's tokens")
        statement = statement.where(tables.ApiToken.user_id == viewer.user_id)
    elif user is not None:
        statement = statement.where(tables.ApiToken.user_name == user)
    with sessions() as session:
        return [_view(row) for row in session.scalars(statement)]


def _view(row: tables.ApiToken) -> TokenView:
    return TokenView(id=row.id, user=row.user_name, user_id=row.user_id, label=row.label,
                     created_at=row.created_at, last_used_at=row.last_used_at,
                     revoked_at=row.revoked_at)

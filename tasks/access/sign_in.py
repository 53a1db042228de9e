"""Who a person signing in to the portal is, and whether their session may go on.

The identity provider vouches for an email and a username; the grantledger user is the one
whose email equals the ``email`` claim (case-insensitive), else whose name equals
``preferred_username``. Anyone else is not enrolled and gets no session. A suspended or
deleted user's session ends at their next request (``may_continue``).
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models.ledger import tables

Sessions = sessionmaker[Session]


def enrolled_user(*, sessions: Sessions, email: str | None, username: str | None) -> str | None:
    """The active user the ID token's claims name, or None (not enrolled or suspended)."""
    with sessions() as session:
        found = None
        if email:
            found = session.scalars(select(tables.User).where(
                func.lower(tables.User.email) == email.lower()).order_by(tables.User.name)
            ).first()
        if found is None and username:
            found = session.get(tables.User, username)
        return found.name if found is not None and not found.suspended else None


def may_continue(*, sessions: Sessions, user: str) -> bool:
    """True while ``user`` exists and is not suspended."""
    with sessions() as session:
        found = session.get(tables.User, user)
        return found is not None and not found.suspended


def local_sign_in_choices(*, sessions: Sessions) -> list[str]:
    """The active users the embedded mode's local sign-in offers."""
    with sessions() as session:
        return list(session.scalars(select(tables.User.name).where(
            tables.User.suspended.is_(False)).order_by(tables.User.name)))

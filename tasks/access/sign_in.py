"""Who a person signing in to the portal is, and whether their session may go on.

The identity provider vouches for an email and a username; the grantledger user is the one
whose email equals the ``email`` claim (case-insensitive), else whose name equals
``preferred_username``. Anyone else is not enrolled and gets no session. The session keeps
the user's immutable id (names are reusable); a suspended or deleted user's session ends at
their next request (``permissions.person_in`` refuses them).
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models.ledger import tables

Sessions = sessionmaker[Session]


def enrolled_user(*, sessions: Sessions, email: str | None, username: str | None) -> str | None:
    """The id of the active user the ID token's claims name, or None (not enrolled or
    suspended)."""
    with sessions() as session:
        found = None
        if email:
            found = session.scalars(select(tables.User).where(
                func.lower(tables.User.email) == email.lower()).order_by(tables.User.name)
            ).first()
        if found is None and username:
            found = session.get(tables.User, username)
        return found.id if found is not None and not found.suspended else None


def local_sign_in_choices(*, sessions: Sessions) -> list[str]:
    """The active users the embedded mode's local sign-in offers."""
    with sessions() as session:
        return list(session.scalars(select(tables.User.name).where(
            tables.User.suspended.is_(False)).order_by(tables.User.name)))


def local_user_id(*, sessions: Sessions, name: str) -> str | None:
    """The id of the active user called ``name`` (the embedded mode's pick), or None."""
    with sessions() as session:
        found = session.get(tables.User, name)
        return found.id if found is not None and not found.suspended else None

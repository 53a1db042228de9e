"""The auditor's question: who had access to what at a moment, person by person.

Grants held at T (``models.ledger.audit.holders_at``: AWS confirmed them before T, their
delete was not confirmed by T) are expanded to people: a user's own grant is theirs; an
access list's (group's) grant belongs to everyone in the list at T, nested lists included,
from ``membership_history`` (joins, leaves and expiries, written by database triggers).
Shared by `grantledger audit --at`, the API's ``/v1/audit?at=`` and any portal.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from models.domain import MemberKind
from models.ledger import audit
from models.ledger.tables import MembershipHistory
from tasks.access.permissions import Actor, require_auditor

Members = Mapping[str, list[tuple[str, str]]]  # list -> [(member kind, member name)]


def access_at(*, sessions: sessionmaker[Session], viewer: Actor, at: datetime,
              user: str | None = None, account_id: str | None = None) -> list[dict[str, Any]]:
    """One row per person and assignment they had at ``at`` (optionally one user, one
    account), saying through what: their own grant, or the access list(s) holding it.
    The admin and auditors only."""
    require_auditor(viewer, "who had access")
    with sessions() as session:
        holdings = audit.holders_at(session, at=at, account_id=account_id)
        members = members_at(session, at=at)
    rows = []
    for holding in holdings:
        source = f"{holding.source_kind}:{holding.source_id}"
        for person, via in _people(holding, members, source):
            if user is None or person == user:
                rows.append({"account_id": holding.account_id,
                             "permission_set": holding.permission_set_name, "user": person,
                             "via": via, "source": source, "since": holding.activated_at,
                             "until": holding.revoked_at, "grant_id": holding.grant_id,
                             "permission_set_arn": holding.permission_set_arn})
    return rows


def members_at(session: Session, *, at: datetime) -> dict[str, list[tuple[str, str]]]:
    """Every access list's direct members (users and nested lists) at ``at``."""
    history = MembershipHistory
    found = session.execute(
        select(history.list_name, history.member_kind, history.member_name)
        .where(history.added_at <= at,
               or_(history.removed_at.is_(None), history.removed_at > at),
               or_(history.expires_at.is_(None), history.expires_at > at))
        .order_by(history.list_name, history.member_name))
    members: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for list_name, kind, name in found:
        members[list_name].append((kind, name))
    return members


def _people(holding: audit.Holding, members: Members, source: str) -> list[tuple[str, str]]:
    if holding.principal_type == "USER":
        return [(holding.principal_name, f"own grant ({source})")]
    return sorted(set(_expand(holding.principal_name, members, ())))


def _expand(list_name: str, members: Members,
            path: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    """(user, how) for everyone in ``list_name``, through nested lists (cycles stop)."""
    path = (*path, list_name)
    for kind, name in members.get(list_name, ()):
        if kind == MemberKind.USER.value:
            nested = f" (through {' > '.join(path[1:])})" if len(path) > 1 else ""
            yield name, f"access list {path[0]}{nested}"
        elif name not in path:
            yield from _expand(name, members, path)

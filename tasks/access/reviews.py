"""Periodic access reviews: the owners of an access list confirm who keeps access.

A review is done by one owner: it removes the members named (each removal audited), records
``access_list.reviewed`` and schedules the next review one recurrence after now (database
clock). A list with a recurrence is *overdue* once its due time has passed; a list never
reviewed whose ``next_review_at`` was not set is due one recurrence after its creation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.domain import MemberKind
from models.errors import NotFound, PolicyDenied
from models.ledger import tables
from models.ledger.audit import record
from models.ledger.base import database_time
from models.ledger.db import transaction
from tasks import events
from tasks.access.queries import ledger_nesting, with_ancestors

Sessions = sessionmaker[Session]


@dataclass(frozen=True)
class AccessReview:
    """The outcome of one review."""

    list_name: str
    reviewer: str
    removed: list[str]
    notes: str | None
    reviewed_at: datetime
    next_review_at: datetime | None


@dataclass(frozen=True)
class OverdueReview:
    list_name: str
    owners: list[str]
    due_at: datetime
    overdue_by: timedelta


def review_due_at(access_list: tables.AccessList) -> datetime | None:
    """When the list is due for review; None when it has no recurrence."""
    if not access_list.recurrence_seconds:
        return None
    if access_list.next_review_at is not None:
        return access_list.next_review_at
    return access_list.created_at + timedelta(seconds=access_list.recurrence_seconds)


def review_access_list(*, sessions: Sessions, list_name: str, reviewer: str,
                       remove: Iterable[str] = (), notes: str | None = None) -> AccessReview:
    """Record an owner's review of ``list_name``, removing the members named in ``remove``."""
    with transaction(sessions) as session:
        target = session.get(tables.AccessList, list_name, with_for_update=True)
        if target is None:
            raise NotFound("access-list", list_name)
        _check_owner(session, target, reviewer)
        removed = _remove_members(session, target.name, sorted(set(remove)), actor=reviewer)
        now = database_time(session)
        before = target.next_review_at
        target.next_review_at = (now + timedelta(seconds=target.recurrence_seconds)
                                 if target.recurrence_seconds else None)
        record(session, actor=reviewer, action="access_list.reviewed",
               target_kind="access_list", target=target.name, reason=notes,
               before={"next_review_at": before.isoformat() if before else None},
               after={"next_review_at": _iso(target.next_review_at)},
               details={"removed": [m.member_name for m in removed], "notes": notes})
        lists = with_ancestors(ledger_nesting(session), [target.name]) if removed else set()
    if removed:
        _announce(users=[m.member_name for m in removed if m.member_kind is MemberKind.USER],
                  lists=sorted(lists), reason=f"access review of {target.name} by {reviewer}")
    return AccessReview(list_name=target.name, reviewer=reviewer,
                        removed=[m.member_name for m in removed], notes=notes,
                        reviewed_at=now, next_review_at=target.next_review_at)


def _check_owner(session: Session, target: tables.AccessList, reviewer: str) -> None:
    person = session.get(tables.User, reviewer)
    if person is None:
        raise NotFound("user", reviewer)
    if reviewer not in target.owners or person.suspended:
        raise PolicyDenied(f"{reviewer} is not an owner of access list {target.name}",
                           hint=f"ask an owner: {', '.join(target.owners) or '(none)'}")


def _remove_members(session: Session, list_name: str, names: list[str], *,
                    actor: str) -> list[tables.Membership]:
    """Delete the named direct members (users or nested lists); each must be a member."""
    found = list(session.scalars(select(tables.Membership).where(
        tables.Membership.list_name == list_name, tables.Membership.member_name.in_(names))))
    missing = sorted(set(names) - {m.member_name for m in found})
    if missing:
        raise NotFound(f"member of {list_name}", ", ".join(missing),
                       hint=f"see the members with: grantledger get access-lists {list_name}")
    for membership in found:
        session.delete(membership)
        record(session, actor=actor, action="access_list.member_removed",
               target_kind="access_list", target=list_name,
               principal_name=(membership.member_name
                               if membership.member_kind is MemberKind.USER else None),
               reason="access review",
               before={"member": membership.member_name, "kind": membership.member_kind.value,
                       "expires": _iso(membership.expires_at)})
    session.flush()
    return found


def overdue_reviews(*, session: Session) -> list[OverdueReview]:
    """Lists with a recurrence whose review is due by the database clock, most overdue first."""
    now = database_time(session)
    lists = session.scalars(select(tables.AccessList).where(
        tables.AccessList.recurrence_seconds.is_not(None)))
    overdue = []
    for access_list in lists:
        due = review_due_at(access_list)
        if due is not None and due <= now:
            overdue.append(OverdueReview(list_name=access_list.name,
                                         owners=list(access_list.owners), due_at=due,
                                         overdue_by=now - due))
    return sorted(overdue, key=lambda review: (review.due_at, review.list_name))


def _announce(*, users: list[str], lists: list[str], reason: str) -> None:
    events.desired_state_changed(users=sorted(set(users)), lists=lists, reason=reason)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None

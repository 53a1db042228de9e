"""Who may do and see what: the one permission model of every surface (API, CLI, portal,
Slack).

A surface turns its caller into an ``Actor`` once (``operator`` for the admin token and the
CLI's database authority, ``person`` for a user), and passes it to the services: acting
services check it, read services filter by it. A person is resolved by immutable user id
(a token, a portal session) or by name (the CLI's ``--reviewer``); either way only an active
user is a person. Rules and the threat model: ops/decisions/security.md.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.domain import MemberKind
from models.errors import NotFound, PolicyDenied
from models.ledger import tables
from models.ledger.base import database_time
from models.policy import effective_roles, may_review
from tasks.access.requests_policy import Policy, load_lists, load_policy

AUDITOR = "auditor"  # a role option: reads the audit trail and everyone's data
API_ADMIN_LABEL = "api:admin"


@dataclass(frozen=True)
class Actor:
    """Who acts or reads: a person (``user_id`` set) or an operator (admin, no person)."""

    user_id: str | None
    name: str  # the person's name now, or the operator's label
    admin: bool  # the admin token or the CLI: may do and see everything
    capabilities: frozenset[str]
    label: str  # how the audit trail names the actor

    @property
    def auditor(self) -> bool:
        """Reads the audit trail and everyone's grants, requests, users and lists."""
        return self.admin or AUDITOR in self.capabilities

    def is_person(self, user_id: str | None) -> bool:
        """True when this actor is the person with ``user_id`` (never for an operator)."""
        return self.user_id is not None and self.user_id == user_id


def operator(label: str) -> Actor:
    """Operator authority (the admin token, the CLI): no person, everything allowed."""
    return Actor(user_id=None, name=label, admin=True, capabilities=frozenset(), label=label)


def os_user() -> str:
    """The operating-system user running this process (for the audit of CLI actions): from
    the effective uid, not $USER, which the caller sets as they like."""
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError, OSError):  # no pwd (Windows), or a uid without a name
        try:
            return getpass.getuser()
        except (KeyError, OSError):
            return "unknown"


def cli_label(given: str | None) -> str:
    """``cli:<--actor> (os: <os user>)``: who said they act, and who really ran it."""
    real = os_user()
    return f"cli:{given or real} (os: {real})"


def cli_operator(given: str | None) -> Actor:
    """The CLI acts with the database's authority: an operator, labelled for the audit."""
    return operator(cli_label(given))


API_ADMIN = operator(API_ADMIN_LABEL)


def active_user(session: Session, *, user_id: str | None = None, name: str | None = None,
                lock: bool = False) -> tables.User:
    """The user with this id (or name); ``NotFound`` when gone, ``PolicyDenied`` when
    suspended."""
    if (user_id is None) == (name is None):
        raise ValueError("give exactly one of user_id and name")
    if user_id is not None:
        statement = select(tables.User).where(tables.User.id == user_id)
        row = session.scalar(statement.with_for_update() if lock else statement)
        if row is None:
            raise NotFound("user", user_id, hint="that person was deleted; their tokens, "
                                                 "requests and reviews are void")
    else:
        row = session.get(tables.User, name, with_for_update=lock)
        if row is None:
            raise NotFound("user", str(name))
    if row.suspended:
        raise PolicyDenied(f"user {row.name!r} is suspended "
                           f"({row.suspended_reason or 'no reason'})",
                           hint=f"lift it first with: grantledger restore --user {row.name}")
    return row


def person(session: Session, *, user_id: str | None = None, name: str | None = None,
           via: str) -> Actor:
    """The active user with this id (or name) as an Actor; ``via`` is the surface
    (``api``, ``cli``, ``portal``, ``slack``) and goes into the audit label."""
    row = active_user(session, user_id=user_id, name=name)
    return Actor(user_id=row.id, name=row.name, admin=False,
                 capabilities=capabilities_of(session, row), label=person_label(via, row))


def person_in(sessions: sessionmaker[Session], *, user_id: str | None = None,
              name: str | None = None, via: str) -> Actor:
    """``person`` in a session of its own (for surfaces that resolve before acting)."""
    with sessions() as session:
        return person(session, user_id=user_id, name=name, via=via)


def person_label(via: str, row: tables.User) -> str:
    if via == "cli":
        return f"cli:{row.name} ({row.id}, os: {os_user()})"
    return f"{via}:{row.name} ({row.id})"


def held_role_names(session: Session, row: tables.User) -> set[str]:
    """The user's roles now: their own and those of every access list they reach."""
    return effective_roles(user=row.name, user_roles=row.roles, lists=load_lists(session),
                           at=database_time(session))


def capabilities_of(session: Session, row: tables.User) -> frozenset[str]:
    """The capabilities (role options) the user holds through any of their roles now."""
    names = held_role_names(session, row)
    found: set[str] = set()
    for spec in session.scalars(select(tables.Role.spec).where(tables.Role.name.in_(names))):
        if (spec or {}).get("options", {}).get(AUDITOR):
            found.add(AUDITOR)
    return frozenset(found)


# --- acting ---------------------------------------------------------------------------------


def require_admin(actor: Actor, what: str) -> None:
    """Operator-only actions (apply, delete, sync, plan, status, others' tokens)."""
    if not actor.admin:
        raise PolicyDenied(f"{actor.name} may not {what}: it needs the admin token or the CLI",
                           hint="ask an operator")


def require_auditor(actor: Actor, what: str) -> None:
    """Reads of everyone's data: the admin, or a person holding an ``auditor`` role."""
    if not actor.auditor:
        raise PolicyDenied(f"{actor.name} may not read {what}: it needs the admin token or a "
                           f"role with options.{AUDITOR}: true", hint="ask an operator")


def require_person(actor: Actor, what: str) -> None:
    """Acts that are a person's own (request, review): operator authority acts as nobody."""
    if actor.user_id is None:
        raise PolicyDenied(f"{actor.name} acts as no user, and {what} needs one",
                           hint="act as a person: a per-user token, or --reviewer/--user NAME")


def owns(actor: Actor, access_list: tables.AccessList) -> bool:
    """Whether the actor is one of the list's owners (an operator owns nothing)."""
    return actor.user_id is not None and actor.name in access_list.owners


def may_change_members(actor: Actor, access_list: tables.AccessList) -> None:
    """Owners, or an operator, change a list's members."""
    if not actor.admin and not owns(actor, access_list):
        owners = ", ".join(access_list.owners) or "none set"
        raise PolicyDenied(f"{actor.name!r} is not an owner of access list "
                           f"{access_list.name!r}",
                           hint=f"ask an owner ({owners}) to make this change")


def may_add_self(actor: Actor, access_list: tables.AccessList, member: str, *,
                 reached: Collection[str] = ()) -> None:
    """An owner never adds themself, directly or inside a nested list (``reached``: the
    users a nested member list brings): another owner, or an operator, must do it."""
    if not actor.admin and (actor.name == member or actor.name in reached):
        others = [o for o in access_list.owners if o != actor.name]
        raise PolicyDenied(f"{actor.name} cannot add themself to access list "
                           f"{access_list.name!r}, which they own",
                           hint=f"ask another owner ({', '.join(others) or 'none set'}) "
                                "or an operator")


# --- reading --------------------------------------------------------------------------------


def may_see_user(viewer: Actor, name: str) -> bool:
    """A person sees their own profile, grants and requestable set; auditors everyone's."""
    return viewer.auditor or (viewer.user_id is not None and viewer.name == name)


def require_user_visible(viewer: Actor, name: str) -> None:
    """``NotFound`` (not 403: names are not confirmed to outsiders) unless visible."""
    if not may_see_user(viewer, name):
        raise NotFound("user", name, hint="a user token sees only its own user")


def own_scope(viewer: Actor, user: str | None) -> str | None:
    """The user a read of per-user data is limited to: any (None) for auditors, else the
    viewer; naming someone else is refused."""
    if viewer.auditor:
        return user
    if user is not None and user != viewer.name:
        require_user_visible(viewer, user)
    return viewer.name


def can_review(session: Session, viewer: Actor, request: tables.AccessRequest,
               *, policy: Policy | None = None) -> bool:
    """Whether the viewer (a person) may review ``request``: not their own, and a role of
    theirs reviews every item (the policy in force now)."""
    if viewer.user_id is None or viewer.is_person(request.user_id):
        return False
    row = session.scalar(select(tables.User).where(tables.User.id == viewer.user_id))
    if row is None or row.suspended:
        return False
    policy = policy or load_policy(session)
    return may_review(reviewer_roles=policy.held_roles(row), request_roles=request.roles,
                      request_assignments=request.resources, all_roles=policy.roles,
                      catalog=policy.catalog)


def visible_requests(session: Session, viewer: Actor,
                     requests: Iterable[tables.AccessRequest]) -> list[tables.AccessRequest]:
    """The requests the viewer may read: all for auditors, else their own and those they
    may review."""
    requests = list(requests)
    if viewer.auditor:
        return requests
    policy = load_policy(session) if viewer.user_id else None
    return [r for r in requests if viewer.is_person(r.user_id)
            or can_review(session, viewer, r, policy=policy)]


def visible_lists(session: Session, viewer: Actor) -> set[str] | None:
    """Names of the access lists the viewer may read (None: all): those they own or are a
    direct member of."""
    if viewer.auditor:
        return None
    owned = {name for name, owners in session.execute(
        select(tables.AccessList.name, tables.AccessList.owners)) if viewer.name in owners}
    member_of = set(session.scalars(select(tables.Membership.list_name).where(
        tables.Membership.member_name == viewer.name,
        tables.Membership.member_kind == MemberKind.USER)))
    return owned | member_of

"""Changes to a request: cancellation by its requester, extension and promotion into an
access list.

Both re-evaluate the requester's right against the policy in force (``current_terms``).
An extension needs as many approvals as the request it extends: each reviewer's
``extend_request`` approves the pending extension, and the last approval moves the request's
expiry and its live grants' in one transaction, so access never lapses. A promotion into a
list that grants more than was asked needs ``confirm_broader``; ``promotion_lists`` offers
the lists that cover the request (exact ones first). Why: ops/decisions/security.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.domain import MemberKind, RequestState, format_duration
from models.errors import InputError, NotFound, PolicyDenied
from models.ledger import tables
from models.ledger.audit import record
from models.ledger.base import database_time
from models.ledger.db import transaction
from models.ledger.enums import GrantState, SourceKind
from models.ledger.grants import extend_grant
from tasks.access.permissions import Actor, owns, visible_requests
from tasks.access.queries import ledger_nesting, with_ancestors
from tasks.access.requests import (
    announce,
    audit_request,
    check_reviewer,
    current_terms,
    locked_request,
)
from tasks.access.requests_policy import (
    Policy,
    RequestTerms,
    broader_items,
    extended_expiry,
    load_policy,
    uncovered_items,
)

Sessions = sessionmaker[Session]


# --- cancellation --------------------------------------------------------------------------

CANCELLED = "cancelled by the requester"


def cancel_request(*, sessions: Sessions, request_id: str, actor: Actor) -> tables.AccessRequest:
    """Withdraw a PENDING request, as its requester (or an operator, for them: the CLI): it
    ends DENIED with the reason "cancelled by the requester" (RequestState has no cancelled
    state, and DENIED already means "ended before any grant"), audited
    ``request.cancelled``."""
    with transaction(sessions) as session:
        request = locked_request(session, request_id, [RequestState.PENDING])
        if not actor.admin and not actor.is_person(request.user_id):
            # NotFound unless the actor may read it: a request id is not confirmed to others.
            if not visible_requests(session, actor, [request]):
                raise NotFound("request", request_id)
            raise PolicyDenied(f"{actor.name} cannot cancel request {request_id}: only its "
                               f"requester ({request.user_name}) may",
                               hint="deny it instead, if you review it")
        request.state, request.decided_at = RequestState.DENIED, database_time(session)
        audit_request(session, request, actor=actor.label, action="request.cancelled",
                      reason=CANCELLED, before={"state": "PENDING"}, after={"state": "DENIED"})
    return request


# --- extension -----------------------------------------------------------------------------


def extend_request(*, sessions: Sessions, request_id: str, duration: timedelta,
                   actor: Actor) -> tables.AccessRequest:
    """Approve extending an APPROVED request by ``duration``, as ``actor`` (a reviewer).

    The extension applies once it has as many approvals as the request needs now; until
    then it waits on the request (``extension_seconds``). Refused when the requester's right
    is gone (audited ``request.extension_refused``).
    """
    if duration <= timedelta(0):
        raise InputError(f"duration {duration} must be longer than zero")
    refused: PolicyDenied | None = None
    with transaction(sessions) as session:
        request = locked_request(session, request_id, [RequestState.APPROVED])
        policy = load_policy(session)
        check_reviewer(session, policy, request, actor)
        _require_unexpired(policy, request)
        try:
            terms = current_terms(session, policy, request)
        except PolicyDenied as lost:
            refused = lost
            audit_request(session, request, actor=actor.label,
                          action="request.extension_refused",
                          reason=f"the right to request is gone: {lost.message}")
        if refused is None and _approve_extension(session, request, duration, terms,
                                                  actor=actor):
            _apply_extension(session, policy, request, terms, actor=actor)
    if refused is not None:
        raise PolicyDenied(f"request {request_id} cannot be extended: the right to request "
                           f"is gone ({refused.message})", hint="create a new request")
    if request.extension_seconds is None:
        announce(users=[request.user_name], reason=f"request {request.id} extended")
    return request


def _require_unexpired(policy: Policy, request: tables.AccessRequest) -> None:
    if request.expires_at is None or request.decided_at is None \
            or request.expires_at <= policy.now:
        raise PolicyDenied(f"request {request.id} has expired; it cannot be extended",
                           hint="create a new request")


def _approve_extension(session: Session, request: tables.AccessRequest, duration: timedelta,
                       terms: RequestTerms, *, actor: Actor) -> bool:
    """Count ``actor``'s approval of the pending extension; True when it has enough."""
    seconds = int(duration.total_seconds())
    if request.extension_seconds not in (None, seconds):
        pending = format_duration(timedelta(seconds=request.extension_seconds))
        raise PolicyDenied(f"an extension of request {request.id} by {pending} awaits "
                           "approval", hint=f"approve that one with --duration {pending}")
    if actor.user_id in request.extension_approvers:
        raise PolicyDenied(f"{actor.name} already approved this extension of {request.id}",
                           hint="one approval per reviewer: ask another reviewer")
    request.extension_seconds = seconds
    request.extension_approvers = [*request.extension_approvers, str(actor.user_id)]
    audit_request(session, request, actor=actor.label, action="request.extension_approved",
                  asked=format_duration(duration), approvals=len(request.extension_approvers),
                  required_approvals=terms.approvals)
    return len(request.extension_approvers) >= terms.approvals


def _apply_extension(session: Session, policy: Policy, request: tables.AccessRequest,
                     terms: RequestTerms, *, actor: Actor) -> None:
    cap = terms.break_glass_max_duration if request.break_glass else terms.max_duration
    if cap is None:
        raise PolicyDenied(f"break-glass no longer covers request {request.id}")
    assert request.expires_at is not None and request.decided_at is not None
    before, asked = request.expires_at, timedelta(seconds=request.extension_seconds or 0)
    request.expires_at = extended_expiry(decided_at=request.decided_at, expires_at=before,
                                         duration=asked, cap=cap)
    # the duration is what the access lasts in all: asked, plus every extension
    request.duration_seconds = int((request.expires_at - request.decided_at).total_seconds())
    approvers = list(request.extension_approvers)
    request.extension_seconds, request.extension_approvers = None, []
    _move_grants(session, request)
    audit_request(session, request, actor=actor.label, action="request.extended",
                  before={"expires_at": before.isoformat()},
                  after={"expires_at": request.expires_at.isoformat()},
                  asked=format_duration(asked), approved_by=approvers)


def _move_grants(session: Session, request: tables.AccessRequest) -> None:
    live = session.scalars(
        select(tables.Grant).where(tables.Grant.source_kind == SourceKind.REQUEST,
                                   tables.Grant.source_id == request.id,
                                   tables.Grant.state != GrantState.REVOKED)
        .with_for_update().execution_options(populate_existing=True)).all()
    revoking = [g for g in live if GrantState.REVOKING in (g.state, g.failed_from)]
    if revoking:
        raise PolicyDenied(f"request {request.id} is being revoked; it cannot be extended",
                           hint="create a new request")
    for grant in live:
        # FAILED creates too: sync retries them with the row's expiry, and the expiry sweep
        # would otherwise revoke them at the old one. extend_grant leaves the rest alone.
        extend_grant(session, grant_id=grant.id, expires_at=request.expires_at)


# --- promotion -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PromotionList:
    """An access list a request could be promoted into."""

    access_list: str
    exact: bool  # grants what was asked, nothing more
    broader: list[str]  # what it grants beyond the request (needs confirm_broader)
    owned: bool  # the viewer owns it (a person promotes only into lists they own)


def promote_request(*, sessions: Sessions, request_id: str, access_list: str, actor: Actor,
                    confirm_broader: bool = False) -> tables.AccessRequest:
    """Turn a PENDING or APPROVED request into long-term access: the user joins
    ``access_list``, which must grant everything requested, and more only with
    ``confirm_broader``. A person must be allowed to review the request and own the list; an
    operator (admin token, CLI) may promote into any list."""
    with transaction(sessions) as session:
        request = locked_request(session, request_id,
                                  [RequestState.PENDING, RequestState.APPROVED])
        target = session.get(tables.AccessList, access_list)
        if target is None:
            raise NotFound("access-list", access_list)
        policy = load_policy(session)
        if not actor.admin:
            check_reviewer(session, policy, request, actor)
        current_terms(session, policy, request)  # the requester may still ask for it
        broader = _check_promotion(policy, request, target, actor=actor,
                                   confirm_broader=confirm_broader)
        _add_long_term_member(session, target.name, request, actor=actor.label)
        before, request.state = request.state, RequestState.PROMOTED
        request.promoted_to, request.decided_at = target.name, request.decided_at or policy.now
        audit_request(session, request, actor=actor.label, action="request.promoted",
                      before={"state": str(before)}, after={"state": "PROMOTED"},
                      access_list=target.name, broader=broader or None)
        lists = sorted(with_ancestors(ledger_nesting(session), [target.name]))
    announce(users=[request.user_name], lists=lists,
             reason=f"request {request.id} promoted to {target.name}")
    return request


def _check_promotion(policy: Policy, request: tables.AccessRequest, target: tables.AccessList,
                     *, actor: Actor, confirm_broader: bool) -> list[str]:
    if not actor.admin and not owns(actor, target):
        raise PolicyDenied(f"{actor.name} does not own access list {target.name}",
                           hint=f"ask an owner: {', '.join(target.owners) or '(none)'}")
    list_roles = [policy.roles[name] for name in target.granted_roles if name in policy.roles]
    missing = uncovered_items(roles=request.roles, assignments=request.resources,
                              list_roles=list_roles, all_roles=policy.roles,
                              catalog=policy.catalog)
    if missing:
        raise PolicyDenied(f"access list {target.name} does not grant {', '.join(missing)}",
                           hint="promote into a list whose roles grant everything requested")
    broader = broader_items(roles=request.roles, assignments=request.resources,
                            list_roles=list_roles, all_roles=policy.roles,
                            catalog=policy.catalog)
    if broader and not confirm_broader:
        raise PolicyDenied(
            f"access list {target.name} grants more than request {request.id} asked for: "
            f"{', '.join(broader)}",
            hint="promote into a list that covers the request exactly (see: grantledger get "
                 "promotion-lists ID), or confirm with --allow-broader / confirm_broader")
    return broader


def promotion_lists(*, sessions: Sessions, request_id: str,
                    viewer: Actor) -> list[PromotionList]:
    """The access lists that grant everything ``request_id`` asks for: exact ones first."""
    with sessions() as session:
        request = session.get(tables.AccessRequest, request_id)
        if request is None or not visible_requests(session, viewer, [request]):
            raise NotFound("request", request_id)
        policy = load_policy(session)
        found = [_candidate(policy, request, row, viewer)
                 for row in session.scalars(select(tables.AccessList)
                                            .order_by(tables.AccessList.name))]
    return sorted((c for c in found if c is not None), key=lambda c: (not c.exact,
                                                                       c.access_list))


def _candidate(policy: Policy, request: tables.AccessRequest, row: tables.AccessList,
               viewer: Actor) -> PromotionList | None:
    list_roles = [policy.roles[name] for name in row.granted_roles if name in policy.roles]
    common: dict[str, Any] = {"roles": request.roles, "assignments": request.resources,
              "list_roles": list_roles, "all_roles": policy.roles, "catalog": policy.catalog}
    if not list_roles or uncovered_items(**common):
        return None
    broader = broader_items(**common)
    return PromotionList(access_list=row.name, exact=not broader, broader=broader,
                         owned=viewer.admin or owns(viewer, row))


def _add_long_term_member(session: Session, list_name: str, request: tables.AccessRequest,
                          *, actor: str) -> None:
    membership = session.scalar(select(tables.Membership).where(
        tables.Membership.list_name == list_name,
        tables.Membership.member_name == request.user_name,
        tables.Membership.member_kind == MemberKind.USER))
    if membership is not None and membership.expires_at is None:
        return  # already a long-term member: the request simply ends
    if membership is None:
        action, before = "added", None
        session.add(tables.Membership(list_name=list_name, member_name=request.user_name,
                                      member_kind=MemberKind.USER, added_by=actor))
    else:  # an expiring membership becomes long-term
        action, before = "expiry_changed", {"expires": membership.expires_at.isoformat()
                                              if membership.expires_at else None}
        membership.expires_at = None
    session.flush()
    # The same event shape as tasks.access.membership writes.
    record(session, actor=actor, action=f"access_list.member_{action}",
           target_kind="access_list", target=list_name, principal_name=request.user_name,
           request_id=request.id, reason=f"promoted from request {request.id}", before=before,
           after={"member": request.user_name, "kind": "user", "expires": None})

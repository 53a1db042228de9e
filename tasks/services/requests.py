"""Access requests: what a user may request, requests, reviews, break-glass, extension and
promotion into an access list.

Each public function is one transaction. Policy is evaluated on the ledger's roles, access
lists and catalog (present accounts x present permission sets) at the database clock. After
the commit, a change to what a user should hold is announced with
``tasks.events.desired_state_changed``: the sync engine turns APPROVED requests into grants
(source ``request``) and revokes them when the request ends. The one place this module
touches grants is ``extend_request``: it moves the request's live grants' expiry in the same
transaction as the request's own, so access never lapses in between.

Rules (why: ops/decisions/requests.md): deny wins; a request is capped by the tightest of its
items' caps and needs the most approvals any permitting rule asks for; nobody reviews their
own request (break-glass is the one self-approval, and it is audited as an alert).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models.domain import MemberKind, RequestState, format_duration
from models.errors import InputError, NotFound, PolicyDenied
from models.ledger import tables
from models.ledger.audit import record
from models.ledger.base import database_time
from models.ledger.db import transaction
from models.ledger.enums import GrantState, ReviewDecision, SourceKind
from models.ledger.grants import extend_grant
from models.policy import may_review, requestable
from tasks import events
from tasks.services.queries import ledger_nesting, with_ancestors
from tasks.services.requests_policy import (
    Policy,
    RequestableView,
    extended_expiry,
    granted_duration,
    load_policy,
    request_terms,
    requestable_view,
    resolve_resource,
    uncovered_items,
)

Sessions = sessionmaker[Session]
LIST_HINT = "see the request with: grantledger get requests --user USER"


def requestable_for(*, sessions: Sessions, user: str) -> RequestableView:
    """What ``user`` may request now: roles, and permission sets grouped by account."""
    with sessions() as session:
        person = _active_user(session, user)
        policy = load_policy(session)
        offer = requestable(roles=policy.held_roles(person), catalog=policy.catalog,
                            all_roles=policy.roles)
        return requestable_view(person.name, offer, policy.catalog)


# --- shared checks -------------------------------------------------------------------------


def _active_user(session: Session, name: str) -> tables.User:
    person = session.get(tables.User, name)
    if person is None:
        raise NotFound("user", name)
    if person.suspended:
        raise PolicyDenied(f"user {name!r} is suspended ({person.suspended_reason or 'no reason'})",
                           hint=f"lift it first with: grantledger restore --user {name}")
    return person


def _locked_request(session: Session, request_id: str,
                    allowed: Iterable[RequestState]) -> tables.AccessRequest:
    # FOR UPDATE serialises reviews of one request: two last approvals at once both count.
    request = session.get(tables.AccessRequest, request_id, with_for_update=True)
    if request is None:
        raise NotFound("request", request_id)
    allowed = tuple(allowed)
    if request.state not in allowed:
        wanted = " or ".join(str(s) for s in allowed)
        raise PolicyDenied(f"request {request_id} is {request.state}; only {wanted} requests "
                           "can take this action", hint=LIST_HINT)
    return request


def _check_reviewer(session: Session, policy: Policy, request: tables.AccessRequest,
                    reviewer: str) -> None:
    """The reviewer exists, is not the requester, and may review every item requested."""
    person = _active_user(session, reviewer)
    if person.name == request.user_name:
        raise PolicyDenied(f"{reviewer} cannot review their own request {request.id}",
                           hint="ask another reviewer")
    if not may_review(reviewer_roles=policy.held_roles(person), request_roles=request.roles,
                      request_assignments=request.resources, all_roles=policy.roles,
                      catalog=policy.catalog):
        raise PolicyDenied(f"{reviewer} may not review request {request.id} "
                           f"(roles {request.roles}, resources {request.resources})",
                           hint="a reviewer needs a role whose review_requests covers every "
                                "requested role and resource")


def _audit(session: Session, request: tables.AccessRequest, *, actor: str, action: str,
           reason: str | None = None, before: Any = None, after: Any = None,
           **details: Any) -> None:
    record(session, actor=actor, action=action, target_kind="access_request",
           target=request.id, reason=reason, request_id=request.id,
           principal_name=request.user_name, before=before, after=after,
           details=details or None)


def _announce(*, users: Sequence[str] = (), lists: Sequence[str] = (), reason: str) -> None:
    events.desired_state_changed(users=list(users), lists=list(lists), reason=reason)


def _required(reason: str | None, what: str) -> str:
    if reason is None or not reason.strip():
        raise InputError(f"a {what} needs a reason", hint="give a reason", fields=("reason",))
    return reason.strip()


# --- requests ------------------------------------------------------------------------------


def create_request(*, sessions: Sessions, user: str, roles: Iterable[str] = (),
                   resources: Iterable[str] = (), reason: str, duration: timedelta | None = None,
                   actor: str, break_glass: bool = False) -> tables.AccessRequest:
    """A PENDING request for roles and/or assignments (``<account id or name>/<ps-name>``).

    The duration defaults to, and is capped by, the tightest cap of the items. With
    ``break_glass`` the request is approved at once by the requester (audited as an alert).
    """
    reason = _required(reason, "request")
    roles = sorted(set(roles))
    with transaction(sessions) as session:
        person = _active_user(session, user)
        policy = load_policy(session)
        items = sorted({resolve_resource(text, policy.catalog) or text for text in resources})
        if not roles and not items:
            raise InputError("a request needs at least one role or resource",
                             hint="name a role or a resource", fields=("roles", "resources"))
        terms = request_terms(held=policy.held_roles(person), catalog=policy.catalog,
                              all_roles=policy.roles, roles=roles, assignments=items)
        granted = granted_duration(terms, duration, break_glass=break_glass)
        request = tables.AccessRequest(
            user_name=person.name, roles=roles, resources=items, reason=reason,
            duration_seconds=int(granted.total_seconds()), required_approvals=terms.approvals,
            break_glass=break_glass)
        session.add(request)
        session.flush()
        _audit(session, request, actor=actor, action="request.created", reason=reason,
               roles=roles, resources=items, duration=format_duration(granted),
               asked=format_duration(duration) if duration else None,
               required_approvals=terms.approvals, break_glass=break_glass)
        if break_glass:
            _approve_break_glass(session, request, actor=actor)
    if break_glass:
        _announce(users=[request.user_name], reason=f"break-glass request {request.id}")
    return request


def _approve_break_glass(session: Session, request: tables.AccessRequest, *, actor: str) -> None:
    # The one self-approval: recorded as the requester's own review, and loudly audited.
    session.add(tables.RequestReview(request_id=request.id, reviewer=request.user_name,
                                     decision=ReviewDecision.APPROVE, reason="break-glass"))
    _approve(session, request, actor=actor)
    _audit(session, request, actor=actor, action="breakglass.used", reason=request.reason,
           alert=True, roles=request.roles, resources=request.resources,
           duration=format_duration(timedelta(seconds=request.duration_seconds)))


def _approve(session: Session, request: tables.AccessRequest, *, actor: str) -> None:
    now = database_time(session)
    request.state = RequestState.APPROVED
    request.decided_at = now
    request.expires_at = now + timedelta(seconds=request.duration_seconds)
    session.flush()
    _audit(session, request, actor=actor, action="request.approved",
           expires_at=request.expires_at.isoformat())


def review_request(*, sessions: Sessions, request_id: str, reviewer: str, decision: str,
                   reason: str | None = None) -> tables.AccessRequest:
    """Approve or deny a PENDING request. A deny ends it at once; approvals count up to the
    request's threshold, and the last one starts its clock (database time + duration)."""
    verdict = _decision(decision)
    with transaction(sessions) as session:
        request = _locked_request(session, request_id, [RequestState.PENDING])
        _check_reviewer(session, load_policy(session), request, reviewer)
        _record_review(session, request, reviewer, verdict, reason)
        if verdict is ReviewDecision.DENY:
            request.state, request.decided_at = RequestState.DENIED, database_time(session)
            _audit(session, request, actor=reviewer, action="request.denied", reason=reason)
        elif _approval_count(session, request.id) >= request.required_approvals:
            _active_user(session, request.user_name)  # suspended meanwhile: nothing to grant
            _approve(session, request, actor=reviewer)
    if request.state is RequestState.APPROVED:
        _announce(users=[request.user_name], reason=f"request {request.id} approved")
    return request


def _decision(decision: str) -> ReviewDecision:
    try:
        return ReviewDecision(decision.lower())
    except ValueError:
        raise InputError(f"unknown decision {decision!r}; use approve or deny") from None


def _record_review(session: Session, request: tables.AccessRequest, reviewer: str,
                   verdict: ReviewDecision, reason: str | None) -> None:
    earlier = select(tables.RequestReview.id).where(
        tables.RequestReview.request_id == request.id, tables.RequestReview.reviewer == reviewer)
    if session.scalar(earlier) is not None:
        raise PolicyDenied(f"{reviewer} already reviewed request {request.id}",
                           hint="one review per reviewer: ask another reviewer")
    session.add(tables.RequestReview(request_id=request.id, reviewer=reviewer,
                                     decision=verdict, reason=reason or ""))
    session.flush()
    _audit(session, request, actor=reviewer, action="request.reviewed", reason=reason,
           reviewer=reviewer, decision=verdict.value)


def _approval_count(session: Session, request_id: str) -> int:
    return session.scalar(select(func.count()).select_from(tables.RequestReview).where(
        tables.RequestReview.request_id == request_id,
        tables.RequestReview.decision == ReviewDecision.APPROVE)) or 0


# --- extension -----------------------------------------------------------------------------



def extend_request(*, sessions: Sessions, request_id: str, duration: timedelta,
                   reviewer: str) -> tables.AccessRequest:
    """Move an APPROVED request's expiry, and its live grants' with it, in one transaction:
    the same grant rows keep the assignment, so access never lapses."""
    if duration <= timedelta(0):
        raise InputError(f"duration {duration} must be longer than zero")
    with transaction(sessions) as session:
        request = _locked_request(session, request_id, [RequestState.APPROVED])
        policy = load_policy(session)
        _check_reviewer(session, policy, request, reviewer)
        if request.expires_at is None or request.decided_at is None \
                or request.expires_at <= policy.now:
            raise PolicyDenied(f"request {request_id} has expired; it cannot be extended",
                               hint="create a new request")
        before = request.expires_at
        request.expires_at = extended_expiry(
            decided_at=request.decided_at, expires_at=before, duration=duration,
            cap=_current_cap(session, policy, request))
        _move_grants(session, request)
        _audit(session, request, actor=reviewer, action="request.extended",
               before={"expires_at": before.isoformat()},
               after={"expires_at": request.expires_at.isoformat()},
               asked=format_duration(duration))
    _announce(users=[request.user_name], reason=f"request {request.id} extended")
    return request


def _current_cap(session: Session, policy: Policy, request: tables.AccessRequest) -> timedelta:
    """The request's cap under the requester's roles now (they may have changed)."""
    person = _active_user(session, request.user_name)
    terms = request_terms(held=policy.held_roles(person), catalog=policy.catalog,
                          all_roles=policy.roles, roles=request.roles,
                          assignments=request.resources)
    cap = terms.break_glass_max_duration if request.break_glass else terms.max_duration
    if cap is None:
        raise PolicyDenied(f"break-glass no longer covers request {request.id}")
    return cap


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


def promote_request(*, sessions: Sessions, request_id: str, access_list: str, reviewer: str,
                    admin: bool = False) -> tables.AccessRequest:
    """Turn a PENDING or APPROVED request into long-term access: the user joins
    ``access_list``, which must grant everything requested. The reviewer must be allowed to
    review the request and own the list (or ``admin``, e.g. an API admin token)."""
    with transaction(sessions) as session:
        request = _locked_request(session, request_id,
                                  [RequestState.PENDING, RequestState.APPROVED])
        target = session.get(tables.AccessList, access_list)
        if target is None:
            raise NotFound("access-list", access_list)
        policy = load_policy(session)
        _check_reviewer(session, policy, request, reviewer)
        _check_promotion(policy, request, target, reviewer=reviewer, admin=admin)
        _active_user(session, request.user_name)
        _add_long_term_member(session, target.name, request, actor=reviewer)
        before, request.state = request.state, RequestState.PROMOTED
        request.promoted_to, request.decided_at = target.name, request.decided_at or policy.now
        _audit(session, request, actor=reviewer, action="request.promoted",
               before={"state": str(before)}, after={"state": "PROMOTED"},
               access_list=target.name)
        lists = sorted(with_ancestors(ledger_nesting(session), [target.name]))
    _announce(users=[request.user_name], lists=lists,
              reason=f"request {request.id} promoted to {target.name}")
    return request


def _check_promotion(policy: Policy, request: tables.AccessRequest, target: tables.AccessList,
                     *, reviewer: str, admin: bool) -> None:
    if not admin and reviewer not in target.owners:
        raise PolicyDenied(f"{reviewer} does not own access list {target.name}",
                           hint=f"ask an owner: {', '.join(target.owners) or '(none)'}")
    list_roles = [policy.roles[name] for name in target.granted_roles if name in policy.roles]
    missing = uncovered_items(roles=request.roles, assignments=request.resources,
                              list_roles=list_roles, all_roles=policy.roles,
                              catalog=policy.catalog)
    if missing:
        raise PolicyDenied(f"access list {target.name} does not grant {', '.join(missing)}",
                           hint="promote into a list whose roles grant everything requested")


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
        action, before = "expiry_changed", {"expires": membership.expires_at.isoformat()}
        membership.expires_at = None
    session.flush()
    # The same event shape as tasks.services.membership writes.
    record(session, actor=actor, action=f"access_list.member_{action}",
           target_kind="access_list", target=list_name, principal_name=request.user_name,
           request_id=request.id, reason=f"promoted from request {request.id}", before=before,
           after={"member": request.user_name, "kind": "user", "expires": None})


# --- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestView:
    id: str
    user: str
    state: str
    roles: list[str]
    resources: list[str]
    reason: str
    duration: str
    required_approvals: int
    approved_by: list[str]
    denied_by: list[str]
    break_glass: bool
    created_at: datetime
    decided_at: datetime | None
    expires_at: datetime | None
    promoted_to: str | None


def list_requests(*, sessions: Sessions, user: str | None = None,
                  state: str | RequestState | None = None) -> list[RequestView]:
    """Requests, oldest first, optionally of one user and/or in one state."""
    statement = select(tables.AccessRequest).order_by(tables.AccessRequest.created_at,
                                                      tables.AccessRequest.id)
    if user is not None:
        statement = statement.where(tables.AccessRequest.user_name == user)
    if state is not None:
        statement = statement.where(tables.AccessRequest.state == _state(state))
    with sessions() as session:
        requests = list(session.scalars(statement))
        return _views(session, requests)


def get_request(*, sessions: Sessions, request_id: str) -> RequestView:
    """One request with its reviews; ``NotFound`` when there is none."""
    with sessions() as session:
        request = session.get(tables.AccessRequest, request_id)
        if request is None:
            raise NotFound("request", request_id)
        return _views(session, [request])[0]


def _state(state: str | RequestState) -> RequestState:
    try:
        return RequestState(str(state).upper())
    except ValueError:
        known = ", ".join(s.value for s in RequestState)
        raise InputError(f"unknown request state {state!r}; one of {known}") from None


def _views(session: Session, requests: list[tables.AccessRequest]) -> list[RequestView]:
    reviews: dict[str, dict[ReviewDecision, list[str]]] = {}
    found = session.scalars(select(tables.RequestReview).where(
        tables.RequestReview.request_id.in_([r.id for r in requests]))
        .order_by(tables.RequestReview.id))
    for review in found:
        by = reviews.setdefault(review.request_id, {})
        by.setdefault(review.decision, []).append(review.reviewer)
    return [_view(r, reviews.get(r.id, {})) for r in requests]


def _view(request: tables.AccessRequest,
          reviews: dict[ReviewDecision, list[str]]) -> RequestView:
    return RequestView(
        id=request.id, user=request.user_name, state=str(request.state),
        roles=list(request.roles), resources=list(request.resources), reason=request.reason,
        duration=format_duration(timedelta(seconds=request.duration_seconds)),
        required_approvals=request.required_approvals,
        approved_by=reviews.get(ReviewDecision.APPROVE, []),
        denied_by=reviews.get(ReviewDecision.DENY, []), break_glass=request.break_glass,
        created_at=request.created_at, decided_at=request.decided_at,
        expires_at=request.expires_at, promoted_to=request.promoted_to)

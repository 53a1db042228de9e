"""Access requests: what a user may request, requests, reviews and break-glass (extension
and promotion: ``tasks.access.request_changes``).

Each public function is one transaction and takes the acting or reading ``Actor``
(``tasks.access.permissions``). Policy is evaluated on the ledger's roles, access lists and
catalog at the database clock, at every decision: an approval re-checks the requester's
right, approvals needed and cap. After the commit, a change to what a user should hold is
announced with ``tasks.events.desired_state_changed``; the sync engine turns APPROVED
requests into grants (source ``request``) while the requester may still ask for them.

Rules (why: ops/decisions/requests.md): deny wins; a request is capped by the tightest of its
items' caps and needs the most approvals any permitting rule asks for; nobody reviews their
own request (break-glass is the one self-approval, and it is audited as an alert).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from models.domain import RequestState, format_duration
from models.errors import InputError, NotFound, PolicyDenied
from models.ledger import tables
from models.ledger.audit import record, record_many
from models.ledger.base import database_time, db_now
from models.ledger.db import transaction
from models.ledger.enums import ReviewDecision
from models.policy import may_review, requestable
from tasks import events
from tasks.access.permissions import (
    Actor,
    active_user,
    can_review,
    own_scope,
    require_person,
    visible_requests,
)
from tasks.access.requests_policy import (
    Policy,
    RequestableView,
    RequestTerms,
    granted_duration,
    load_policy,
    request_terms,
    requestable_view,
    resolve_resource,
)

Sessions = sessionmaker[Session]
LIST_HINT = "see the request with: grantledger get requests --user USER"


def requestable_for(*, sessions: Sessions, viewer: Actor,
                    user: str | None = None) -> RequestableView:
    """What ``user`` (default: the viewer) may request now: roles, and permission sets grouped
    by account. A person sees only their own; auditors and operators anyone's."""
    if user is None and viewer.user_id is None:
        raise InputError("an operator is no user: name one", hint="pass ?user=USER / --user")
    with sessions() as session:
        person = active_user(session, name=own_scope(viewer, user) or viewer.name)
        policy = load_policy(session)
        held = policy.held_roles(person)
        offer = requestable(roles=held, catalog=policy.catalog, all_roles=policy.roles)
        return requestable_view(person.name, offer, policy.catalog, terms=partial(
            request_terms, held=held, catalog=policy.catalog, all_roles=policy.roles))


def reviewers_of(*, sessions: Sessions, request_id: str) -> list[str]:
    """Who may review the request now (active users whose roles cover every item, never the
    requester): the people a surface offers the decision to. Deciding re-checks all of it."""
    with sessions() as session:
        request = session.get(tables.AccessRequest, request_id)
        if request is None:
            raise NotFound("request", request_id)
        policy = load_policy(session)
        people = session.scalars(select(tables.User).where(
            tables.User.suspended.is_(False), tables.User.id != request.user_id)
            .order_by(tables.User.name))
        return [person.name for person in people if may_review(
            reviewer_roles=policy.held_roles(person), request_roles=request.roles,
            request_assignments=request.resources, all_roles=policy.roles,
            catalog=policy.catalog)]


# --- shared checks -------------------------------------------------------------------------


def locked_request(session: Session, request_id: str,
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


def check_reviewer(session: Session, policy: Policy, request: tables.AccessRequest,
                   reviewer: Actor) -> None:
    """The reviewer is an active person, not the requester, and may review every item."""
    require_person(reviewer, "a review")
    person = active_user(session, user_id=reviewer.user_id)
    if reviewer.is_person(request.user_id):
        raise PolicyDenied(f"{person.name} cannot review their own request {request.id}",
                           hint="ask another reviewer")
    if not may_review(reviewer_roles=policy.held_roles(person), request_roles=request.roles,
                      request_assignments=request.resources, all_roles=policy.roles,
                      catalog=policy.catalog):
        raise PolicyDenied(f"{person.name} may not review request {request.id} "
                           f"(roles {request.roles}, resources {request.resources})",
                           hint="a reviewer needs a role whose review_requests covers every "
                                "requested role and resource")


def current_terms(session: Session, policy: Policy,
                  request: tables.AccessRequest) -> RequestTerms:
    """The request's terms under the policy in force now; ``PolicyDenied`` naming why the
    requester may no longer ask (gone, suspended, a role or membership removed)."""
    if request.user_id is None:
        raise PolicyDenied(f"request {request.id} belongs to no known person "
                           "(filed before user ids, by a user since deleted)")
    try:
        person = active_user(session, user_id=request.user_id)
    except NotFound:
        raise PolicyDenied(f"{request.user_name} (id {request.user_id}) was deleted") from None
    return request_terms(held=policy.held_roles(person), catalog=policy.catalog,
                         all_roles=policy.roles, roles=request.roles,
                         assignments=request.resources)


def deny_lost_right(session: Session, request: tables.AccessRequest, why: PolicyDenied, *,
                    actor: Actor) -> None:
    """End a request whose requester lost the right to ask: DENIED, with the reason."""
    request.state, request.decided_at = RequestState.DENIED, database_time(session)
    audit_request(session, request, actor=actor.label, action="request.denied",
                  reason=f"the right to request is gone: {why.message}", right_lost=True)


def audit_request(session: Session, request: tables.AccessRequest, *, actor: str, action: str,
                  reason: str | None = None, before: Any = None, after: Any = None,
                  **details: Any) -> None:
    """One audit event about ``request``."""
    record(session, actor=actor, action=action, target_kind="access_request",
           target=request.id, reason=reason, request_id=request.id,
           principal_name=request.user_name, before=before, after=after,
           details=details or None)


def announce(*, users: Sequence[str] = (), lists: Sequence[str] = (), reason: str) -> None:
    """Tell the sync whose desired state moved (after the commit)."""
    events.desired_state_changed(users=list(users), lists=list(lists), reason=reason)


def _required(reason: str | None, what: str) -> str:
    if reason is None or not reason.strip():
        raise InputError(f"a {what} needs a reason", hint="give a reason", fields=("reason",))
    return reason.strip()


# --- requests ------------------------------------------------------------------------------


def create_request(*, sessions: Sessions, actor: Actor, user: str | None = None,
                   roles: Iterable[str] = (), resources: Iterable[str] = (), reason: str,
                   duration: timedelta | None = None,
                   break_glass: bool = False) -> tables.AccessRequest:
    """A PENDING request for roles and/or assignments (``<account id or name>/<ps-name>``).

    A person requests for themself; an operator (the CLI) names the ``user``. The duration
    defaults to, and is capped by, the tightest cap of the items. With ``break_glass`` the
    request is approved at once by the requester (audited as an alert).
    """
    reason = _required(reason, "request")
    roles = sorted(set(roles))
    with transaction(sessions) as session:
        person = _requester(session, actor, user)
        policy = load_policy(session)
        items = sorted({resolve_resource(text, policy.catalog) or text for text in resources})
        if not roles and not items:
            raise InputError("a request needs at least one role or resource",
                             hint="name a role or a resource", fields=("roles", "resources"))
        terms = request_terms(held=policy.held_roles(person), catalog=policy.catalog,
                              all_roles=policy.roles, roles=roles, assignments=items)
        granted = granted_duration(terms, duration, break_glass=break_glass)
        request = tables.AccessRequest(
            user_name=person.name, user_id=person.id, roles=roles, resources=items,
            reason=reason, duration_seconds=int(granted.total_seconds()),
            required_approvals=terms.approvals, break_glass=break_glass)
        session.add(request)
        session.flush()
        audit_request(session, request, actor=actor.label, action="request.created",
                      reason=reason, roles=roles, resources=items,
                      duration=format_duration(granted),
                      asked=format_duration(duration) if duration else None,
                      required_approvals=terms.approvals, break_glass=break_glass)
        if break_glass:
            _approve_break_glass(session, request, actor=actor.label)
    if break_glass:
        announce(users=[request.user_name], reason=f"break-glass request {request.id}")
    return request


def _requester(session: Session, actor: Actor, user: str | None) -> tables.User:
    if actor.user_id is not None:
        if user is not None and user != actor.name:
            raise PolicyDenied(f"{actor.name} may request only for themself, not {user}")
        return active_user(session, user_id=actor.user_id)
    if user is None:
        raise InputError("an operator is no user: name who needs the access",
                         hint="pass --user USER")
    return active_user(session, name=user)


def _approve_break_glass(session: Session, request: tables.AccessRequest, *, actor: str) -> None:
    # The one self-approval: recorded as the requester's own review, and loudly audited.
    session.add(tables.RequestReview(request_id=request.id, reviewer=request.user_name,
                                     reviewer_id=request.user_id,
                                     decision=ReviewDecision.APPROVE, reason="break-glass"))
    _approve(session, request, actor=actor)
    audit_request(session, request, actor=actor, action="breakglass.used",
                  reason=request.reason, alert=True, roles=request.roles,
                  resources=request.resources,
                  duration=format_duration(timedelta(seconds=request.duration_seconds)))


def _approve(session: Session, request: tables.AccessRequest, *, actor: str) -> None:
    now = database_time(session)
    request.state = RequestState.APPROVED
    request.decided_at = now
    request.expires_at = now + timedelta(seconds=request.duration_seconds)
    session.flush()
    audit_request(session, request, actor=actor, action="request.approved",
                  expires_at=request.expires_at.isoformat())


def review_request(*, sessions: Sessions, request_id: str, actor: Actor, decision: str,
                   reason: str | None = None) -> tables.AccessRequest:
    """Approve or deny a PENDING request as ``actor`` (a person). A deny ends it at once.

    Each approval re-evaluates the requester's right against the policy in force: a request
    whose right is gone is DENIED with that reason; the approvals needed and the duration cap
    are the current ones. The last approval starts its clock (database time + duration).
    """
    verdict = _decision(decision)
    with transaction(sessions) as session:
        request = locked_request(session, request_id, [RequestState.PENDING])
        policy = load_policy(session)
        check_reviewer(session, policy, request, actor)
        _record_review(session, request, actor, verdict, reason)
        if verdict is ReviewDecision.DENY:
            request.state, request.decided_at = RequestState.DENIED, database_time(session)
            audit_request(session, request, actor=actor.label, action="request.denied",
                          reason=reason)
        else:
            _count_approval(session, policy, request, actor=actor)
    if request.state is RequestState.APPROVED:
        announce(users=[request.user_name], reason=f"request {request.id} approved")
    return request


def _count_approval(session: Session, policy: Policy, request: tables.AccessRequest, *,
                    actor: Actor) -> None:
    try:
        terms = current_terms(session, policy, request)
    except PolicyDenied as lost:
        deny_lost_right(session, request, lost, actor=actor)
        return
    _apply_current_terms(session, request, terms, actor=actor)
    if _approval_count(session, request.id) >= request.required_approvals:
        _approve(session, request, actor=actor.label)


def _apply_current_terms(session: Session, request: tables.AccessRequest,
                         terms: RequestTerms, *, actor: Actor) -> None:
    """The approvals needed and the duration cap as the policy says now (audited if moved)."""
    cap = terms.break_glass_max_duration if request.break_glass else terms.max_duration
    seconds = min(request.duration_seconds, int(cap.total_seconds())) if cap else 0
    before = {"required_approvals": request.required_approvals,
              "duration": format_duration(timedelta(seconds=request.duration_seconds))}
    if (terms.approvals, seconds) == (request.required_approvals, request.duration_seconds):
        return
    request.required_approvals, request.duration_seconds = terms.approvals, seconds
    audit_request(session, request, actor=actor.label, action="request.terms_changed",
                  before=before, after={"required_approvals": terms.approvals,
                                        "duration": format_duration(timedelta(seconds=seconds))},
                  reason="the policy changed since the request was filed")


def _decision(decision: str) -> ReviewDecision:
    try:
        return ReviewDecision(decision.lower())
    except ValueError:
        raise InputError(f"unknown decision {decision!r}; use approve or deny") from None


def _record_review(session: Session, request: tables.AccessRequest, reviewer: Actor,
                   verdict: ReviewDecision, reason: str | None) -> None:
    earlier = select(tables.RequestReview.id).where(
        tables.RequestReview.request_id == request.id,
        tables.RequestReview.reviewer_id == reviewer.user_id)
    if session.scalar(earlier) is not None:
        raise PolicyDenied(f"{reviewer.name} already reviewed request {request.id}",
                           hint="one review per reviewer: ask another reviewer")
    session.add(tables.RequestReview(request_id=request.id, reviewer=reviewer.name,
                                     reviewer_id=reviewer.user_id, decision=verdict,
                                     reason=reason or ""))
    session.flush()
    audit_request(session, request, actor=reviewer.label, action="request.reviewed",
                  reason=reason, reviewer=reviewer.name, reviewer_id=reviewer.user_id,
                  decision=verdict.value)


def _approval_count(session: Session, request_id: str) -> int:
    return session.scalar(select(func.count()).select_from(tables.RequestReview).where(
        tables.RequestReview.request_id == request_id,
        tables.RequestReview.decision == ReviewDecision.APPROVE)) or 0


def close_requests_of(session: Session, *, user_id: str, reason: str,
                      actor: str) -> tuple[list[str], list[str]]:
    """A person stops being one (deleted, suspended): their PENDING requests are denied and
    their APPROVED ones ended (EXPIRED), in the caller's transaction; (denied, ended) ids."""
    return (_close(session, user_id, RequestState.PENDING, RequestState.DENIED, reason, actor),
            _close(session, user_id, RequestState.APPROVED, RequestState.EXPIRED, reason,
                   actor))


def _close(session: Session, user_id: str, state: RequestState, to: RequestState, reason: str,
           actor: str) -> list[str]:
    statement = (update(tables.AccessRequest)
                 .where(tables.AccessRequest.user_id == user_id,
                        tables.AccessRequest.state == state)
                 .values(state=to, decided_at=db_now())
                 .returning(tables.AccessRequest.id, tables.AccessRequest.user_name)
                 .execution_options(synchronize_session=False))
    closed = sorted(session.execute(statement).all())
    action = "request.denied" if to is RequestState.DENIED else "request.expired"
    record_many(session, [{
        "actor": actor, "action": action, "target_kind": "access_request", "target": i,
        "request_id": i, "principal_name": name, "reason": reason} for i, name in closed])
    return [i for i, _ in closed]


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
    pending_extension: str | None = None  # an extension awaiting approvals
    extension_approvals: int = 0


def list_requests(*, sessions: Sessions, viewer: Actor, user: str | None = None,
                  state: str | RequestState | None = None) -> list[RequestView]:
    """Requests the viewer may read, oldest first, optionally of one user and/or in one
    state: auditors all, a person their own and those they may review."""
    statement = select(tables.AccessRequest).order_by(tables.AccessRequest.created_at,
                                                      tables.AccessRequest.id)
    if user is not None:
        statement = statement.where(tables.AccessRequest.user_name == user)
    if state is not None:
        statement = statement.where(tables.AccessRequest.state == _state(state))
    with sessions() as session:
        return _views(session, visible_requests(session, viewer, session.scalars(statement)))


def reviewable_requests(*, sessions: Sessions, viewer: Actor) -> list[RequestView]:
    """The PENDING requests the viewer may review (``can_review``: not their own, a role of
    theirs reviews every item), oldest first; none for an operator, who reviews nothing."""
    statement = (select(tables.AccessRequest)
                 .where(tables.AccessRequest.state == RequestState.PENDING)
                 .order_by(tables.AccessRequest.created_at, tables.AccessRequest.id))
    with sessions() as session:
        policy = load_policy(session)
        return _views(session, [r for r in session.scalars(statement)
                                if can_review(session, viewer, r, policy=policy)])


def get_request(*, sessions: Sessions, viewer: Actor, request_id: str) -> RequestView:
    """One request with its reviews; ``NotFound`` when there is none the viewer may read."""
    with sessions() as session:
        request = session.get(tables.AccessRequest, request_id)
        if request is None or not visible_requests(session, viewer, [request]):
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
        expires_at=request.expires_at, promoted_to=request.promoted_to,
        pending_extension=(format_duration(timedelta(seconds=request.extension_seconds))
                           if request.extension_seconds else None),
        extension_approvals=len(request.extension_approvers or ()))

"""Access requests: what may be requested, requests, and their reviews.

A request is always made by the caller (a user token; the body has no "user"). Reviews
(approve, deny, extend, promote) are the caller's own, and the service decides whether they
count: nobody reviews their own request, and a reviewer needs a role that lets them review
every item. The admin token acts as no person, so it cannot request or review (it may
promote). Reads are filtered by ``tasks.access.permissions``: a user token sees its own
requests and those it may review.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from models.domain import RequestState
from tasks.access import request_changes, requests
from tasks.access.permissions import Actor
from tasks.access.request_changes import PromotionList
from tasks.access.requests import RequestView
from tasks.access.requests_policy import RequestableView
from workers.api.auth import CallerDep, PersonDep, RuntimeDep
from workers.api.errors import ApiError
from workers.api.pagination import Page, PageDep, page_of
from workers.api.schemas import Decision, Extension, Name, NewRequest, PathName, Promotion
from workers.runtime import Runtime

router = APIRouter(tags=["requests"])


@router.get("/requestable", response_model=RequestableView)
def requestable(runtime: RuntimeDep, caller: CallerDep,
                user: Annotated[Name | None, Query(description="default: the caller; another "
                                                   "user needs the admin token or auditor")
                                ] = None) -> RequestableView:
    """What a user (the caller by default) may request, grouped by account."""
    if user is None and caller.admin:
        raise ApiError(422, "the admin token acts as no user: name one with ?user=USER")
    return requests.requestable_for(sessions=runtime.sessions, viewer=caller, user=user)


@router.get("/requests", response_model=Page[RequestView])
def list_requests(
    runtime: RuntimeDep, caller: CallerDep, page: PageDep,
    user: Annotated[Name | None, Query()] = None,
    state: Annotated[RequestState | None, Query()] = None,
) -> dict[str, Any]:
    """Requests the caller may read (their own, those they may review; the admin and
    auditors all), oldest first, optionally of one user and/or in one state."""
    return page_of(requests.list_requests(sessions=runtime.sessions, viewer=caller, user=user,
                                          state=state), page)


@router.post("/requests", response_model=RequestView, status_code=201)
def create_request(runtime: RuntimeDep, requester: PersonDep, body: NewRequest) -> RequestView:
    """Request roles and/or resources for the caller (pending until reviewed)."""
    created = requests.create_request(
        sessions=runtime.sessions, actor=requester, roles=body.roles, resources=body.resources,
        reason=body.reason, duration=body.duration, break_glass=body.break_glass)
    return requests.get_request(sessions=runtime.sessions, viewer=requester,
                                request_id=created.id)


@router.get("/requests/{request_id}", response_model=RequestView)
def get_request(runtime: RuntimeDep, caller: CallerDep, request_id: PathName) -> RequestView:
    """One request the caller may read (404 otherwise)."""
    return requests.get_request(sessions=runtime.sessions, viewer=caller, request_id=request_id)


@router.get("/requests/{request_id}/promotion-lists", response_model=list[PromotionList])
def promotion_lists(runtime: RuntimeDep, caller: CallerDep,
                    request_id: PathName) -> list[PromotionList]:
    """The access lists that grant everything the request asks for: those that cover it
    exactly first; others need ``confirm_broader`` to promote into."""
    return request_changes.promotion_lists(sessions=runtime.sessions, request_id=request_id,
                                           viewer=caller)


@router.post("/requests/{request_id}/approve", response_model=RequestView)
def approve_request(runtime: RuntimeDep, reviewer: PersonDep, request_id: PathName,
                    body: Decision) -> RequestView:
    """Approve a pending request as the caller (it counts toward its approvals)."""
    return _review(runtime, request_id, reviewer=reviewer, decision="approve", body=body)


@router.post("/requests/{request_id}/deny", response_model=RequestView)
def deny_request(runtime: RuntimeDep, reviewer: PersonDep, request_id: PathName,
                 body: Decision) -> RequestView:
    """Deny a pending request as the caller (it ends at once)."""
    return _review(runtime, request_id, reviewer=reviewer, decision="deny", body=body)


def _review(runtime: Runtime, request_id: str, *, reviewer: Actor, decision: str,
            body: Decision) -> RequestView:
    requests.review_request(sessions=runtime.sessions, request_id=request_id,
                            actor=reviewer, decision=decision, reason=body.reason)
    return requests.get_request(sessions=runtime.sessions, viewer=reviewer,
                                request_id=request_id)


@router.post("/requests/{request_id}/cancel", response_model=RequestView)
def cancel_request(runtime: RuntimeDep, requester: PersonDep,
                   request_id: PathName) -> RequestView:
    """Withdraw the caller's own pending request (it ends DENIED, "cancelled by the
    requester")."""
    request_changes.cancel_request(sessions=runtime.sessions, request_id=request_id,
                                   actor=requester)
    return requests.get_request(sessions=runtime.sessions, viewer=requester,
                                request_id=request_id)


@router.post("/requests/{request_id}/extend", response_model=RequestView)
def extend_request(runtime: RuntimeDep, reviewer: PersonDep, request_id: PathName,
                   body: Extension) -> RequestView:
    """Approve moving an approved request's expiry (and its live grants'), without a gap; it
    moves once as many reviewers approved as the request needs."""
    request_changes.extend_request(sessions=runtime.sessions, request_id=request_id,
                                   duration=body.duration, actor=reviewer)
    return requests.get_request(sessions=runtime.sessions, viewer=reviewer,
                                request_id=request_id)


@router.post("/requests/{request_id}/promote", response_model=RequestView)
def promote_request(runtime: RuntimeDep, caller: CallerDep, request_id: PathName,
                    body: Promotion) -> RequestView:
    """Turn a request into long-term membership of an access list the caller owns (the
    admin: any list)."""
    request_changes.promote_request(sessions=runtime.sessions, request_id=request_id,
                                    access_list=body.access_list, actor=caller,
                                    confirm_broader=body.confirm_broader)
    return requests.get_request(sessions=runtime.sessions, viewer=caller,
                                request_id=request_id)

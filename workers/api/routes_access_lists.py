"""Access-list membership and periodic reviews.

Only an access list's owners change its members (a non-owner gets 403), and an owner never
adds themself: another owner or the admin does (``tasks.access.permissions``). The admin
token may change any list. A review is an
owner's act, so it needs a user token.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from tasks.access import membership, reviews
from tasks.access.membership import MembershipChange
from tasks.access.reviews import AccessReview
from workers.api.auth import CallerDep, PersonDep, RuntimeDep
from workers.api.schemas import AccessReviewBody, MemberChange, Name, PathName, Text

router = APIRouter(prefix="/access-lists", tags=["access lists"])


@router.post("/{name}/members", response_model=MembershipChange)
def add_member(runtime: RuntimeDep, caller: CallerDep, name: PathName,
               body: MemberChange) -> MembershipChange:
    """Add a user or a nested list (or move its expiry); owners, or the admin."""
    return membership.add_member(
        sessions=runtime.sessions, list_name=name, member=body.member, kind=body.kind,
        expires=body.expires, actor=caller, reason=body.reason,
        max_nesting_depth=runtime.settings.max_nesting_depth)


@router.delete("/{name}/members", response_model=MembershipChange)
def remove_member(
    runtime: RuntimeDep, caller: CallerDep, name: PathName,
    member: Annotated[Name, Query(description="the user or access list to remove")],
    kind: Annotated[Literal["user", "access_list"], Query()] = "user",
    reason: Annotated[Text | None, Query()] = None,
) -> MembershipChange:
    """Remove a member; owners, or the admin."""
    return membership.remove_member(
        sessions=runtime.sessions, list_name=name, member=member, kind=kind,
        actor=caller, reason=reason)


@router.post("/{name}/reviews", response_model=AccessReview, status_code=201)
def review_access_list(runtime: RuntimeDep, reviewer: PersonDep, name: PathName,
                       body: AccessReviewBody) -> AccessReview:
    """Record the caller's (an owner's) periodic review, removing the members named."""
    return reviews.review_access_list(sessions=runtime.sessions, list_name=name,
                                      reviewer=reviewer.name, remove=body.remove,
                                      notes=body.notes)

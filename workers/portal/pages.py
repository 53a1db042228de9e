"""The portal's pages: My access, Request access, a request, Reviews.

Every handler learns the viewer (an ``Actor``) from ``current_user`` and calls the same
``tasks`` service functions as the API routes, passing it as ``actor=`` or ``viewer=``; the
services decide what is allowed and filter what is shown, and their refusal is shown as it
is. Forms post back here (CSRF
checked) and answer with a redirect to the page that shows the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from models.durations import parse_duration
from models.errors import GrantledgerError, InputError
from tasks.access import permissions, queries, request_changes, requests
from tasks.access.permissions import Actor
from workers.api.errors import status_for
from workers.portal.render import PAGE_SIZE, page
from workers.portal.session import check_csrf, current_user, runtime_of

router = APIRouter(include_in_schema=False)
Viewer = Annotated[Actor, Depends(current_user)]
Csrf = Depends(check_csrf)
FINAL_STATES = {"DENIED", "EXPIRED", "PROMOTED"}


def refused(request: Request, err: GrantledgerError) -> HTMLResponse:
    """A service's refusal (or a bad input) as a page with its message and hint."""
    return page(request, "message.html", status=status_for(err), title="Not done",
                message=err.message, hint=err.hint,
                link=(request.headers.get("referer") or "/", "Back"))


@dataclass(frozen=True)
class Window:
    """One page of a long list and the offsets of the pages around it."""

    items: list[Any]
    total: int
    offset: int
    previous: int | None
    next: int | None


def window(items: list[Any], offset: int) -> Window:
    """The page of ``items`` that starts at ``offset``."""
    offset = max(0, offset)
    return Window(items=items[offset:offset + PAGE_SIZE], total=len(items), offset=offset,
                  previous=max(0, offset - PAGE_SIZE) if offset else None,
                  next=offset + PAGE_SIZE if offset + PAGE_SIZE < len(items) else None)


def done(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


@router.get("/", response_class=HTMLResponse)
def my_access(request: Request, viewer: Viewer) -> Response:
    """My active grants (with console links and CLI profiles), lists and requests."""
    from tasks.admin import aws_config
    from tasks.sync.views import grant_rows

    runtime = runtime_of(request)
    settings = runtime.settings
    with runtime.sessions() as session:
        grants = grant_rows(session, user=viewer.name, state="ACTIVE")
    profiles = aws_config.render(aws_config.config_sections(
        held_of(grants), start_url=settings.sso_start_url, sso_region=settings.aws_region,
        region=settings.aws_region)) if grants and settings.sso_start_url else None
    person = queries.get_user(sessions=runtime.sessions, viewer=viewer, name=viewer.name)
    mine = requests.list_requests(sessions=runtime.sessions, viewer=viewer,
                                  user=viewer.name)[::-1][:PAGE_SIZE]
    return page(request, "my_access.html", title="My access", grants=grants,
                start_url=(settings.sso_start_url or "").rstrip("/"), profiles=profiles,
                lists=person.lists, requests=mine)


def held_of(grants: list[dict[str, Any]]) -> list[Any]:
    """The (account, permission set) pairs of grant rows, as ``aws-config`` profiles take
    them (a row's account reads ``<id> (<name>)``)."""
    from tasks.admin.aws_config import HeldAssignment

    pairs = set()
    for grant in grants:
        account_id, _, name = grant["account"].partition(" ")
        pairs.add(HeldAssignment(name.strip("()") or account_id, grant["permission_set"],
                                 account_id))
    return sorted(pairs)


@router.get("/request", response_class=HTMLResponse)
def request_form(request: Request, viewer: Viewer, q: str = "") -> Response:
    """What I may request, grouped by account, searchable; the form to ask."""
    offer = requests.requestable_for(sessions=runtime_of(request).sessions, viewer=viewer)
    needle = q.strip().lower()
    accounts = [a for a in offer.accounts if not needle or needle in
                f"{a.account_id} {a.account_name} {' '.join(a.permission_sets)}".lower()]
    roles = {name: cap for name, cap in offer.roles.items()
             if not needle or needle in name.lower()}
    return page(request, "request.html", title="Request access", offer=offer,
                accounts=accounts, roles=roles, q=q)


@router.post("/request", dependencies=[Csrf])
def submit_request(
    request: Request, viewer: Viewer, reason: Annotated[str, Form()] = "",
    duration: Annotated[str, Form()] = "", resource: Annotated[list[str], Form()] = [],  # noqa: B006
    role: Annotated[list[str], Form()] = [], break_glass: Annotated[bool, Form()] = False,  # noqa: B006
) -> Response:
    """Ask for the chosen items as the viewer; the request's page shows what follows."""
    try:
        asked = parse_duration(duration) if duration.strip() else None
    except ValueError as err:
        return refused(request, InputError(str(err), hint="write a duration like 30m or 2h"))
    try:
        created = requests.create_request(
            sessions=runtime_of(request).sessions, actor=viewer, roles=role, resources=resource,
            reason=reason, duration=asked, break_glass=break_glass)
    except GrantledgerError as err:
        return refused(request, err)
    return done(f"/requests/{created.id}")


def progress_context(request: Request, viewer: Actor, request_id: str) -> dict[str, Any]:
    """A request, the grants it made (their states show provisioning), and which of its
    actions the viewer is offered (the services still decide)."""
    from models.ledger import tables
    from tasks.sync.views import grant_rows

    runtime = runtime_of(request)
    shown = requests.get_request(sessions=runtime.sessions, viewer=viewer,
                                 request_id=request_id)
    with runtime.sessions() as session:
        grants = grant_rows(session, source=("request", request_id))
        row = session.get(tables.AccessRequest, request_id)
        reviewer = row is not None and permissions.can_review(session, viewer, row)
        requester = row is not None and viewer.is_person(row.user_id)
    settled = shown.state in FINAL_STATES or (
        shown.state == "APPROVED" and grants and all(g["state"] == "ACTIVE" for g in grants))
    return {"shown": shown, "grants": grants, "settled": settled, "reviewer": reviewer,
            "requester": requester}


@router.get("/requests/{request_id}", response_class=HTMLResponse)
def request_page(request: Request, viewer: Viewer, request_id: str,
                 part: str = "") -> Response:
    """A request: state, reviews, provisioning, and its actions (Approve/Deny and Extend for
    its reviewers, Cancel for its requester). With ``?part=progress``, only the part that
    changes (portal.js polls it, so the Extend form appears once it is approved)."""
    try:
        context = progress_context(request, viewer, request_id)
    except GrantledgerError as err:
        return refused(request, err)
    if part == "progress":
        return page(request, "_progress.html", **context)
    return page(request, "request_page.html", title=f"Request {request_id}", **context)


@router.post("/requests/{request_id}/{decision}", dependencies=[Csrf])
def review(request: Request, viewer: Viewer, request_id: str, decision: str,
           comment: Annotated[str, Form()] = "", duration: Annotated[str, Form()] = "",
           ) -> Response:
    """Approve, deny, extend or cancel a request as the viewer (the service decides)."""
    sessions = runtime_of(request).sessions
    try:
        if decision in ("approve", "deny"):
            requests.review_request(sessions=sessions, request_id=request_id, actor=viewer,
                                    decision=decision, reason=comment or None)
        elif decision == "extend":
            request_changes.extend_request(sessions=sessions, request_id=request_id,
                                           duration=parse_duration(duration), actor=viewer)
        elif decision == "cancel":
            request_changes.cancel_request(sessions=sessions, request_id=request_id,
                                           actor=viewer)
        else:
            raise InputError(f"no such action on a request: {decision!r}",
                             hint="approve, deny, extend or cancel")
    except ValueError as err:
        return refused(request, InputError(str(err), hint="write a duration like 30m or 2h"))
    except GrantledgerError as err:
        return refused(request, err)
    return done(f"/requests/{request_id}")


@router.get("/reviews", response_class=HTMLResponse)
def reviews_page(request: Request, viewer: Viewer, offset: int = 0) -> Response:
    """Pending requests the viewer may review, oldest first, with Approve and Deny."""
    pending = requests.reviewable_requests(sessions=runtime_of(request).sessions,
                                           viewer=viewer)
    return page(request, "reviews.html", title="Reviews", shown=window(pending, offset),
                now=datetime.now(UTC))

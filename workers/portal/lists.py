"""The portal's Access lists pages: the lists I own or belong to; for an owner, members
(add with an optional expiry, remove), the periodic review (keep or remove per member)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from models.durations import parse_duration
from models.errors import GrantledgerError, InputError
from tasks.access import membership, queries, reviews
from workers.portal.pages import Csrf, Viewer, done, refused, window
from workers.portal.render import page
from workers.portal.session import runtime_of

router = APIRouter(prefix="/lists", include_in_schema=False)


@router.get("", response_class=HTMLResponse)
def lists_page(request: Request, viewer: Viewer, offset: int = 0,
               every: bool = False) -> Response:
    """The lists I own or belong to (or, with ?every=1, every list), a page at a time."""
    sessions = runtime_of(request).sessions
    names = queries.access_list_names(sessions=sessions,
                                      involving=None if every else viewer.name)
    shown = window(names, offset)
    return page(request, "lists.html", title="Access lists", shown=shown, every=every,
                lists=queries.list_access_lists(sessions=sessions, viewer=viewer,
                                                names=shown.items),
                query="every=1" if every else "")


@router.get("/{name}", response_class=HTMLResponse)
def list_page(request: Request, viewer: Viewer, name: str) -> Response:
    """One list: owners, roles it grants, members; owner forms."""
    try:
        shown = queries.get_access_list(sessions=runtime_of(request).sessions, viewer=viewer,
                                        name=name)
    except GrantledgerError as err:
        return refused(request, err)
    return page(request, "list_page.html", title=shown.title or shown.name, shown=shown,
                owner=viewer.name in shown.owners)


@router.post("/{name}/members", dependencies=[Csrf])
def add_member(request: Request, viewer: Viewer, name: str, member: Annotated[str, Form()],
               kind: Annotated[str, Form()] = "user", expires_in: Annotated[str, Form()] = "",
               reason: Annotated[str, Form()] = "") -> Response:
    """Add a member (or move its expiry) as the viewer, an owner."""
    try:
        expires = (datetime.now(UTC) + parse_duration(expires_in)
                   if expires_in.strip() else None)
        membership.add_member(sessions=runtime_of(request).sessions, list_name=name,
                              member=member.strip(), kind=kind, expires=expires, actor=viewer,
                              reason=reason or None,
                              max_nesting_depth=runtime_of(request).settings.max_nesting_depth)
    except ValueError as err:
        return refused(request, InputError(str(err), hint="write an expiry like 30d or 12h"))
    except GrantledgerError as err:
        return refused(request, err)
    return done(f"/lists/{name}")


@router.post("/{name}/members/remove", dependencies=[Csrf])
def remove_member(request: Request, viewer: Viewer, name: str, member: Annotated[str, Form()],
                  kind: Annotated[str, Form()] = "user") -> Response:
    """Remove a member as the viewer, an owner."""
    try:
        membership.remove_member(sessions=runtime_of(request).sessions, list_name=name,
                                 member=member, kind=kind, actor=viewer)
    except GrantledgerError as err:
        return refused(request, err)
    return done(f"/lists/{name}")


@router.post("/{name}/review", dependencies=[Csrf])
def review_list(request: Request, viewer: Viewer, name: str,
                remove: Annotated[list[str], Form()] = [],  # noqa: B006
                notes: Annotated[str, Form()] = "") -> Response:
    """Record the viewer's periodic review, removing the members marked remove."""
    try:
        reviews.review_access_list(sessions=runtime_of(request).sessions, list_name=name,
                                   reviewer=viewer.name, remove=remove, notes=notes or None)
    except GrantledgerError as err:
        return refused(request, err)
    return done(f"/lists/{name}")

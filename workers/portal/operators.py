"""The operators' pages: Audit (who had access at a time; the audit trail, searchable and
exported as JSON lines) and Status (what `grantledger status` shows, and Sync now).

Only people holding the ``auditor`` capability (a role with ``spec.options.auditor: true``;
``Actor.auditor``) see them; Sync now is theirs too (why: ops/decisions/portal.md).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from models.errors import GrantledgerError, InputError, PolicyDenied
from tasks.access import queries
from tasks.access.access_at import access_at
from tasks.access.permissions import Actor
from workers.api.errors import ApiError
from workers.portal.pages import Csrf, Viewer, done, refused, window
from workers.portal.render import page
from workers.portal.session import runtime_of

router = APIRouter(include_in_schema=False)
AUDIT_LIMIT = 5000  # events a search reads at most (newest), then pages through


class NotOperator(PolicyDenied):
    """A signed-in person without the auditor capability asked for an operators' page."""


def operator(viewer: Viewer) -> Actor:
    """The viewer, when they hold the auditor capability (as the API's auditor reads)."""
    if not viewer.auditor:
        raise NotOperator(f"{viewer.name} may not see the Audit and Status pages",
                          hint="they need a role with options.auditor: true; ask an operator")
    return viewer


Operator = Annotated[Actor, Depends(operator)]


def moment(text: str | None, field: str) -> datetime | None:
    """A time from a form field (ISO 8601; without a zone: UTC), or None when empty."""
    if not text or not text.strip():
        return None
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"{field}: {text!r} is not a time",
                         hint="write it like 2026-12-01T14:00 (UTC) or with a zone") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def audit_events(request: Request, viewer: Actor, *, user: str, account: str, action: str,
                 since: str, until: str) -> list[dict[str, Any]]:
    """The audit search: newest first, optionally of one action."""
    events = queries.audit_trail(
        sessions=runtime_of(request).sessions, viewer=viewer, user=user or None,
        account_id=account or None,
        since=moment(since, "since"), until=moment(until, "until"), limit=AUDIT_LIMIT)
    return [e for e in reversed(events) if not action or e["action"] == action]


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, viewer: Operator, at: str = "", account: str = "",
               user: str = "", action: str = "", since: str = "", until: str = "",
               offset: int = 0) -> Response:
    """With ``at``: who had access then (a page at a time); else the audit trail search."""
    form = {"at": at, "account": account, "user": user, "action": action, "since": since,
            "until": until}
    query = "&".join(f"{k}={v}" for k, v in form.items() if v)
    try:
        if at.strip():
            holders = access_at(sessions=runtime_of(request).sessions, viewer=viewer,
                                at=moment(at, "at"), user=user or None,  # type: ignore[arg-type]
                                account_id=account or None)
            return page(request, "audit.html", title="Audit", holders=window(holders, offset),
                        form=form, shown=None, query=query)
        events = audit_events(request, viewer, user=user, account=account, action=action,
                              since=since, until=until)
    except GrantledgerError as err:
        return refused(request, err)
    return page(request, "audit.html", title="Audit", holders=None, form=form,
                shown=window(events, offset), query=query)


@router.get("/audit/export")
def audit_export(request: Request, viewer: Operator, account: str = "", user: str = "",
                 action: str = "", since: str = "", until: str = "") -> Response:
    """The audit search as JSON lines, oldest first (for a SIEM or a spreadsheet)."""
    try:
        events = audit_events(request, viewer, user=user, account=account, action=action,
                              since=since, until=until)
    except GrantledgerError as err:
        return refused(request, err)
    lines = "".join(json.dumps(e, default=str) + "\n" for e in reversed(events))
    return PlainTextResponse(lines, media_type="application/x-ndjson", headers={
        "content-disposition": 'attachment; filename="grantledger-audit.jsonl"'})


@router.get("/status", response_class=HTMLResponse)
def status_page(request: Request, viewer: Operator) -> Response:
    """What `grantledger status` shows, and a Sync now button."""
    from workers.status import full_status

    return page(request, "status.html", title="Status",
                report=full_status(runtime_of(request)).as_dict(),
                queued=request.query_params.get("queued"))


@router.post("/status/sync", dependencies=[Csrf])
def sync_now(request: Request, viewer: Operator) -> Response:
    """Enqueue a full sync now (the workers run it), as /v1/sync does."""
    from workers.api.routes_sync import enqueue_full_sync

    try:
        task_id = enqueue_full_sync(request.app.state.celery)
    except ApiError as err:
        return page(request, "message.html", status=err.status, title="Not done",
                    message=err.message, hint=err.hint)
    return done(f"/status?queued={task_id}")

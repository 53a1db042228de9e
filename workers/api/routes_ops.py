"""Operations: status and the audit trail.

``/status`` is the admin's (it names every failing grant and queue); the audit trail and
who-held-what are the admin's and auditors' (``tasks.access.permissions``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from models.errors import InputError
from tasks.access import queries
from tasks.access.access_at import access_at
from tasks.access.permissions import Actor
from workers.api.auth import AdminDep, CallerDep, RuntimeDep
from workers.api.pagination import Page, PageDep, PageParams, page_of
from workers.api.schemas import ApiDatetime, Name
from workers.runtime import Runtime

router = APIRouter(tags=["operations"])


@router.get("/status", response_model=dict[str, Any])
def status(runtime: RuntimeDep, caller: AdminDep) -> dict[str, Any]:
    """What `grantledger status` shows: grants, operations, failures, queues, limiter
    (admin)."""
    from workers.status import full_status

    return full_status(runtime).as_dict()


@router.get("/audit", response_model=Page[dict[str, Any]])
def audit(
    runtime: RuntimeDep, caller: CallerDep, page: PageDep,
    user: Annotated[Name | None, Query(description="what the user did or was given")] = None,
    account: Annotated[str | None, Query(pattern=r"^\d{12}$")] = None,
    since: Annotated[ApiDatetime | None, Query()] = None,
    at: Annotated[ApiDatetime | None, Query(description="who held access at this time "
                                                          "(instead of events)")] = None,
) -> dict[str, Any]:
    """The audit trail (newest page first, each page oldest first), or with ``at``, who had
    which assignment at that moment, person by person, access lists expanded to their
    members then; ``user`` and ``account`` narrow it (admin and auditors)."""
    if at is not None:
        return _holders(runtime, caller, at=at, account=account, user=user, since=since,
                        page=page)
    # Pages walk back from the newest event: fetch the newest offset+limit, drop the offset.
    events = queries.audit_trail(sessions=runtime.sessions, viewer=caller, user=user,
                                 account_id=account, since=since,
                                 limit=page.offset + page.limit)
    return {"items": events[:max(0, len(events) - page.offset)], "total": None,
            "limit": page.limit, "offset": page.offset}


def _holders(runtime: Runtime, viewer: Actor, *, at: datetime, account: str | None,
             user: str | None, since: datetime | None, page: PageParams) -> dict[str, Any]:
    if since is not None:
        raise InputError("?at answers who had which assignment at that moment; it takes "
                         "?user and ?account, not ?since",
                         hint="drop ?since, or drop ?at to read events")
    return page_of(access_at(sessions=runtime.sessions, viewer=viewer, at=at, user=user,
                             account_id=account), page)

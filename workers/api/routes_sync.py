"""The sync engine's side: grants and operations (read), the plan (admin), a full sync
(admin, enqueued).

``/plan`` computes the plan here, like `grantledger plan`: it reads the ledger and AWS and
changes nothing. ``/sync`` only enqueues ``grantledger.sync.full`` for the workers and
answers with the Celery task id (202); it never runs a sync inside the request.
"""

from __future__ import annotations

from typing import Annotated, Any

from celery import Celery
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from models.ledger.enums import GrantState, OperationState
from tasks.access.permissions import own_scope, require_auditor
from tasks.events import SYNC_FULL
from workers.api.auth import AdminDep, CallerDep, RuntimeDep
from workers.api.errors import ApiError
from workers.api.pagination import Page, PageDep, page_of
from workers.api.schemas import Enqueued, Name

router = APIRouter(tags=["sync"])

# Publishing waits at most about a second for a broker blip, then answers 503.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5,
                 "interval_max": 0.5}


class Plan(BaseModel):
    counts: dict[str, int]
    changes: list[dict[str, Any]]
    errors: list[str]
    drift_mode: dict[str, str]  # the mode foreign assignments were planned with, and whose


@router.get("/grants", response_model=Page[dict[str, Any]])
def list_grants(
    runtime: RuntimeDep, caller: CallerDep, page: PageDep,
    user: Annotated[Name | None, Query(description="this user's grants and those of the "
                                                   "access lists (groups) it belongs to")] = None,
    state: Annotated[GrantState | None, Query(description="default: all but REVOKED")] = None,
    stuck: Annotated[bool, Query(description="only revocations that keep failing")] = False,
) -> dict[str, Any]:
    """Grants in the ledger with state, expiry and AWS's failure reason: a user token sees
    its own user's; the admin and auditors everyone's."""
    from tasks.sync.views import grant_rows

    user = own_scope(caller, user)
    with runtime.sessions() as session:
        rows = grant_rows(session, user=user, state=state.value if state else None,
                          stuck=stuck)
    return page_of(rows, page)


@router.get("/operations", response_model=Page[dict[str, Any]])
def list_operations(runtime: RuntimeDep, caller: CallerDep, page: PageDep,
                    state: Annotated[OperationState | None, Query()] = None) -> dict[str, Any]:
    """AWS operations (oldest first) with AWS's request id, attempts and failure reason
    (admin and auditors)."""
    from tasks.sync.views import operation_rows

    require_auditor(caller, "AWS operations")
    with runtime.sessions() as session:
        rows = operation_rows(session, state=state.value if state else None, limit=None)
    return page_of(rows, page)


@router.get("/plan", response_model=Plan)
def plan(
    runtime: RuntimeDep, caller: AdminDep,
    user: Annotated[list[Name], Query(description="only these users")] = [],  # noqa: B006
    access_list: Annotated[list[Name], Query(alias="list",
                                             description="only these access lists")] = [],  # noqa: B006
) -> Plan:
    """What a sync would change now, in the ledger and in AWS; nothing is applied (admin)."""
    from tasks.sync.engine import plan_sync

    report = plan_sync(runtime=runtime, users=user, lists=access_list)
    if report.skipped:
        raise ApiError(409, "a full sync is running; its plan would be stale",
                       hint="ask again when it has finished (see /v1/status)")
    return Plan(counts={k: v for k, v in sorted(report.counts.items()) if v},
                changes=report.plan_rows(), errors=list(report.errors),
                drift_mode={"mode": report.drift_mode, "from": report.drift_from})


@router.post("/sync", response_model=Enqueued, status_code=202)
def sync(request: Request, caller: AdminDep) -> Enqueued:
    """Enqueue a full sync now (admin); the periodic one still runs on schedule."""
    return Enqueued(task_id=enqueue_full_sync(request.app.state.celery), task=SYNC_FULL)


def enqueue_full_sync(celery: Celery) -> str:
    """Publish a full sync for the workers (the API and the portal's Sync now); its task id."""
    from kombu.exceptions import OperationalError as BrokerDown

    try:
        return celery.send_task(SYNC_FULL, retry=True, retry_policy=PUBLISH_RETRY).id
    except BrokerDown as err:
        raise ApiError(503, f"the broker refused the sync task: {err}",
                       hint="check GRANTLEDGER_BROKER_URL and that Redis runs") from None

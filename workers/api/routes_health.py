"""Probes and metrics, outside /v1: /healthz, /readyz, /metrics.

/healthz and /readyz never ask for a token (orchestrators probe them). /metrics does not
either, unless ``GRANTLEDGER_METRICS_REQUIRE_TOKEN=true``: then it wants the admin token.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel

from workers.api.auth import CHALLENGE, RuntimeDep, bearer, is_admin_token
from workers.api.errors import ApiError
from workers.metrics import render_metrics

router = APIRouter(tags=["probes"])


class Health(BaseModel):
    status: str


class ReadyCheck(BaseModel):
    name: str
    ok: bool
    detail: str
    fix: str


class Readiness(BaseModel):
    ready: bool
    checks: list[ReadyCheck]


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up (nothing else is checked)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness,
            responses={503: {"model": Readiness, "description": "a dependency is down"}})
def readyz(runtime: RuntimeDep) -> Response:
    """Ready to serve: the ledger database answers and is at head, the broker answers."""
    from workers.doctor import check_broker, check_database

    checks = [check_database(runtime), check_broker(runtime.settings)]
    readiness = Readiness(ready=all(c.ok for c in checks),
                          checks=[ReadyCheck(**c.as_dict()) for c in checks])
    return JSONResponse(readiness.model_dump(), status_code=200 if readiness.ready else 503)


def metrics_access(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Refuse a scrape without the admin token, when settings ask for one."""
    if not runtime.settings.metrics_require_token:
        return
    token = credentials.credentials if credentials else ""
    if not is_admin_token(token, runtime.settings.api_token):
        raise ApiError(401, "/metrics needs the admin token (GRANTLEDGER_METRICS_REQUIRE_TOKEN)",
                       hint="give the scraper 'Authorization: Bearer GRANTLEDGER_API_TOKEN'",
                       headers=CHALLENGE)


@router.get("/metrics", response_class=Response, dependencies=[Depends(metrics_access)],
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}},
                             "description": "Prometheus text exposition"}})
def metrics(request: Request) -> Response:
    """Prometheus metrics: ledger gauges (computed now) and this process's AWS counters."""
    return Response(render_metrics(request.app.state.metrics_registry),
                    media_type=CONTENT_TYPE_LATEST)

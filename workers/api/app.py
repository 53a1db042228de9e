"""The HTTP API: FastAPI over the same service functions the CLI calls.

``create_app(runtime)`` builds one app around one ``Runtime`` (tests inject theirs; the
``grantledger api`` command uses ``get_runtime()``). Everything under /v1 needs a bearer
token (see ``workers.api.auth``); /healthz, /readyz and /metrics are the probes. OpenAPI is
served at /openapi.json and the interactive docs at /docs. The web portal (``workers.portal``)
is served from / by the same app.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi_offline import FastAPIOffline

from workers.api import (
    routes_access_lists,
    routes_catalog,
    routes_health,
    routes_ops,
    routes_requests,
    routes_resources,
    routes_sync,
    routes_tokens,
)
from workers.api.auth import authenticate
from workers.api.errors import error_body, install_error_handlers
from workers.api.gate import Gate
from workers.metrics import ledger_registry
from workers.portal.app import mount_portal
from workers.runtime import Runtime, get_runtime

API_VERSION_PREFIX = "/v1"
DOCS_ASSETS = "/docs/assets"
ERROR_SCHEMA = {"type": "object", "properties": {
    "error": {"type": "string"}, "hint": {"type": "string"},
    "errors": {"type": "array", "items": {"type": "object"}}}}
V1_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": description,
             "content": {"application/json": {"schema": ERROR_SCHEMA,
                                              "example": error_body(description)}}}
    for status, description in ((400, "a body that cannot be parsed"),
                                (401, "missing or bad bearer token"),
                                (403, "not allowed for this token"),
                                (404, "no such thing"), (409, "already exists"),
                                (413, "the body is over its limit (GRANTLEDGER_MAX_BODY_BYTES)"),
                                (422, "invalid input, with located errors"),
                                (503, "the ledger or the broker is unavailable"))
}


def create_app(runtime: Runtime | None = None) -> FastAPI:
    """The API app around ``runtime`` (default: the process-wide runtime)."""
    from workers.celery.app import make_celery

    runtime = runtime or get_runtime()
    app = FastAPIOffline(  # /docs with Swagger UI's files served from the wheel, no CDN
        title="grantledger", redoc_url=None, static_url=DOCS_ASSETS,
        summary="Access broker for AWS IAM Identity Center: access lists, access requests, "
                "and a ledger that revokes every grant on time.",
        version="1",
    )
    app.state.runtime = runtime
    app.state.metrics_registry = ledger_registry(runtime)
    app.state.celery = make_celery(runtime.settings)
    install_error_handlers(app)
    app.add_middleware(Gate)
    app.include_router(routes_health.router)
    app.include_router(v1_router())
    if runtime.settings.slack_enabled:
        from workers.slack.routes import slack_router

        app.include_router(slack_router(runtime))
    mount_portal(app, runtime.settings)
    return app


def v1_router() -> APIRouter:
    """Every /v1 route, behind the bearer-token check."""
    v1 = APIRouter(prefix=API_VERSION_PREFIX, dependencies=[Depends(authenticate)],
                   responses=V1_ERRORS)
    for routes in (routes_resources, routes_catalog, routes_access_lists, routes_requests,
                   routes_sync, routes_ops, routes_tokens):
        v1.include_router(routes.router)
    return v1

"""How errors become HTTP answers: one JSON shape, one status per error class.

Every error body is ``{"error": what happened, "hint": what to do next, "errors": [...]}``;
``errors`` lists located problems (``file``, ``line``, ``path``, ``message``) when there are
any, e.g. each mistake in applied YAML or each invalid field of a request body. A 500 is
left for real bugs: every deliberate error maps to a 4xx, or to a 502/503 when something
the API depends on (database, broker, AWS, SCIM) is the problem.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from models import errors

# First match wins: subclasses before their bases.
STATUS_BY_ERROR: tuple[tuple[type[errors.GrantledgerError], int], ...] = (
    (errors.PolicyDenied, 403),
    (errors.NotFound, 404),
    (errors.AlreadyExists, 409),
    (errors.InputError, 422),
    (errors.ConfigError, 503),
    (errors.LedgerError, 503),
    (errors.AwsThrottled, 503),
    (errors.AwsUnreachable, 503),
    (errors.AwsError, 502),
    (errors.ScimError, 502),
)

QUERY_FIELDS = frozenset({"force"})  # inputs the API takes as query parameters

log = logging.getLogger(__name__)
DATABASE_DOWN_HINT = "check GRANTLEDGER_DATABASE_URL and that the database server is running"


class ApiError(Exception):
    """An answer the API itself decides (401, 403 on a route, 400 on a body)."""

    def __init__(self, status: int, message: str, *, hint: str = "",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.hint, self.headers = status, message, hint, headers


def status_for(err: errors.GrantledgerError) -> int:
    """The HTTP status of a deliberate grantledger error."""
    return next((status for kind, status in STATUS_BY_ERROR if isinstance(err, kind)), 500)


def located(err: errors.GrantledgerError) -> list[dict[str, Any]]:
    """The located problems an error carries (YAML file, line and field path)."""
    found = err.errors if isinstance(err, errors.ResourceErrors) else [err]
    return [{"file": e.file, "line": e.line, "path": e.path, "message": e.detail}
            for e in found if isinstance(e, errors.ResourceError)]


def api_field(name: str) -> str:
    """How the API spells an input a service error names: a query parameter or a body field."""
    return f"query.{name}" if name in QUERY_FIELDS else f"body.{name}"


def error_body(message: str, *, hint: str = "",
               problems: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The one JSON shape of every error answer."""
    return {"error": message, "hint": hint, "errors": problems or []}


def validation_problems(err: RequestValidationError) -> list[dict[str, Any]]:
    """FastAPI's validation details as located problems (``path`` like ``body.reason``)."""
    return [{"file": None, "line": None,
             "path": ".".join(str(part) for part in detail.get("loc", ())),
             "message": detail.get("msg", "invalid")}
            for detail in err.errors()]


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the shape above."""

    @app.exception_handler(errors.GrantledgerError)
    async def _grantledger(_: Request, err: errors.GrantledgerError) -> JSONResponse:
        fields = [api_field(name) for name in getattr(err, "fields", ())]
        hint = f"{err.hint} ({' or '.join(fields)})" if fields else err.hint
        problems = located(err) + [{"file": None, "line": None, "path": field,
                                    "message": err.message} for field in fields]
        return JSONResponse(error_body(err.message, hint=hint, problems=problems),
                            status_code=status_for(err))

    @app.exception_handler(ApiError)
    async def _api(_: Request, err: ApiError) -> JSONResponse:
        return JSONResponse(error_body(err.message, hint=err.hint), status_code=err.status,
                            headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body("the request is invalid",
                                       hint="fix the fields listed in errors",
                                       problems=validation_problems(err)), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, err: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(error_body(str(err.detail)), status_code=err.status_code,
                            headers=getattr(err, "headers", None))

    @app.exception_handler(OperationalError)
    async def _database_down(_: Request, err: OperationalError) -> JSONResponse:
        # The pool's pre-ping failed or the server went away mid-request: not a bug.
        return JSONResponse(error_body(f"the ledger database is unreachable: {err.orig}",
                                       hint=DATABASE_DOWN_HINT), status_code=503)

    @app.exception_handler(DataError)
    async def _unstorable(request: Request, err: DataError) -> JSONResponse:
        # A value the database cannot hold or compare (a NUL character, an out-of-range
        # number) came in past the edge checks: the input is wrong, so 422; logged so that
        # the missing edge check gets added.
        log.warning("%s %s: the database refused a value: %s", request.method,
                    request.url.path, err.orig)
        return JSONResponse(error_body(f"the database refused a value: {err.orig}",
                                       hint="remove control characters (such as NUL) and "
                                            "out-of-range numbers from the request"),
                            status_code=422)

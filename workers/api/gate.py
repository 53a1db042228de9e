"""The gate every HTTP request passes before a route reads a byte of its body.

1. A declared ``Content-Length`` over the route's limit: 413 at once.
2. Under /v1 the bearer token is checked here, so an anonymous upload gets its 401 unread;
   the caller is kept in the request state for the routes' ``authenticate`` dependency.
3. The body is counted as it streams (chunked, or longer than declared): past the limit
   the read fails with 413, so no request holds more than its limit in memory.
Why an ASGI middleware and not uvicorn or FastAPI: ops/decisions/api.md.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workers.api.auth import identify
from workers.api.errors import ApiError, error_body

APPLY_PATH = "/v1/apply"
GUARDED_PREFIX = "/v1/"


class BodyTooLarge(HTTPException):
    """A body past its route's limit (raised while it is read)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over {size_text(limit)}")


def size_text(limit: int) -> str:
    """``1048576`` -> ``1 MiB`` (KiB or bytes when not whole)."""
    for unit, size in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if limit % size == 0:
            return f"{limit // size} {unit}"
    return f"{limit} bytes"


def body_limit(settings: Any, path: str) -> int:
    """The largest body ``path`` accepts."""
    if path.rstrip("/") == APPLY_PATH:
        return settings.max_apply_body_bytes
    return settings.max_body_bytes


def declared_length(scope: Scope) -> int | None:
    """The Content-Length header as a number (None when absent or not a number)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.strip().isdigit() else None
    return None


def authorization(scope: Scope) -> str | None:
    return next((value.decode("latin-1") for name, value in scope.get("headers", ())
                 if name == b"authorization"), None)


class Gate:
    """ASGI middleware: body limits and authentication before the body (module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        runtime = scope["app"].state.runtime
        limit = body_limit(runtime.settings, scope["path"])
        declared = declared_length(scope)
        if declared is not None and declared > limit:
            await refuse(scope, receive, send, BodyTooLarge(limit))
            return
        if scope["path"].startswith(GUARDED_PREFIX):
            try:
                caller = await run_in_threadpool(identify, runtime, authorization(scope))
            except ApiError as err:
                response = JSONResponse(error_body(err.message, hint=err.hint),
                                        status_code=err.status, headers=err.headers)
                await response(scope, receive, send)
                return
            scope.setdefault("state", {})["caller"] = caller
        await self.counted(scope, receive, send, limit=limit)

    async def counted(self, scope: Scope, receive: Receive, send: Send, *, limit: int) -> None:
        """Run the app with a ``receive`` that fails once the body passes ``limit``."""
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge as err:
            if started:
                raise
            await refuse(scope, receive, send, err)


async def refuse(scope: Scope, receive: Receive, send: Send, err: BodyTooLarge) -> None:
    """Answer 413 and close the connection (the rest of the body is never read)."""
    hint = ("apply the resources in several smaller batches"
            if scope["path"].rstrip("/") == APPLY_PATH else "send a smaller body")
    response = JSONResponse(error_body(str(err.detail), hint=hint), status_code=413,
                            headers={"Connection": "close"})
    await response(scope, receive, send)

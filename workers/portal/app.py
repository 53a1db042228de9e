"""Mount the portal on the API app: session cookie, security headers, static files, pages.

``mount_portal(app, settings)`` is called by ``workers.api.app.create_app``; the portal is
served by the same process as /v1. Security headers go on every portal answer (not on /v1,
/docs and the probes, whose own clients need none of them).
"""

from __future__ import annotations

import secrets

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workers.portal import auth, lists, operators, pages
from workers.portal.render import page
from workers.portal.session import CsrfRefused, SignInNeeded, sign_in_url
from workers.settings import Settings

SESSION_COOKIE = "grantledger_session"
NOT_PORTAL = ("/v1", "/docs", "/redoc", "/openapi.json", "/healthz", "/readyz", "/metrics")
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self'; "
                                 b"img-src 'self' data:; form-action 'self'; "
                                 b"frame-ancestors 'none'; base-uri 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
]


class SecurityHeaders:
    """Add the portal's security headers to its answers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(NOT_PORTAL):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


def session_key(settings: Settings) -> str:
    """The cookie-signing key; a per-process random one when none is set (embedded mode:
    sessions end when the process does; ``Settings.check`` refuses that elsewhere)."""
    if settings.session_secret and settings.session_secret.get_secret_value():
        return settings.session_secret.get_secret_value()
    return secrets.token_urlsafe(32)


def mount_portal(app: FastAPI, settings: Settings) -> None:
    """Serve the portal from ``app``."""
    app.state.portal_oauth = auth.make_oauth(settings)
    secure = (settings.portal_url or "").startswith("https://")
    app.add_middleware(SessionMiddleware, secret_key=session_key(settings),
                       session_cookie=SESSION_COOKIE, max_age=int(settings.session_max_age),
                       same_site="lax", https_only=secure)
    app.add_middleware(SecurityHeaders)
    app.mount("/static/portal", StaticFiles(packages=[("workers.portal", "static/portal")]),
              name="portal-static")
    for routes in (auth, pages, lists, operators):
        app.include_router(routes.router)

    @app.exception_handler(SignInNeeded)
    async def _sign_in(_: Request, err: SignInNeeded) -> Response:
        return RedirectResponse(sign_in_url(err.back_to), status_code=303)

    @app.exception_handler(operators.NotOperator)
    async def _not_operator(request: Request, err: operators.NotOperator) -> Response:
        return page(request, "message.html", status=403, title="Not for you",
                    message=err.message, hint=err.hint)

    @app.exception_handler(CsrfRefused)
    async def _csrf(request: Request, _: CsrfRefused) -> Response:
        return page(request, "message.html", status=403, title="Form refused",
                    message="The form came without its security token, so nothing was done.",
                    hint="Reload the page and send the form again.")

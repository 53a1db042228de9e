"""The portal's session: who is signed in, for how long, and the CSRF token of their forms.

The session lives in Starlette's signed cookie (HttpOnly, SameSite=Lax, Secure behind
https). ``current_user`` is the one place a page learns who the viewer is: it ends a session
that is idle too long, older than its absolute lifetime, or whose user was suspended or
deleted since, and sends a signed-out visitor to sign in (and back afterwards).
"""

from __future__ import annotations

import hmac
import secrets
import time
from urllib.parse import quote

from fastapi import Request

from models.errors import NotFound, PolicyDenied
from tasks.access.permissions import Actor, person_in
from workers.runtime import Runtime

CSRF_FIELD = "csrf_token"


class SignInNeeded(Exception):
    """No (live) session: the page answers with a redirect to sign-in."""

    def __init__(self, back_to: str) -> None:
        super().__init__(back_to)
        self.back_to = back_to


class CsrfRefused(Exception):
    """A state-changing form came without its session's CSRF token."""


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime


def csrf_token(request: Request) -> str:
    """This session's CSRF token (made on first use)."""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


async def check_csrf(request: Request) -> None:
    """Refuse (403) a POST whose form lacks this session's CSRF token."""
    presented = str((await request.form()).get(CSRF_FIELD, ""))
    expected = request.session.get("csrf", "")
    if not expected or not hmac.compare_digest(presented.encode(), expected.encode()):
        raise CsrfRefused()


def start_session(request: Request, user_id: str) -> None:
    """Sign the user with immutable id ``user_id`` in: a fresh session (new CSRF token;
    nothing of the old one kept). The id, not the name: names are reusable."""
    now = time.time()
    request.session.clear()
    request.session.update({"user_id": user_id, "signed_in": now, "seen": now,
                            "csrf": secrets.token_urlsafe(32)})


def sign_in_url(back_to: str) -> str:
    return f"/auth/signin?next={quote(back_to, safe='')}"


def current_user(request: Request) -> Actor:
    """The signed-in person as an ``Actor``, or SignInNeeded when there is none (any more):
    an expired session, or a user suspended or deleted since signing in."""
    user_id, settings = request.session.get("user_id"), runtime_of(request).settings
    now = time.time()
    back_to = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not user_id or not session_fresh(request.session, now=now,
                                        idle=settings.session_idle_timeout,
                                        absolute=settings.session_max_age):
        request.session.clear()
        raise SignInNeeded(back_to)
    try:
        viewer = person_in(runtime_of(request).sessions, user_id=user_id, via="portal")
    except (NotFound, PolicyDenied):
        request.session.clear()
        raise SignInNeeded(back_to) from None
    request.session["seen"] = now
    request.state.viewer = viewer
    return viewer


def session_fresh(session: dict, *, now: float, idle: float, absolute: float) -> bool:
    """Whether a session is within its idle and absolute lifetimes (pure)."""
    return (now - session.get("seen", 0) <= idle
            and now - session.get("signed_in", 0) <= absolute)


def safe_next(target: str | None) -> str:
    """Where to go after sign-in: a path on this site only (never another host)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target

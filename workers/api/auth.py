"""Who is calling: the admin token, or a per-user token that acts as its user.

Every /v1 route depends on ``authenticate``, which gives the route the caller as an ``Actor``
(``tasks.access.permissions``: what it may do and see is decided there, for every
surface). The admin token (``GRANTLEDGER_API_TOKEN``) is compared in constant time; a
per-user token is looked up by its sha256 digest and acts as its user's immutable id
(``tasks.access.tokens.verify_token``). Without a configured admin token (allowed only in
the embedded mode) there is simply no admin: per-user tokens still work and everything else
is a 401 with a hint, never anonymous access.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import SecretStr

from models.errors import NotFound, PolicyDenied
from tasks.access.permissions import API_ADMIN, Actor
from workers.api.errors import ApiError
from workers.runtime import Runtime

CHALLENGE = {"WWW-Authenticate": "Bearer"}
TOKEN_HINT = ("send 'Authorization: Bearer TOKEN' with GRANTLEDGER_API_TOKEN (admin) or a "
              "per-user token from: grantledger token create --user USER")
NO_ADMIN_HINT = ("no GRANTLEDGER_API_TOKEN is set, so there is no admin token: set one "
                 "(python -c 'import secrets; print(secrets.token_urlsafe(32))') or use a "
                 "per-user token from: grantledger token create --user USER")

bearer = HTTPBearer(auto_error=False, description="GRANTLEDGER_API_TOKEN or a per-user token")


def runtime_of(request: Request) -> Runtime:
    """The runtime the app was built with."""
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(runtime_of)]


def is_admin_token(presented: str, configured: SecretStr | None) -> bool:
    """True when ``presented`` is the configured admin token (constant-time comparison)."""
    if configured is None or not configured.get_secret_value():
        return False
    return hmac.compare_digest(presented.encode(), configured.get_secret_value().encode())


def identify(runtime: Runtime, authorization: str | None) -> Actor:
    """The caller behind an ``Authorization`` header; 401 (with a hint) for none or a bad one.

    Called by the gate (workers/api/gate.py) before any body is read.
    """
    from tasks.access.permissions import person_in
    from tasks.access.tokens import verify_token

    configured = runtime.settings.api_token
    hint = TOKEN_HINT if configured and configured.get_secret_value() else NO_ADMIN_HINT
    scheme, token = get_authorization_scheme_param(authorization)
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "missing bearer token", hint=hint, headers=CHALLENGE)
    if is_admin_token(token, configured):
        return API_ADMIN
    user_id = verify_token(sessions=runtime.sessions, token=token)
    if user_id is not None:
        try:
            return person_in(runtime.sessions, user_id=user_id, via="api")
        except (NotFound, PolicyDenied):  # deleted or suspended since the token was checked
            pass
    raise ApiError(401, "invalid, revoked or suspended user's token", hint=hint,
                   headers=CHALLENGE)


def authenticate(
    request: Request, runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    """The caller the gate identified (``credentials`` declares the scheme in OpenAPI)."""
    caller = getattr(request.state, "caller", None)
    if caller is not None:
        return caller
    return identify(runtime, request.headers.get("authorization"))


CallerDep = Annotated[Actor, Depends(authenticate)]


def require_admin(caller: CallerDep) -> Actor:
    """Admin-only routes (apply, delete, sync, plan, status, others' tokens)."""
    if not caller.admin:
        raise ApiError(403, f"{caller.name}'s token may not do this: it needs the admin token",
                       hint="ask an operator, or use the grantledger CLI")
    return caller


def require_person(caller: CallerDep) -> Actor:
    """Routes that act as a person (request, review): the caller, never the admin token."""
    if caller.user_id is None:
        raise ApiError(403, "the admin token acts as no user, and this action needs one",
                       hint="use a per-user token: grantledger token create --user USER")
    return caller


AdminDep = Annotated[Actor, Depends(require_admin)]
PersonDep = Annotated[Actor, Depends(require_person)]

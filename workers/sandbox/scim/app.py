"""The sandbox's SCIM endpoint: scim2-server + AWS dialect + bearer tokens + throttling.

Mounted by the sandbox server under ``/scim/v2/``; it accepts ``PATH_INFO`` with or without
the ``/scim`` prefix. Every request needs a bearer token from :attr:`AwsScimApplication.tokens`
(AWS asks for one even on ``/ServiceProviderConfig``), then one token of the rate bucket
(429 above ``rate_per_s``, as AWS's ThrottlingException).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING

from scim2_models import (
    Bulk,
    ChangePassword,
    ETag,
    Filter,
    Group,
    Pagination,
    Patch,
    SCIMException,
    ScimPolicy,
    ScimProvider,
    ServiceProviderConfig,
    Sort,
    UnauthorizedException,
)
from scim2_server.applications.wsgi import WSGIApplication
from scim2_server.requests import ScimRequest
from scim2_server.responses import ScimResponse
from scim2_server.testserver.application import BEARER_TOKEN_SCHEME

from workers.sandbox.limits import CallCounter, TokenBucket
from workers.sandbox.scim.dialect import AwsScimService, AwsUser
from workers.sandbox.scim.storage import BackendSource, IdentityStoreStorage

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

MOUNT = "/scim"
PAGE_SIZE = 100  # AWS ListUsers/ListGroups: at most 100 results per page
API_VERBS = {"create": "Create", "query": "Get", "search": "List", "patch": "Patch",
             "replace": "Put", "delete": "Delete"}


class ThrottlingException(SCIMException):
    """429, as AWS answers above its SCIM request rate."""

    status = 429
    _default_detail = "Too many requests: rate exceeded"


def aws_provider() -> ScimProvider:
    """What the sandbox announces: Users and Groups, PATCH, eq filters, cursor paging."""
    config = ServiceProviderConfig(
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=PAGE_SIZE),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=False),
        etag=ETag(supported=False),
        pagination=Pagination(
            cursor=True, index=True, default_page_size=PAGE_SIZE, max_page_size=PAGE_SIZE,
            default_pagination_method=Pagination.DefaultPaginationMethod.index,
            cursor_timeout=3600,
        ),
        authentication_schemes=[BEARER_TOKEN_SCHEME],
    )
    # AWS takes Entra's `remove members` with a `value` list as well as RFC filter paths.
    policy = ScimPolicy(remove_value_as_filter=ScimPolicy.RemoveValue.apply)
    return ScimProvider(models=[AwsUser, Group], config=config, policy=policy)


def api_name(method: str, path: str) -> str:
    """AWS's name for a SCIM call (``CreateUser``, ``ListGroups``...), for the call counter."""
    segments = [s for s in path.strip("/").split("/") if s]
    if not segments or segments[0] not in ("Users", "Groups"):
        return segments[0] if segments else "Root"
    operation = {"POST": "create", "GET": "query" if len(segments) > 1 else "search",
                 "PATCH": "patch", "PUT": "replace", "DELETE": "delete"}.get(method)
    if operation is None:
        return f"{method} {segments[0]}"
    noun = segments[0] if operation == "search" else segments[0][:-1]
    return API_VERBS[operation] + noun


class AwsScimApplication(WSGIApplication):
    """The WSGI SCIM server; ``tokens`` is a live set (add/remove to rotate or expire)."""

    def __init__(self, storage: IdentityStoreStorage, *, tokens: Iterable[str],
                 rate_per_s: float | None) -> None:
        provider = aws_provider()
        # The cursor secret only needs to outlive this process: cursors are short-lived.
        service = AwsScimService(provider, secret=secrets.token_bytes(32))
        super().__init__(storage, provider, service)
        self.identity_store = storage
        self.tokens: set[str] = set(tokens)
        # At least one request's worth of burst, so a tiny rate still lets one through.
        burst = max(1.0, rate_per_s) if rate_per_s is not None else None
        self.bucket = TokenBucket(rate_per_s, burst=burst)
        self.calls = CallCounter()

    def reset(self) -> None:
        """Forget SCIM-only state and counters (the sandbox's reset wipes moto itself)."""
        self.identity_store.forget()
        self.calls.clear()

    def check_auth(self, request: ScimRequest) -> None:
        """401 unless the request carries one of the live bearer tokens."""
        scheme, _, token = (request.header("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or token.strip() not in self.tokens:
            raise UnauthorizedException(detail="missing or invalid bearer token")

    def dispatch_request(self, request: ScimRequest) -> ScimResponse:
        """Count, authenticate, throttle, then serve."""
        self.calls.add(f"scim:{api_name(request.method.upper(), request.path)}")
        self.check_auth(request)
        if not self.bucket.take():
            raise ThrottlingException()
        return self.handler.handle(request)

    def handle_exception(self, request: ScimRequest, exception: Exception) -> ScimResponse:
        response = super().handle_exception(request, exception)
        if isinstance(exception, ThrottlingException):
            response.headers["Retry-After"] = "1"
        return response

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse
                 ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == MOUNT or path.startswith(MOUNT + "/"):
            # Move the mount point to SCRIPT_NAME so resource locations keep it.
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "").rstrip("/") + MOUNT
            environ["PATH_INFO"] = path[len(MOUNT):]
        return super().__call__(environ, start_response)


def make_scim_app(identitystore_backend: BackendSource, *, token: str,
                  identity_store_id: str, rate_per_s: float | None = 20.0
                  ) -> AwsScimApplication:
    """The sandbox's SCIM server over one identity store of moto's IdentityStoreBackend.

    ``identitystore_backend`` is the backend, or a callable returning it (which survives
    moto resets). ``rate_per_s=None`` turns throttling off.
    """
    storage = IdentityStoreStorage(identitystore_backend, identity_store_id)
    return AwsScimApplication(storage, tokens=[token], rate_per_s=rate_per_s)


__all__ = ["AwsScimApplication", "ThrottlingException", "make_scim_app"]

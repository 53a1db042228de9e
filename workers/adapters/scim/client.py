"""``HttpScimDirectory``: the ScimDirectory over HTTP (AWS Identity Center or the sandbox).

Built on plain httpx rather than scim2-client: AWS's dialect (204 PATCH answers, cursor
pages, members never returned) and our own policy (retries, circuit breaker, error
mapping, call counts) need the raw responses, and the bodies are small enough to write
by hand (``workers.adapters.scim.directory``). The ``httpx.Client`` is passed in, so tests give it
a real server's URL or an ``httpx.WSGITransport`` over the sandbox app, never a patch.

Errors: 401/403 -> ScimAuthError, and ScimCircuitOpen once ``circuit_threshold`` of them
came in a row (then no call goes out until ``reset()``); 429 and 5xx are retried with
jittered backoff, then ScimThrottled / ScimError; 404 -> ScimNotFound; 409 that cannot be
adopted -> ScimConflict; any other 4xx -> ScimError with the server's detail.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from models.errors import (
    AwsThrottled,
    ConfigError,
    ScimAuthError,
    ScimCircuitOpen,
    ScimConflict,
    ScimError,
    ScimNotFound,
    ScimNotOwned,
    ScimThrottled,
)
from workers.adapters.scim.breaker import CircuitBreaker, backoff_delay, parse_retry_after
from workers.adapters.scim.directory import (
    GROUP_SCHEMA,
    PAGE_SIZE,
    ScimDirectory,
    ScimGroup,
    ScimUser,
    eq_filter,
    error_detail,
    group_from_scim,
    is_owned,
    mark_owned,
    member_patches,
    patch_body,
    user_changes,
    user_from_scim,
    user_payload,
)
from workers.settings import Settings

CONTENT_TYPE = "application/scim+json"
RETRYABLE = {429, 500, 502, 503, 504}
LIMITER_TIMEOUT = 30.0  # seconds to wait for a permit of the shared SCIM rate


class RateGate(Protocol):
    """The global limiter (``workers.limiter.Limiter``) as this adapter uses it."""

    def acquire(self, family: str, *, timeout: float) -> None: ...


def scim_base_url(settings: Settings) -> str:
    """GRANTLEDGER_SCIM_URL, or the sandbox endpoint's /scim/v2/ in sandbox mode."""
    if settings.scim_url:
        return settings.scim_url.rstrip("/") + "/"
    if settings.aws_mode == "sandbox" and settings.aws_endpoint_url:
        return settings.aws_endpoint_url.rstrip("/") + "/scim/v2/"
    raise ConfigError("GRANTLEDGER_SCIM_URL is not set",
                      hint="copy the SCIM endpoint from Identity Center > Settings > "
                           "Automatic provisioning into GRANTLEDGER_SCIM_URL")


class HttpScimDirectory(ScimDirectory):
    """The SCIM directory at the other end of ``client`` (base URL = the ``.../scim/v2/``)."""

    def __init__(self, client: httpx.Client, *, circuit_threshold: int = 3,
                 max_attempts: int = 4, backoff_base: float = 0.5, backoff_cap: float = 8.0,
                 limiter: RateGate | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.limiter = limiter
        self.breaker = CircuitBreaker(circuit_threshold)
        self.max_attempts = max_attempts
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
        self._sleep = sleep
        self._counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, *, transport: httpx.BaseTransport | None = None,
                      limiter: RateGate | None = None) -> HttpScimDirectory:
        """The directory GRANTLEDGER_SCIM_URL / _SCIM_TOKEN point at, paced by ``limiter``."""
        if settings.scim_token is None or not settings.scim_token.get_secret_value():
            raise ConfigError("GRANTLEDGER_SCIM_TOKEN is not set",
                              hint="generate a SCIM access token in Identity Center and "
                                   "set GRANTLEDGER_SCIM_TOKEN")
        client = httpx.Client(
            base_url=scim_base_url(settings), transport=transport, timeout=15.0,
            headers={"Authorization": f"Bearer {settings.scim_token.get_secret_value()}",
                     "Accept": CONTENT_TYPE},
        )
        return cls(client, circuit_threshold=settings.scim_circuit_threshold, limiter=limiter)

    # -- counters and breaker ---------------------------------------------------------

    def call_counts(self) -> dict[str, int]:
        """Calls per directory method, plus http_requests, retries and auth_failures."""
        with self._counts_lock:
            return dict(self._counts)

    def _count(self, name: str) -> None:
        with self._counts_lock:
            self._counts[name] += 1

    def reset(self) -> None:
        """Close the circuit breaker once the token is fixed."""
        self.breaker.reset()

    # -- transport --------------------------------------------------------------------

    def _send(self, method: str, path: str, *, params: dict[str, Any] | None = None,
              body: dict[str, Any] | None = None) -> httpx.Response:
        """One SCIM call with retries on 429/5xx/network errors; auth failures feed the breaker."""
        self.breaker.check()
        attempt = 0
        while True:
            attempt += 1
            self._count("http_requests")
            response = self._request_once(method, path, params, body, attempt)
            if response is None:
                continue
            if response.status_code in (401, 403):
                self._auth_failed(response)
            self.breaker.record_success()
            if response.status_code not in RETRYABLE or attempt >= self.max_attempts:
                return response
            self._count("retries")
            self._wait(attempt, response.headers.get("Retry-After"))

    def _request_once(self, method: str, path: str, params: dict[str, Any] | None,
                      body: dict[str, Any] | None, attempt: int) -> httpx.Response | None:
        """The response, or None after a network error that is worth retrying."""
        headers = {"Content-Type": CONTENT_TYPE} if body is not None else None
        content = json.dumps(body).encode() if body is not None else None
        self._take_permit()
        try:
            return self.client.request(method, path, params=params, content=content,
                                       headers=headers)
        except httpx.TransportError as err:
            if attempt == self.max_attempts:
                raise ScimError(f"SCIM endpoint unreachable: {err}",
                                hint="check GRANTLEDGER_SCIM_URL and the network") from err
            self._count("retries")
            self._wait(attempt, None)
            return None

    def _take_permit(self) -> None:
        """One permit of the SCIM rate shared by every worker (AWS: about 20 requests/s)."""
        if self.limiter is None:
            return
        try:
            self.limiter.acquire("scim", timeout=LIMITER_TIMEOUT)
        except AwsThrottled as err:
            raise ScimThrottled(f"the shared SCIM rate stayed full: {err}",
                                hint="lower the SCIM load or raise GRANTLEDGER_SCIM_RATE") from err

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        self._sleep(backoff_delay(attempt, base=self.backoff_base, cap=self.backoff_cap,
                                  jitter=random.random(),
                                  retry_after=parse_retry_after(retry_after)))

    def _auth_failed(self, response: httpx.Response) -> None:
        self._count("auth_failures")
        opened = self.breaker.record_auth_failure(response.status_code)
        detail = error_detail(_json(response))
        if opened:
            raise ScimCircuitOpen(
                f"SCIM answered {response.status_code} {self.breaker.failures} times in a "
                f"row ({detail}); calls are paused", status=response.status_code)
        raise ScimAuthError(f"SCIM refused the token ({response.status_code}): {detail}",
                            status=response.status_code)

    def _call(self, name: str, method: str, path: str, *, params: dict[str, Any] | None = None,
              body: dict[str, Any] | None = None, ok: tuple[int, ...] = (200, 201, 204)
              ) -> httpx.Response:
        """Count the call, send it, and raise the mapped error unless its status is ``ok``."""
        self._count(name)
        response = self._send(method, path, params=params, body=body)
        if response.status_code not in ok:
            raise _error_for(response, f"{name} {method} {path}")
        return response

    # -- users ------------------------------------------------------------------------

    def find_user(self, *, user_name: str) -> ScimUser | None:
        found = self._search("find_user", "Users", eq_filter("userName", user_name))
        return user_from_scim(found[0]) if found else None

    def get_user(self, *, user_id: str) -> ScimUser | None:
        response = self._call("get_user", "GET", _at("Users", user_id), ok=(200, 404))
        return user_from_scim(response.json()) if response.status_code == 200 else None

    def create_user(self, *, user_name: str, display_name: str, given_name: str,
                    family_name: str, email: str | None, external_id: str) -> ScimUser:
        body = user_payload(user_name=user_name, display_name=display_name,
                            given_name=given_name, family_name=family_name, email=email,
                            external_id=mark_owned(external_id))
        response = self._call("create_user", "POST", "Users", body=body, ok=(201, 200, 409))
        if response.status_code != 409:
            return user_from_scim(response.json())
        existing = self.find_user(user_name=user_name)
        if existing is None:
            raise ScimConflict(f"userName {user_name!r} is taken, yet no such user is listed",
                               status=409)
        return replace(existing, adopted=True)

    def update_user(self, *, user_id: str, user_name: str | None = None,
                    display_name: str | None = None, given_name: str | None = None,
                    family_name: str | None = None, email: str | None = None) -> None:
        operations = user_changes(user_name=user_name, display_name=display_name,
                                  given_name=given_name, family_name=family_name, email=email)
        if operations:
            self._call("update_user", "PATCH", _at("Users", user_id), body=patch_body(operations))

    def set_user_active(self, *, user_id: str, active: bool) -> None:
        operations = [{"op": "replace", "path": "active", "value": active}]
        self._call("set_user_active", "PATCH", _at("Users", user_id), body=patch_body(operations))

    def delete_user(self, *, user_id: str) -> None:
        user = self.get_user(user_id=user_id)
        if user is None:
            return
        _refuse_unless_owned("user", user.user_name, user.external_id)
        self._call("delete_user", "DELETE", _at("Users", user_id), ok=(204, 200, 404))

    def list_users(self) -> list[ScimUser]:
        return [user_from_scim(doc) for doc in self._pages("list_users", "Users")]

    # -- groups -----------------------------------------------------------------------

    def find_group(self, *, display_name: str) -> ScimGroup | None:
        found = self._search("find_group", "Groups", eq_filter("displayName", display_name))
        return group_from_scim(found[0]) if found else None

    def create_group(self, *, display_name: str, external_id: str) -> ScimGroup:
        body = {"schemas": [GROUP_SCHEMA], "displayName": display_name,
                "externalId": mark_owned(external_id)}
        response = self._call("create_group", "POST", "Groups", body=body, ok=(201, 200, 409))
        if response.status_code != 409:
            return group_from_scim(response.json())
        existing = self.find_group(display_name=display_name)
        if existing is None:
            raise ScimConflict(f"group {display_name!r} is taken, yet no such group is listed",
                               status=409)
        return replace(existing, adopted=True)

    def delete_group(self, *, group_id: str) -> None:
        response = self._call("get_group", "GET", _at("Groups", group_id), ok=(200, 404))
        if response.status_code == 404:
            return
        group = group_from_scim(response.json())
        _refuse_unless_owned("group", group.display_name, group.external_id)
        self._call("delete_group", "DELETE", _at("Groups", group_id), ok=(204, 200, 404))

    def add_members(self, *, group_id: str, user_ids: list[str]) -> None:
        for body in member_patches("add", user_ids):
            self._call("add_members", "PATCH", _at("Groups", group_id), body=body)

    def remove_members(self, *, group_id: str, user_ids: list[str]) -> None:
        for body in member_patches("remove", user_ids):
            self._call("remove_members", "PATCH", _at("Groups", group_id), body=body)

    def is_member(self, *, group_id: str, user_id: str) -> bool:
        query = f"{eq_filter('id', group_id)} and {eq_filter('members', user_id)}"
        return bool(self._search("is_member", "Groups", query))

    def list_groups(self) -> list[ScimGroup]:
        return [group_from_scim(doc) for doc in self._pages("list_groups", "Groups")]

    # -- lists ------------------------------------------------------------------------

    def _search(self, name: str, endpoint: str, scim_filter: str) -> list[dict[str, Any]]:
        response = self._call(name, "GET", endpoint, params={"filter": scim_filter})
        return list(response.json().get("Resources") or [])

    def _pages(self, name: str, endpoint: str) -> list[dict[str, Any]]:
        """Every resource of a list, following AWS's cursors (``?cursor`` then nextCursor).

        A cursor seen twice ends the walk and resources are deduplicated by id, so a
        server that repeats a page cannot loop us forever.
        """
        found: dict[str, dict[str, Any]] = {}
        cursor, seen = "", set()
        while True:
            params = {"cursor": cursor, "count": PAGE_SIZE}
            page = self._call(name, "GET", endpoint, params=params).json()
            for document in page.get("Resources") or []:
                found.setdefault(document["id"], document)
            cursor = page.get("nextCursor")
            if not cursor or cursor in seen:
                return list(found.values())
            seen.add(cursor)


def _at(endpoint: str, object_id: str) -> str:
    """The path of one resource; the id is escaped so it can only name that resource."""
    return f"{endpoint}/{quote(object_id, safe='')}"


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _error_for(response: httpx.Response, what: str) -> ScimError:
    """The grantledger error for a SCIM answer we did not expect."""
    status, detail = response.status_code, error_detail(_json(response))
    message = f"SCIM {what} failed with {status}: {detail}"
    if status == 404:
        return ScimNotFound(message, status=status)
    if status == 409:
        return ScimConflict(message, status=status)
    if status == 429:
        return ScimThrottled(message, status=status,
                             hint="SCIM allows about 20 requests/s; lower GRANTLEDGER_SCIM_RATE")
    hint = "the request was refused as sent; see the detail" if status < 500 else \
        "Identity Center's SCIM service failed; retry later"
    return ScimError(message, status=status, hint=hint)


def _refuse_unless_owned(kind: str, name: str, external_id: str | None) -> None:
    if not is_owned(external_id):
        raise ScimNotOwned(f"refusing to delete {kind} {name!r}: its externalId "
                           f"{external_id!r} does not mark it as grantledger's")

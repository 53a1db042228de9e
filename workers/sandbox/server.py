"""The sandbox's one HTTP endpoint: a WSGI app that sends each request where it belongs.

- ``/scim/...``       -> the SCIM 2.0 app (``workers.sandbox.scim``), 501 if it is missing
- ``/_sandbox/...``   -> the control API (``workers.sandbox.control``)
- ``X-Amz-Target: SWBExternalService.*`` -> our sso-admin (``workers.sandbox.sso_admin``)
- everything else     -> moto's server (organizations, iam, identitystore, sts), with
  identitystore throttled at the same rate as sso-admin, as AWS does.

Every AWS call is counted as ``service:Operation``; refused ones also in ``throttled``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from workers.sandbox.limits import CallCounter, TokenBucket
from workers.sandbox.sso_admin import SsoAdminService, json_response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

#: X-Amz-Target prefixes of the JSON-protocol services, by boto3 service name.
TARGET_SERVICES = {
    "SWBExternalService": "sso-admin",
    "AWSIdentityStore": "identitystore",
    "AWSOrganizationsV20161128": "organizations",
}


class SandboxParts(Protocol):
    """What the WSGI app needs from the running sandbox (``workers.sandbox.Sandbox``)."""

    calls_counter: CallCounter
    throttled_counter: CallCounter
    identitystore_bucket: TokenBucket

    @property
    def sso_admin(self) -> SsoAdminService: ...

    @property
    def scim_app(self) -> WSGIApplication | None: ...


def api_name(environ: WSGIEnvironment) -> str:
    """``service:Operation`` of an AWS request (JSON target, or query-protocol Action)."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        prefix, _, operation = target.partition(".")
        return f"{TARGET_SERVICES.get(prefix, prefix)}:{operation}"
    return f"{_signing_service(environ)}:{_form_action(environ) or 'Unknown'}"


def _signing_service(environ: WSGIEnvironment) -> str:
    # Authorization: AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/SERVICE/aws4_request, ...
    credential = environ.get("HTTP_AUTHORIZATION", "").split("Credential=", 1)[-1]
    parts = credential.split(",", 1)[0].split("/")
    return parts[3] if len(parts) >= 5 else "unknown"


def _form_action(environ: WSGIEnvironment) -> str | None:
    """The Action of a query-protocol request; the body is put back for moto to read."""
    if not environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        return None
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return (parse_qs(body.decode("utf-8", "replace")).get("Action") or [None])[0]


def respond(start_response: StartResponse, status: int, body: dict[str, Any]
            ) -> Iterable[bytes]:
    """A JSON 1.1 answer, AWS-shaped."""
    status_line, headers, payload = json_response(status, body)
    start_response(status_line, headers)
    return [payload]


def read_body(environ: WSGIEnvironment) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return environ["wsgi.input"].read(length) if length else b""


class SandboxApp:
    """The WSGI app over the running sandbox ``parts``; ``control`` answers ``/_sandbox/``."""

    def __init__(self, parts: SandboxParts, *, control: WSGIApplication) -> None:
        self.parts = parts
        self.control = control
        self.moto = DomainDispatcherApplication(create_backend_app)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse
                 ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_sandbox/"):
            return self.control(environ, start_response)
        if path == "/scim" or path.startswith("/scim/"):
            return _scim(self.parts.scim_app, environ, start_response)
        return self.aws(environ, start_response)

    def aws(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Count, then our sso-admin, or moto behind identitystore's throttle."""
        name = api_name(environ)
        self.parts.calls_counter.add(name)
        if name.startswith("sso-admin:"):
            status, body = self.parts.sso_admin.answer(name.partition(":")[2],
                                                       read_body(environ))
        elif name.startswith("identitystore:") and not self.parts.identitystore_bucket.take():
            status, body = 400, {"__type": "ThrottlingException", "message": "Rate exceeded"}
        else:
            return self.moto(environ, start_response)
        if body.get("__type") == "ThrottlingException":
            self.parts.throttled_counter.add(name)
        return respond(start_response, status, body)


def make_app(parts: SandboxParts, *, control: WSGIApplication) -> WSGIApplication:
    """The sandbox's WSGI app over the running sandbox ``parts``."""
    return SandboxApp(parts, control=control)


def _scim(scim_app: WSGIApplication | None, environ: WSGIEnvironment,
          start_response: StartResponse) -> Iterable[bytes]:
    if scim_app is not None:
        return scim_app(environ, start_response)
    payload = json.dumps({"detail": "the sandbox SCIM server is not installed",
                          "status": "501"}).encode()
    start_response("501 Not Implemented", [("Content-Type", "application/scim+json"),
                                           ("Content-Length", str(len(payload)))])
    return [payload]

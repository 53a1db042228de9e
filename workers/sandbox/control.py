"""The control API under ``/_sandbox/``: what tests and operators ask of a running sandbox.

    GET  /_sandbox/info         endpoint, SCIM URL and token, instance ARN, identity store id
    GET  /_sandbox/calls        {"service:Operation": count} of every call received
    GET  /_sandbox/throttled    the same, for calls refused with ThrottlingException / 429
    GET  /_sandbox/assignments  every assignment: [[principal_type, principal_id, account, ps]]
    GET  /_sandbox/faults       the faults in force
    POST /_sandbox/faults       {"fail_next": N, "failure_reason": "...", "throttle_ratio": 0.5,
                                 "stall": true|false, "denied": ["ListInstances", ...]};
                                 keys left out stay as they are
    POST /_sandbox/reset        back to an empty organization and identity store
    POST /_sandbox/seed         a fixture (YAML or JSON body, see ``fixture.py``)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

import yaml
from werkzeug.wrappers import Request, Response

from models.errors import InputError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


class FaultSwitches(Protocol):
    def update(self, changes: dict[str, Any]) -> None: ...

    def state(self) -> dict[str, Any]: ...


class Controlled(Protocol):
    """What the control API drives (``workers.sandbox.Sandbox``)."""

    @property
    def faults(self) -> FaultSwitches: ...

    def info(self) -> dict[str, Any]: ...

    def calls(self) -> dict[str, int]: ...

    def throttled(self) -> dict[str, int]: ...

    def assignments(self) -> set[tuple[str, str, str, str]]: ...

    def reset(self) -> None: ...

    def seed(self, fixture: dict[str, Any]) -> object: ...


def _json(body: object, status: int = 200) -> Response:
    return Response(json.dumps(body, default=str), status=status,
                    content_type="application/json")


def _routes(sandbox: Controlled) -> dict[tuple[str, str], Callable[[Request], Response]]:
    def set_faults(request: Request) -> Response:
        sandbox.faults.update(request.get_json(force=True) or {})
        return _json(sandbox.faults.state())

    def reset(_: Request) -> Response:
        sandbox.reset()
        return _json({"reset": True})

    def seed(request: Request) -> Response:
        sandbox.seed(yaml.safe_load(request.get_data(as_text=True)) or {})
        return _json({"seeded": True})

    return {
        ("GET", "info"): lambda _: _json(sandbox.info()),
        ("GET", "calls"): lambda _: _json(sandbox.calls()),
        ("GET", "throttled"): lambda _: _json(sandbox.throttled()),
        ("GET", "assignments"): lambda _: _json(sorted(sandbox.assignments())),
        ("GET", "faults"): lambda _: _json(sandbox.faults.state()),
        ("POST", "faults"): set_faults,
        ("POST", "reset"): reset,
        ("POST", "seed"): seed,
    }


def make_control_app(sandbox: Controlled) -> WSGIApplication:
    """The WSGI app answering ``/_sandbox/<name>``."""
    routes = _routes(sandbox)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        name = request.path.removeprefix("/_sandbox/").strip("/")
        route = routes.get((request.method, name))
        if route is None:
            response = _json({"error": f"no {request.method} /_sandbox/{name}",
                              "routes": sorted(f"{m} /_sandbox/{n}" for m, n in routes)}, 404)
        else:
            try:
                response = route(request)
            except (InputError, ValueError, TypeError, yaml.YAMLError) as err:
                response = _json({"error": str(err)}, 400)
        return response(environ, start_response)

    return app

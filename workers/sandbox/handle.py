"""``Sandbox``: a local Identity Center served over HTTP, and the handle tests hold.

moto keeps its state in process-wide backends, and :meth:`Sandbox.start` / :meth:`reset`
wipe them: **one running Sandbox per process** (a second ``start()`` raises RuntimeError).
Sandboxes one after another in the same process are fine; each starts empty.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, ClassVar

import boto3
from moto.moto_server.werkzeug_app import MotoRequestHandler
from werkzeug.serving import BaseWSGIServer, make_server

from models.errors import ConfigError
from workers.sandbox.control import make_control_app
from workers.sandbox.fixture import Fixture, Seeded, seed_fixture
from workers.sandbox.identity_center import AssignmentKey, IdentityCenter
from workers.sandbox.limits import DEFAULT_FAILURE_REASON, CallCounter, Faults, TokenBucket
from workers.sandbox.moto_world import MotoWorld, reset_moto
from workers.sandbox.server import make_app
from workers.sandbox.sso_admin import SsoAdminService

INSTANCE_ID = "ssoins-7223a1b2c3d4e5f6"
IDENTITY_STORE_ID = "d-9067a1b2c3"


class QuietRequestHandler(MotoRequestHandler):
    """moto's request handler without a log line per request (tests make thousands)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class FaultControl:
    """The faults of a sandbox: ``fail_next(n)``, ``throttle_ratio``, ``stalled``,
    ``answer_delay``, and (through ``update``) ``slow_answers`` and ``denied``."""

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox

    def fail_next(self, count: int, *, reason: str = DEFAULT_FAILURE_REASON) -> None:
        """The next ``count`` creates/deletes end FAILED with ``reason``."""
        self._sandbox.fault_state.fail_next = count
        self._sandbox.fault_state.failure_reason = reason

    @property
    def throttle_ratio(self) -> float:
        return self._sandbox.fault_state.throttle_ratio

    @throttle_ratio.setter
    def throttle_ratio(self, ratio: float) -> None:
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"throttle_ratio must be within 0..1, not {ratio}")
        self._sandbox.fault_state.throttle_ratio = ratio

    @property
    def answer_delay(self) -> float:
        return self._sandbox.fault_state.answer_delay

    @answer_delay.setter
    def answer_delay(self, seconds: float) -> None:
        """Hold each create/delete answer this long after the work was accepted."""
        self._sandbox.fault_state.answer_delay = max(0.0, seconds)

    @property
    def stalled(self) -> bool:
        return self._sandbox.center.stalled

    @stalled.setter
    def stalled(self, stalled: bool) -> None:
        """True: operations stay IN_PROGRESS; False: they settle ``settle_delay`` later."""
        self._sandbox.center.set_stalled(stalled)

    def update(self, changes: dict[str, Any]) -> None:
        """Apply the control API's ``POST /_sandbox/faults`` body."""
        if "fail_next" in changes:
            self.fail_next(int(changes["fail_next"]),
                           reason=changes.get("failure_reason", DEFAULT_FAILURE_REASON))
        if "throttle_ratio" in changes:
            self.throttle_ratio = float(changes["throttle_ratio"])
        if "stall" in changes:
            self.stalled = bool(changes["stall"])
        if "answer_delay" in changes:
            self.answer_delay = float(changes["answer_delay"])
        if "slow_answers" in changes:
            self._sandbox.fault_state.slow_answers = tuple(changes["slow_answers"])
        if "denied" in changes:
            self._sandbox.fault_state.denied = frozenset(changes["denied"])

    def state(self) -> dict[str, Any]:
        faults = self._sandbox.fault_state
        return {"fail_next": faults.fail_next, "failure_reason": faults.failure_reason,
                "throttle_ratio": faults.throttle_ratio, "stall": self.stalled,
                "answer_delay": faults.answer_delay, "slow_answers": list(faults.slow_answers),
                "denied": sorted(faults.denied)}

    def clear(self) -> None:
        self.update({"fail_next": 0, "throttle_ratio": 0.0, "stall": False,
                     "answer_delay": 0.0, "slow_answers": Faults.slow_answers, "denied": ()})


class Sandbox:
    """A local IAM Identity Center: AWS APIs, SCIM and a control API on one endpoint."""

    _running: ClassVar[Sandbox | None] = None
    _running_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, *, settle_delay: float = 0.0, rate: float | None = None,
                 max_outstanding_creates: int = 15, scim_token: str = "sandbox-scim-token",
                 region: str = "us-east-1", settle_jitter: float = 0.0) -> None:
        self.settle_delay, self.rate, self.region = settle_delay, rate, region
        self.settle_jitter = settle_jitter  # each operation settles in delay + U(0, jitter)
        self.max_outstanding_creates = max_outstanding_creates
        self.scim_token = scim_token
        self.instance_arn = f"arn:aws:sso:::instance/{INSTANCE_ID}"
        self.identity_store_id = IDENTITY_STORE_ID
        self.world = MotoWorld(region=region, identity_store_id=IDENTITY_STORE_ID)
        self.calls_counter, self.throttled_counter = CallCounter(), CallCounter()
        self.fault_state = Faults()
        self.faults = FaultControl(self)
        self.endpoint_url = ""
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._scim_app: Any = None
        self._fresh_state()

    # -- life cycle -----------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0, *,
              log_requests: bool = False) -> Sandbox:
        """Serve on a background thread (``port=0``: any free port); returns self."""
        with Sandbox._running_lock:
            if Sandbox._running is not None:
                raise RuntimeError("a Sandbox is already running in this process: moto's "
                                   "state is process-wide; stop() it first")
            Sandbox._running = self
        try:
            self._serve(host, port, log_requests=log_requests)
        except BaseException:
            self.stop()
            raise
        return self

    def _serve(self, host: str, port: int, *, log_requests: bool) -> None:
        self.reset()
        app = make_app(self, control=make_control_app(self))
        handler = MotoRequestHandler if log_requests else QuietRequestHandler
        try:
            self._server = make_server(host, port, app, threaded=True,
                                       request_handler=handler)
        except SystemExit as exit_:  # werkzeug exits when the port is taken
            raise ConfigError(f"cannot serve the sandbox on {host}:{port}: address in use",
                              hint="choose another --port, or stop what listens there"
                              ) from exit_
        # A wildcard bind is reached through loopback from this machine.
        reachable = "127.0.0.1" if host in ("0.0.0.0", "") else host
        self.endpoint_url = f"http://{reachable}:{self._server.server_port}"
        # A short poll interval: stop() waits for it, and tests start many sandboxes.
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="grantledger-sandbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and let another Sandbox start."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None
        with Sandbox._running_lock:
            if Sandbox._running is self:
                Sandbox._running = None

    def __enter__(self) -> Sandbox:
        return self if self._server is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait(self) -> None:
        """Block while serving (Ctrl-C raises KeyboardInterrupt here)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=0.5)

    def reset(self) -> None:
        """Empty organization and identity store, no assignments, counters and faults zero."""
        reset_moto()
        self.world.create_organization()
        self._fresh_state()
        self.calls_counter.clear()
        self.throttled_counter.clear()
        if self.scim_app is not None:
            self.scim_app.reset()

    def _fresh_state(self) -> None:
        self.fault_state = Faults()
        self.center = IdentityCenter(
            directory=self.world, instance_id=INSTANCE_ID,
            identity_store_id=IDENTITY_STORE_ID, settle_delay=self.settle_delay,
            max_outstanding_creates=self.max_outstanding_creates, faults=self.fault_state,
            settle_jitter=self.settle_jitter)
        self._sso_admin = SsoAdminService(self.center, bucket=TokenBucket(self.rate))
        self.identitystore_bucket = TokenBucket(self.rate)

    # -- what the server needs ------------------------------------------------------------

    @property
    def sso_admin(self) -> SsoAdminService:
        return self._sso_admin

    @property
    def scim_app(self) -> Any:
        """The SCIM app, built on first use; None when ``workers.sandbox.scim`` is absent."""
        if self._scim_app is None:
            try:
                from workers.sandbox.scim import make_scim_app
            except ImportError:
                return None
            self._scim_app = make_scim_app(
                lambda: self.world.identitystore, token=self.scim_token,
                identity_store_id=IDENTITY_STORE_ID,
                rate_per_s=self.rate)  # None: no throttling
        return self._scim_app

    # -- what tests and operators use -----------------------------------------------------

    @property
    def scim_url(self) -> str:
        return f"{self.endpoint_url}/scim/v2/"

    def client(self, service_name: str, **kwargs: Any) -> Any:
        """A boto3 client for ``service_name`` pointed at this sandbox, dummy credentials."""
        options: dict[str, Any] = {
            "endpoint_url": self.endpoint_url, "region_name": self.region,
            "aws_access_key_id": "testing", "aws_secret_access_key": "testing",
        }
        return boto3.client(service_name, **{**options, **kwargs})  # type: ignore[call-overload]

    def seed(self, fixture: str | Path | Fixture) -> Seeded:
        """Create the accounts, permission sets, users, groups and assignments of a fixture."""
        return seed_fixture(fixture, world=self.world, center=self.center)

    def calls(self) -> dict[str, int]:
        """Calls received by ``service:Operation`` (SCIM ones as ``scim:CreateUser`` ...)."""
        counts = self.calls_counter.snapshot()
        if self._scim_app is not None:
            counts.update(self._scim_app.calls.snapshot())
        return counts

    def throttled(self) -> dict[str, int]:
        """AWS calls refused with ThrottlingException, by ``service:Operation``."""
        return self.throttled_counter.snapshot()

    def assignments(self) -> set[AssignmentKey]:
        """Every account assignment that exists now (ground truth for tests)."""
        return self.center.snapshot()

    def info(self) -> dict[str, Any]:
        return {"endpoint_url": self.endpoint_url, "scim_url": self.scim_url,
                "scim_token": self.scim_token, "instance_arn": self.instance_arn,
                "identity_store_id": self.identity_store_id, "region": self.region,
                "settle_delay": self.settle_delay, "settle_jitter": self.settle_jitter,
                "rate": self.rate,
                "max_outstanding_creates": self.max_outstanding_creates}


def serve_forever(*, host: str, port: int, fixture: str | None, settle_delay: float,
                  rate: float | None, env_file: str | None = None,
                  log_requests: bool = False) -> None:
    """Run the sandbox in the foreground (``grantledger sandbox serve``) until Ctrl-C;
    prints (and writes to ``env_file``) shell lines that point grantledger at it."""
    sandbox = Sandbox(settle_delay=settle_delay, rate=rate).start(host, port,
                                                                  log_requests=log_requests)
    try:
        if fixture:
            sandbox.seed(fixture)
        lines = [f"# grantledger sandbox: IAM Identity Center on {sandbox.endpoint_url}",
                 *(f"export {name}={value}" for name, value in settings_lines(sandbox)),
                 "# any AWS credentials work; Ctrl-C stops"]
        if env_file:
            Path(env_file).write_text("\n".join(lines) + "\n")
        print("\n".join(lines), flush=True)
        sandbox.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()


def settings_lines(sandbox: Sandbox) -> list[tuple[str, str]]:
    """The GRANTLEDGER_* settings that point grantledger at ``sandbox``."""
    return [("GRANTLEDGER_AWS_ENDPOINT_URL", sandbox.endpoint_url),
            ("GRANTLEDGER_AWS_REGION", sandbox.region),
            ("GRANTLEDGER_INSTANCE_ARN", sandbox.instance_arn),
            ("GRANTLEDGER_IDENTITY_STORE_ID", sandbox.identity_store_id),
            ("GRANTLEDGER_SCIM_URL", sandbox.scim_url),
            ("GRANTLEDGER_SCIM_TOKEN", sandbox.scim_token)]


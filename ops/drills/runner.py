"""Running one drill: a fresh stack, the workload, the fault, then the invariants checked
until they hold (recovery is the system's own: beat's sweeps and full syncs) or a deadline.
"""

from __future__ import annotations

import importlib.util
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from models.ledger import tables
from models.ledger.enums import GrantState, OperationState
from ops.drills.invariants import Violation, check, read_view, summary
from ops.drills.stack import Stack, StackOptions, poll_until
from ops.drills.workload import Workload, apply_people, approve_requests, seed_catalog
from tasks import events
from tasks.events import Next


@dataclass
class Scale:
    """Sizes and times of one run (``quick``: the CI subset's)."""

    users: int = 12
    requests: int = 12
    lasting: tuple[float, float] = (20.0, 35.0)  # seconds approved requests last
    recovery: float = 150.0  # seconds after the last expiry to converge in
    postgres_outage: float = 120.0


QUICK = Scale(users=6, requests=6, lasting=(10.0, 16.0), recovery=75.0, postgres_outage=30.0)
FULL = Scale()


@dataclass
class Context:
    """What an injector works with, and where it notes figures for the report."""

    stack: Stack
    workload: Workload
    scale: Scale
    notes: dict[str, Any] = field(default_factory=dict)

    def count(self, state: OperationState) -> int:
        with self.stack.runtime.sessions() as session:
            return session.scalar(select(func.count()).select_from(tables.Operation)
                                  .where(tables.Operation.state == state)) or 0

    def wait_for(self, condition: Callable[[], bool], *, what: str,
                 timeout: float = 60.0) -> None:
        if not poll_until(condition, timeout=timeout, interval=0.2):
            raise TimeoutError(f"drill setup: {what} not reached in {timeout:g}s")

    def in_flight(self, state: OperationState = OperationState.SUBMITTED, *,
                  at_least: int = 3) -> None:
        self.wait_for(lambda: self.count(state) >= at_least,
                      what=f"{at_least} operations {state.value}")

    def steady(self, timeout: float = 90.0) -> None:
        """Wait until the long-term assignments are ACTIVE and nothing is unsettled."""
        def done() -> bool:
            view = read_view(self.stack.runtime, self.stack.sandbox)
            active = {(g.key[0], g.name, g.key[2], g.permission_set) for g in view.grants
                      if g.state is GrantState.ACTIVE and g.key}
            busy = any(s in ("QUEUED", "SUBMITTED") for _, s, _ in view.operations)
            return self.workload.long_term() <= active and not busy
        self.wait_for(done, what="steady state", timeout=timeout)


Injector = Callable[[Context], None]


@dataclass(frozen=True)
class Drill:
    name: str
    fault: str
    inject: Injector
    options: Callable[[Scale], StackOptions] = lambda scale: StackOptions()
    ci: bool = False  # part of the fast subset pytest runs
    requires: str | None = None  # a Python module the drill needs (SKIP without it)
    # what else must hold after recovery, beyond the invariants (e.g. lag within a bound)
    verify: Callable[[Context], list[Violation]] | None = None


@dataclass
class DrillResult:
    name: str
    fault: str
    status: str  # PASS | FAIL | SKIP
    violations: list[Violation]
    seconds: float
    notes: dict[str, Any]

    @property
    def passed(self) -> bool:
        return self.status != "FAIL"

    def row(self) -> dict[str, Any]:
        """One line of the drill report."""
        lags = ("revocation_lag_p99_s", "revocation_lag_max_s")
        return {"drill": self.name, "fault": self.fault, "result": self.status,
                "seconds": round(self.seconds, 1), "broken": summary(self.violations),
                "lag": " / ".join(str(self.notes.get(k, "-")) for k in lags),
                "notes": ", ".join(f"{k}={v}" for k, v in self.notes.items()
                                   if k != "logs" and k not in lags)}


def start_workload(stack: Stack, scale: Scale) -> Workload:
    """Catalog, people, a full sync, then approved requests that expire during the drill."""
    seed_catalog(stack)
    workload = apply_people(stack, users=scale.users)
    stack.enqueue([Next(events.SYNC_FULL)])
    approved = approve_requests(stack, workload, count=scale.requests, lasting=scale.lasting)
    users = sorted({workload.users[i % len(workload.users)] for i in range(len(approved))})
    # The services announce on the process's default broker; publish on the stack's.
    stack.enqueue([events.sync_principals(users=users, reason="drill requests approved")])
    return workload


def converge(ctx: Context) -> list[Violation]:
    """Check the invariants until they hold after every request expired, or the deadline."""
    last_expiry = seconds_to_last_expiry(ctx)
    deadline = time.monotonic() + max(last_expiry, 0.0) + ctx.scale.recovery
    started = time.monotonic()
    while True:
        ctx.stack.revive()  # the supervisor's restart policy (docker-compose.yml)
        view = read_view(ctx.stack.runtime, ctx.stack.sandbox)
        violations = check(view, ctx.workload)
        expired = all(g.expires_at <= view.now for g in view.grants
                      if g.source[0] == "request" and g.expires_at)
        if expired and not violations:
            ctx.notes["converged_after_s"] = round(time.monotonic() - started, 1)
            ctx.notes.update(revocation_lags(view))
            return []
        if time.monotonic() > deadline:
            return violations or [Violation("timeout", "requests not all expired in time")]
        time.sleep(1.0)


def seconds_to_last_expiry(ctx: Context) -> float:
    """Seconds from now until the last workload request expires (database clock)."""
    with ctx.stack.runtime.sessions() as session:
        latest = session.scalar(select(func.max(tables.AccessRequest.expires_at)))
        now = session.scalar(select(func.now()))
    return (latest - now).total_seconds() if latest else 0.0


def seconds_to_first_expiry(ctx: Context) -> float:
    """Seconds from now until the first workload request expires (database clock)."""
    with ctx.stack.runtime.sessions() as session:
        first = session.scalar(select(func.min(tables.AccessRequest.expires_at)))
        now = session.scalar(select(func.now()))
    return (first - now).total_seconds() if first else 0.0


def revocation_lags(view: Any) -> dict[str, float | None]:
    """p99 and max of (revoked_at - expires_at) over the requests' grants, in seconds."""
    lags = sorted((g.revoked_at - g.expires_at).total_seconds() for g in view.grants
                  if g.source[0] == "request" and g.revoked_at and g.expires_at)
    if not lags:
        return {"revocation_lag_p99_s": None, "revocation_lag_max_s": None}
    p99 = lags[min(len(lags) - 1, math.ceil(0.99 * len(lags)) - 1)]
    return {"revocation_lag_p99_s": round(p99, 1), "revocation_lag_max_s": round(lags[-1], 1)}


def run(drill: Drill, *, scale: Scale) -> DrillResult:
    """One drill on a fresh stack; never raises (an error is a FAIL with its reason)."""
    if drill.requires and importlib.util.find_spec(drill.requires) is None:
        return DrillResult(drill.name, drill.fault, "SKIP", [], 0.0,
                           {"why": f"{drill.requires} is not installed"})

    started = time.monotonic()
    stack = Stack(drill.options(scale))
    notes: dict[str, Any] = {}
    violations: list[Violation] = []
    try:
        stack.start()
        ctx = Context(stack, start_workload(stack, scale), scale, notes)
        drill.inject(ctx)
        violations = converge(ctx)
        if not violations and drill.verify is not None:
            violations = drill.verify(ctx)
        if stack.restarts:
            notes["restarted"] = "; ".join(stack.restarts)
    except Exception as err:  # noqa: BLE001 - a drill that crashes has failed, say why
        violations = [Violation("drill-error", f"{err!r} at "
                                f"{traceback.format_exc(limit=-1).strip().splitlines()[-3]}")]
        notes["logs"] = str(stack.log_dir)
    finally:
        if "logs" not in notes and violations:
            notes["logs"] = str(stack.log_dir)
        stack.close()
    return DrillResult(drill.name, drill.fault, "FAIL" if violations else "PASS",
                       violations[:20], time.monotonic() - started, notes)

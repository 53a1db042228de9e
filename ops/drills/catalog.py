"""Every fault drill: what it breaks, and how (``inject``). Each starts on a stack whose
workload is in flight (a full sync and approved requests published); the runner checks the
invariants afterwards. Injectors only break things and restart processes the way an
orchestrator would: they never repair ledger or AWS state.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

from models.ledger.enums import OperationState
from ops.drills.invariants import Violation
from ops.drills.runner import (
    Context,
    Drill,
    Scale,
    seconds_to_first_expiry,
    seconds_to_last_expiry,
)
from ops.drills.stack import REPO, StackOptions, poll_until
from ops.drills.workload import ACCOUNTS, approve_requests
from tasks import events
from tasks.events import Next

QUEUED, SUBMITTED = OperationState.QUEUED, OperationState.SUBMITTED
CLOCK_OFFSET = 600.0  # seconds the workers' and beat's wall clock runs ahead
LAG_TARGET = 5.0  # seconds a revocation may be late, beyond an outage the drill causes


def _stalled(ctx: Context, state: OperationState = SUBMITTED) -> None:
    """Freeze AWS's operations IN_PROGRESS until a few are in flight."""
    ctx.stack.sandbox.faults.stalled = True
    ctx.in_flight(state)


def kill_child_before_call(ctx: Context) -> None:
    # AWS holds its answer to the existence check a submit makes before its create: the
    # tasks are stuck before the call that changes anything when their processes die.
    faults, calls = ctx.stack.sandbox.faults, ctx.stack.sandbox.calls
    faults.update({"slow_answers": ["ListAccountAssignmentsForPrincipal"], "answer_delay": 60})
    ctx.wait_for(lambda: calls().get("sso-admin:ListAccountAssignmentsForPrincipal", 0) >= 3,
                 what="submits waiting on AWS")
    ctx.notes["killed"] = _kill_children(ctx)
    faults.clear()


def kill_child_after_call(ctx: Context) -> None:
    _stalled(ctx)
    ctx.notes["killed"] = _kill_children(ctx)
    ctx.stack.sandbox.faults.stalled = False


def _kill_children(ctx: Context) -> int:
    children = ctx.stack.children()
    for pid in children:
        _signal(pid, signal.SIGKILL)
    return len(children)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def crash_before_request_id_saved(ctx: Context) -> None:
    # AWS accepts each create/delete, then holds the answer: the worker dies knowing nothing.
    sandbox = ctx.stack.sandbox
    sandbox.faults.answer_delay = 30.0
    ctx.wait_for(lambda: len(sandbox.center.operations("CREATE")) >= 2,
                 what="creates accepted by AWS")
    ctx.notes["accepted_unanswered"] = len(sandbox.center.operations("CREATE"))
    ctx.notes["killed"] = _kill_children(ctx)
    sandbox.faults.answer_delay = 0.0


def kill_main_worker(ctx: Context) -> None:
    _stalled(ctx)
    ctx.stack.kill_workers(signal.SIGKILL)
    ctx.stack.sandbox.faults.stalled = False
    ctx.stack.start_workers()


def sigterm_during_work(ctx: Context) -> None:
    _stalled(ctx)
    ctx.stack.kill_workers(signal.SIGTERM)  # warm shutdown: running tasks finish first
    ctx.stack.sandbox.faults.stalled = False
    ctx.stack.start_workers()


def redis_flushall(ctx: Context) -> None:
    _stalled(ctx)
    ctx.stack.redis.flushall()
    ctx.stack.sandbox.faults.stalled = False


def redis_restart(ctx: Context) -> None:
    _stalled(ctx)
    ctx.stack.redis.stop(save=True)
    time.sleep(3.0)
    ctx.stack.redis.start()
    ctx.stack.sandbox.faults.stalled = False


def redis_down_on_publish(ctx: Context) -> None:
    ctx.steady()
    ctx.stack.redis.stop(save=True)
    started = time.monotonic()
    approved = approve_requests(ctx.stack, ctx.workload, count=2, lasting=(15.0, 20.0))
    try:
        ctx.stack.enqueue([events.sync_principals(users=ctx.workload.users[:2], reason="x")])
        ctx.notes["publish"] = "accepted?"
    except Exception as err:  # noqa: BLE001 - what a service sees when the broker is down
        took = time.monotonic() - started
        ctx.notes["publish"] = f"refused after {took:.1f}s ({type(err).__name__})"
    ctx.notes["approved_while_down"] = len(approved)
    time.sleep(2.0)
    ctx.stack.redis.start()


def postgres_down(ctx: Context) -> None:
    outage = ctx.scale.postgres_outage
    ctx.in_flight(SUBMITTED, at_least=1)
    ctx.stack.postgres.stop()  # type: ignore[union-attr]
    time.sleep(outage)
    ctx.stack.postgres.start()  # type: ignore[union-attr]
    ctx.notes["outage_s"] = outage


def duplicate_delivery(ctx: Context) -> None:
    ctx.notes["copies_per_task"] = 10  # the workers and beat run `-A ops.drills.tenfold`


def throttling(ctx: Context) -> None:
    ctx.stack.sandbox.faults.throttle_ratio = 0.5
    ctx.notes["throttle_ratio"] = 0.5


def kill_beat(ctx: Context) -> None:
    ctx.in_flight(SUBMITTED, at_least=1)
    ctx.stack.stop_beats(signal.SIGKILL)
    time.sleep(2.0)
    ctx.stack.start_beat()


def two_beats(ctx: Context) -> None:
    ctx.stack.start_beat()
    ctx.notes["beats"] = len(ctx.stack.beats)


def foreign_assignment(ctx: Context) -> None:
    ctx.steady()
    sandbox, user = ctx.stack.sandbox, ctx.workload.users[-1]
    from ops.drills.invariants import read_view

    ours = read_view(ctx.stack.runtime, sandbox)
    principal = next(g.key[1] for g in ours.grants if g.name == user and g.key)
    arn = next(g.key[3] for g in ours.grants if g.permission_set == "ReadOnlyAccess" and g.key)
    sandbox.client("sso-admin").create_account_assignment(
        InstanceArn=sandbox.instance_arn, TargetId=ACCOUNTS["Staging"],
        TargetType="AWS_ACCOUNT", PermissionSetArn=arn, PrincipalType="USER",
        PrincipalId=principal)
    ctx.notes["foreign_added"] = f"{user}@Staging/ReadOnlyAccess"


def clock_skew(ctx: Context) -> None:
    ctx.notes["worker_clock"] = f"+{CLOCK_OFFSET / 60:g} min"


def poison_task(ctx: Context) -> None:
    poison = [Next(events.PROVISION_SUBMIT, ("poison",)), Next(events.POLL_OPERATION, (None,)),
              Next(events.SYNC_PRINCIPALS, kwargs={"users": 42}),
              Next("grantledger.no.such.task")]
    ctx.stack.enqueue(poison * 5)
    ctx.notes["poison_messages"] = len(poison) * 5


def sentinel_failover(ctx: Context) -> None:
    # Under load: the first revocations due, two more requests approved (their creates
    # queued or in flight), then the master dies and the sentinels promote the replica.
    sentinel = ctx.stack.redis
    ctx.wait_for(lambda: seconds_to_first_expiry(ctx) <= 0.5, what="the first expiry due")
    approve_requests(ctx.stack, ctx.workload, count=2, lasting=ctx.scale.lasting)
    ctx.stack.enqueue([events.sync_principals(users=ctx.workload.users[:2],
                                              reason="approved just before the failover")])
    killed = time.monotonic()
    sentinel.kill_master()
    ctx.wait_for(sentinel.writable_master, what="a replica promoted by the sentinels")
    ctx.notes["failover_s"] = round(time.monotonic() - killed, 1)
    ctx.notes["new_master"] = ":".join(map(str, sentinel.master_address() or ()))


def failover_recovered(ctx: Context) -> list[Violation]:
    """Revocations late by no more than the failover plus LAG_TARGET; the limiter and
    beat's leader lock work on the promoted master."""
    found = []
    lag, gap = ctx.notes.get("revocation_lag_max_s"), ctx.notes.get("failover_s", 0.0)
    if lag is None or lag > gap + LAG_TARGET:
        found.append(Violation("revocation-late", f"max revocation lag {lag}s > failover "
                               f"{gap}s + {LAG_TARGET:g}s"))
    try:
        ctx.stack.runtime.limiter.acquire("sso-admin", timeout=10)
        ctx.notes["limiter"] = "ok"
    except Exception as err:  # noqa: BLE001 - the finding is the report
        found.append(Violation("limiter-recovered", f"limiter after the failover: {err!r}"))
    client = ctx.stack.redis.client()
    if not poll_until(lambda: client.exists("redbeat::lock"), timeout=30):
        found.append(Violation("beat-lock-recovered", "no beat holds redbeat::lock on the "
                               "promoted master"))
    else:
        ctx.notes["beat_lock"] = "held"
    return found


def workers_down_past_expiries(ctx: Context) -> None:
    ctx.steady()
    ctx.stack.kill_workers(signal.SIGTERM)
    ctx.stack.stop_beats(signal.SIGTERM)
    wait = max(seconds_to_last_expiry(ctx), 0.0) + 5.0
    time.sleep(wait)
    ctx.stack.start_workers()
    ctx.stack.start_beat()
    ctx.notes["down_s"] = round(wait, 1)




# --- options -------------------------------------------------------------------------------


def _options(**changes: Any) -> Any:
    def build(scale: Scale) -> StackOptions:
        return StackOptions(**changes)
    return build


def _skewed_clock_options(scale: Scale) -> StackOptions:
    hook = Path(__file__).resolve().parent / "clock"
    return StackOptions(extra_env={"PYTHONPATH": f"{hook}{os.pathsep}{REPO}",
                                   "GRANTLEDGER_DRILL_CLOCK_OFFSET": str(CLOCK_OFFSET)})


DRILLS = [
    Drill("kill9-child-before-call", "kill -9 of worker children before the AWS call",
          kill_child_before_call),
    Drill("kill9-child-after-call", "kill -9 of worker children after the AWS call",
          kill_child_after_call, ci=True),
    Drill("crash-before-request-id", "crash after the AWS call, before the request id is "
          "saved", crash_before_request_id_saved),
    Drill("kill9-main-worker", "kill -9 of the main worker processes", kill_main_worker),
    Drill("sigterm-during-work", "SIGTERM to the workers during work", sigterm_during_work),
    Drill("redis-flushall", "Redis FLUSHALL mid-run", redis_flushall, ci=True),
    Drill("redis-restart", "Redis restarted mid-run", redis_restart),
    Drill("redis-down-on-publish", "Redis down when a task is published",
          redis_down_on_publish),
    Drill("postgres-down", "PostgreSQL down for 2 minutes (30 s with --quick)", postgres_down,
          _options(private_postgres=True)),
    Drill("duplicate-delivery", "every task delivered 10 times", duplicate_delivery,
          _options(copies=10), ci=True),
    Drill("throttling-50", "50% of AWS calls throttled", throttling),
    Drill("beat-killed", "beat killed (kill -9) and restarted", kill_beat),
    Drill("two-beats", "two beats at once", two_beats),
    Drill("foreign-assignment", "an assignment added behind our back (drift_mode=remove)",
          foreign_assignment, _options(settings={"drift_mode": "remove"})),
    Drill("clock-skew", "worker and beat clocks 10 minutes ahead", clock_skew,
          _skewed_clock_options, requires="time_machine"),
    Drill("poison-task", "poison tasks that always raise", poison_task),
    Drill("workers-down-past-expiries", "workers and beat down while every request expires, "
          "then restarted", workers_down_past_expiries, ci=True),
    Drill("sentinel-failover", "Redis master killed; Sentinel promotes the replica",
          sentinel_failover, _options(sentinel=True), verify=failover_recovered),
]
BY_NAME = {drill.name: drill for drill in DRILLS}

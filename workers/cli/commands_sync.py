"""Sync commands: `plan`, `sync`, `worker`, `beat`, `get grants`, `get operations`.

Where the work runs depends on the broker (GRANTLEDGER_BROKER_URL):
- embedded (``memory://``): `sync` runs the sync in this process with an in-process worker,
  until nothing is left to do (or --timeout);
- Redis: `sync` enqueues the sync for the workers; with --wait it follows the ledger until
  the sync ran and its work settled (or --timeout), with a live progress line.
`plan` (and `sync --dry-run`) always computes the plan here and changes nothing.
"""

from __future__ import annotations

import time
from typing import Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from workers.cli.app import app, get_app
from workers.cli.output import OutputOption, emit, finish, stderr, with_exit_codes
from workers.cli.waiting import report_key, sync_reported, sync_settled, take_report

PLAN_COLUMNS = ("change", "principal", "group", "account", "permission_set", "grants",
                "reason")
GRANT_COLUMNS = ("id", "principal", "account", "permission_set", "source", "state",
                 "expires_at", "reason")
STUCK_COLUMNS = ("id", "principal", "account", "permission_set", "state", "attempts", "reason")
OPERATION_COLUMNS = ("id", "kind", "principal", "account", "permission_set", "state",
                     "request_id", "attempts", "reason")
WAIT_POLL = 0.5
UserOption = typer.Option([], "--user", "-u", help="Only this user (repeatable).")
LogLevelOption = typer.Option("INFO", "--loglevel", help="DEBUG, INFO, WARNING or ERROR; lines "
                              "as text or JSON by GRANTLEDGER_LOG_FORMAT.")
ListOption = typer.Option([], "--list", "-l", help="Only this access list (repeatable).")


def _runtime() -> Any:
    from workers.runtime import get_runtime

    return get_runtime()


def _dry_run(users: list[str], lists: list[str]) -> Any:
    from tasks.sync.engine import plan_sync

    return plan_sync(runtime=_runtime(), users=users, lists=lists)


def _emit_plan(report: Any, output: str) -> None:
    drift = {"mode": report.drift_mode, "from": report.drift_from}
    counts = {k: v for k, v in sorted(report.counts.items()) if v}
    if output == "table":
        summary = ", ".join(f"{k} {v}" for k, v in counts.items()) or "nothing to do"
        emit(report.plan_rows(), fmt=output, columns=PLAN_COLUMNS,
             title=f"plan ({summary}); nothing applied; drift mode {drift['mode']} "
                   f"(from {drift['from']})")
        return
    emit({"counts": counts, "changes": report.plan_rows(), "errors": report.errors,
          "drift_mode": drift}, fmt=output)


@app.command("plan")
def plan_command(users: list[str] = UserOption, lists: list[str] = ListOption,
                 output: str = OutputOption) -> None:
    """Show what a sync would change in Identity Center; change nothing.

    Lists every change a sync would make, in its order: SCIM users and groups to create
    (scim_create_user, scim_create_group), group members to add or remove (member_add,
    member_remove: the user and the access list's group), assignments to create, delete,
    activate (already in AWS) or retire (another grant still backs it, or AWS no longer has
    it), and the assignments no grant explains (foreign_report, foreign_quarantine or
    foreign_remove, per the workers' drift mode).

    Examples:
      grantledger plan
      grantledger plan --user alice -o json
    """
    _emit_plan(_dry_run(users, lists), output)


@app.command("sync")
@with_exit_codes
def sync_command(
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan; apply nothing."),
    wait: bool = typer.Option(False, "--wait", help="With Redis: wait until the sync ran "
                              "and its AWS operations settled (embedded mode always waits)."),
    timeout: float = typer.Option(300.0, "--timeout", min=1, help="Seconds to wait."),
    user: str | None = typer.Option(None, "--user", "-u", help="Sync only this user."),
    reprovision: bool = typer.Option(False, "--reprovision", help="With --user: re-create "
                                     "the user in Identity Center if it was deleted there, "
                                     "then its assignments and group memberships."),
    output: str = OutputOption,
) -> None:
    """Make Identity Center match the ledger now (the periodic sync does it every 5 minutes).

    Errors of the sync (a SCIM push refused, an object Identity Center rejected, an AWS
    operation that ended FAILED while waiting) are listed on stderr; work still pending at
    --timeout: see `grantledger get operations`.

    Examples:
      grantledger sync --wait
      grantledger sync --user alice --reprovision --wait
      grantledger sync --dry-run
    """
    if reprovision and not user:
        raise typer.BadParameter("--reprovision needs --user", param_hint="--reprovision")
    if dry_run:
        _emit_plan(_dry_run([user] if user else [], []), output)
        return
    runtime = _runtime()
    started = _database_time(runtime)
    pending: dict[str, int] | None
    if runtime.settings.broker_url.startswith("memory"):
        summary, pending = _sync_embedded(runtime, user, reprovision, timeout, output)
    else:
        summary, pending = _sync_enqueued(runtime, user, reprovision, wait, timeout, output)
    emit({**summary, "pending": pending}, fmt=output, title="sync")
    unfinished = pending and any(pending.values())
    failed = _failed_since(runtime, started) if pending is not None else []
    finish(errors=[*(summary.get("errors") or []), *failed], unfinished=(
        f"still pending after {timeout:g}s: {pending}; follow it with `grantledger get "
        "operations --state SUBMITTED` or `grantledger status`") if unfinished else None)


def _database_time(runtime: Any) -> Any:
    from models.ledger.base import database_time

    with runtime.sessions() as session:
        return database_time(session)


def _failed_since(runtime: Any, started: Any) -> list[str]:
    from tasks.sync.views import failed_operations_since

    with runtime.sessions() as session:
        return failed_operations_since(session, started)


def _sync_embedded(runtime: Any, user: str | None, reprovision: bool, timeout: float,
                   output: str) -> tuple[dict[str, Any], dict[str, int]]:
    from tasks.events import enqueue
    from tasks.sync.engine import full_sync, reprovision_user, sync_principals
    from workers.celery.embedded import EmbeddedWorker

    with EmbeddedWorker(runtime, beat=False) as worker:
        if reprovision and user:
            report = reprovision_user(runtime=runtime, user=user)
        elif user:
            report = sync_principals(runtime=runtime, users=[user], reason="cli")
        else:
            report = full_sync(runtime=runtime)
        enqueue(report.next_work())
        deadline = time.monotonic() + timeout
        with _progress(output) as show:
            pending = worker.pending()
            while any(pending.values()) and time.monotonic() < deadline:
                show(pending)
                time.sleep(WAIT_POLL / 5)
                pending = worker.pending()
    return report.summary(), {k: v for k, v in pending.items() if v}


def _sync_enqueued(runtime: Any, user: str | None, reprovision: bool, wait: bool,
                   timeout: float, output: str) -> tuple[dict[str, Any], dict[str, int] | None]:
    from tasks.events import SYNC_FULL, SYNC_PRINCIPALS, Next, enqueue
    from tasks.sync.engine import restore_directory_user

    if reprovision and user:
        restore_directory_user(runtime=runtime, user=user)
    key = report_key("sync") if wait else None
    task = Next(SYNC_PRINCIPALS, kwargs={"users": [user], "reason": "cli", "report_key": key}) \
        if user else Next(SYNC_FULL, kwargs={"report_key": key})
    enqueue([task])
    if not wait:
        return {"enqueued": task.task, "users": [user] if user else "all"}, None
    return _follow(runtime, key or "", timeout, output)


def _follow(runtime: Any, key: str, timeout: float,
            output: str) -> tuple[dict[str, Any], dict[str, int]]:
    """Wait for the sync's report, then for its operations to settle (or the deadline)."""
    from tasks.sync.views import unsettled

    deadline = time.monotonic() + timeout
    pending = {"sync": 1}
    with _progress(output) as show:
        while time.monotonic() < deadline:
            if sync_settled(runtime, key):
                break
            with runtime.sessions() as session:
                pending = unsettled(session) if sync_reported(runtime, key) else {"sync": 1}
            show(pending)
            time.sleep(WAIT_POLL)
    summary = take_report(runtime, key)
    if summary is not None:
        with runtime.sessions() as session:
            pending = unsettled(session)
    return summary or {"sync": "not run yet: are workers running? (grantledger worker)"}, \
        {k: v for k, v in pending.items() if v}


class _progress:
    """A one-line live display of what is pending (silent for -o json/yaml)."""

    def __init__(self, output: str) -> None:
        self.enabled = output == "table"
        self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                  TimeElapsedColumn(), console=stderr, transient=True)
        self._task: Any = None

    def __enter__(self) -> Any:
        if self.enabled:
            self._progress.start()
            self._task = self._progress.add_task("syncing", total=None)
        return self.show

    def show(self, pending: dict[str, int]) -> None:
        if self.enabled:
            text = ", ".join(f"{k}: {v}" for k, v in pending.items() if v) or "settling"
            self._progress.update(self._task, description=f"waiting ({text})")

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._progress.stop()


# --- processes ---------------------------------------------------------------------------------


def _require_redis() -> Any:
    from models.errors import ConfigError
    from workers.settings import get_settings

    settings = get_settings()
    if not settings.uses_redis:
        raise ConfigError(
            f"GRANTLEDGER_BROKER_URL is {settings.broker_url!r}: a separate worker or beat "
            "process cannot share an in-process broker",
            hint="set GRANTLEDGER_BROKER_URL=redis://HOST:6379/0, or use `grantledger sync` "
                 "(embedded) / `grantledger run` (single process)")
    return settings


@app.command("worker")
def worker_command(
    concurrency: int = typer.Option(2, "--concurrency", "-c", min=1,
                                    help="Processes executing tasks."),
    queues: list[str] = typer.Option([], "--queues", "-Q", help="Queues to consume "
                                     "(repeatable; default: all)."),
    loglevel: str = LogLevelOption,
    metrics_port: int | None = typer.Option(
        None, "--metrics-port", min=0, max=65535,
        help="Serve this worker's Prometheus metrics (AWS calls, throttles, latency, "
             "operations settled, stuck revocations) on this port; 0: none "
             "(default: GRANTLEDGER_WORKER_METRICS_PORT, else none)."),
    metrics_host: str | None = typer.Option(
        None, "--metrics-host", help="Address the metrics port listens on "
                                     "(default: GRANTLEDGER_WORKER_METRICS_HOST, 127.0.0.1)."),
) -> None:
    """Run a Celery worker for the sync, provisioning, polling, expiry, import and notify
    queues (the same as `celery -A workers.celery.app worker`).

    With --metrics-port, the worker serves the counters of all its pool processes at
    http://HOST:PORT/metrics (the ledger's gauges are on the API's /metrics).

    Example: grantledger worker --concurrency 4 --metrics-port 9808 --metrics-host 0.0.0.0
    """
    settings = _require_redis()
    from workers.celery.app import QUEUES, celery_app
    from workers.logs import configure

    configure(settings, level=loglevel.upper())  # before Celery warns of anything
    unknown = sorted(set(queues) - set(QUEUES))
    if unknown:
        raise typer.BadParameter(f"unknown queue(s) {', '.join(unknown)}; choose from "
                                 f"{', '.join(QUEUES)}", param_hint="--queues")
    from workers.celery import worker_metrics

    port = settings.worker_metrics_port if metrics_port is None else metrics_port
    if port:
        worker_metrics.prepare()  # before Celery loads the task modules and their metrics
        worker_metrics.serve(port=port, host=metrics_host or settings.worker_metrics_host)
    else:
        worker_metrics.skip()
    quiet = ["--quiet"] if settings.log_format == "json" else []  # no banner among JSON lines
    celery_app.worker_main([*quiet, "worker", f"--concurrency={concurrency}",
                            f"--queues={','.join(queues or QUEUES)}", f"--loglevel={loglevel}"])


@app.command("beat")
def beat_command(loglevel: str = LogLevelOption) -> None:
    """Run the scheduler: full sync, import refresh, expiry and poll sweeps on their intervals.

    Several may run; a Redis lock (celery-redbeat) keeps exactly one of them sending.

    Example: grantledger beat
    """
    settings = _require_redis()
    from workers.celery.app import BEAT_SCHEDULER, celery_app
    from workers.logs import configure

    configure(settings, level=loglevel.upper())  # before Celery warns of anything
    celery_app.Beat(scheduler=BEAT_SCHEDULER, loglevel=loglevel, max_interval=1,
                    quiet=settings.log_format == "json").run()


# --- get grants | operations -------------------------------------------------------------------


@get_app.command("grants")
def get_grants_command(
    user: str | None = typer.Option(None, "--user", "-u", help="Grants of this user and of "
                                    "the access lists (groups) it belongs to."),
    state: str | None = typer.Option(None, "--state", "-s", help="Only this state (default: "
                                     "every state but REVOKED)."),
    stuck: bool = typer.Option(False, "--stuck", help="Only revocations that keep failing."),
    output: str = OutputOption,
) -> None:
    """Grants in the ledger, with their state, expiry and AWS's failure reason.

    Examples:
      grantledger get grants --user alice
      grantledger get grants --state FAILED -o json
      grantledger get grants --stuck
    """
    from tasks.sync.views import GRANT_STATES, grant_rows

    state = _state(state, GRANT_STATES)
    with _runtime().sessions() as session:
        rows = grant_rows(session, user=user, state=state, stuck=stuck)
    emit(rows, fmt=output, columns=STUCK_COLUMNS if stuck else GRANT_COLUMNS,
         title=f"grants ({len(rows)})")


@get_app.command("operations")
def get_operations_command(
    state: str | None = typer.Option(None, "--state", "-s", help="Only this state."),
    limit: int = typer.Option(200, "--limit", min=1, help="The most recent N."),
    output: str = OutputOption,
) -> None:
    """AWS operations (assignment creates and deletes): state, AWS request id, attempts and
    the failure reason.

    Example: grantledger get operations --state FAILED
    """
    from tasks.sync.views import OPERATION_STATES, operation_rows

    state = _state(state, OPERATION_STATES)
    with _runtime().sessions() as session:
        rows = operation_rows(session, state=state, limit=limit)
    emit(rows, fmt=output, columns=OPERATION_COLUMNS, title=f"operations ({len(rows)})")


def _state(value: str | None, allowed: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    if value.upper() not in allowed:
        raise typer.BadParameter(f"unknown state {value!r}; choose from {', '.join(allowed)}",
                                 param_hint="--state")
    return value.upper()

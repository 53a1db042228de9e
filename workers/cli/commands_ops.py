"""Operator commands: the local sandbox (and, as they land, demo, run, status, doctor)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from models.errors import NotSetUp
from workers.cli.app import app
from workers.cli.output import OutputOption, emit, stderr

sandbox_app = typer.Typer(help="The local IAM Identity Center (AWS APIs + SCIM) for trials, "
                               "tests and benchmarks.", no_args_is_help=True)
app.add_typer(sandbox_app, name="sandbox")


@sandbox_app.command("serve")
def sandbox_serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(5000, help="Port to listen on (0 picks a free one)."),
    fixture: Path | None = typer.Option(
        None, exists=True, dir_okay=False,
        help="YAML fixture to seed (e.g. ops/examples/sandbox-small.yaml)."),
    settle_delay: float = typer.Option(2.0, min=0, help="Seconds before an assignment "
                                       "operation leaves IN_PROGRESS."),
    rate: float = typer.Option(20.0, min=0, help="sso-admin requests/s before "
                               "ThrottlingException; 0 turns throttling off."),
    env_file: Path | None = typer.Option(None, "--env-file", dir_okay=False, help="Also "
                                         "write the export lines to this file (source it)."),
) -> None:
    """Serve a faithful local Identity Center until Ctrl-C.

    Prints `export GRANTLEDGER_...=...` lines that point grantledger at it (comments
    aside, the output can be sourced as it is). One log line per request only with
    GRANTLEDGER_LOG_LEVEL=DEBUG.

    Examples:
      grantledger sandbox serve --fixture ops/examples/sandbox-small.yaml --env-file sandbox.env &
      source sandbox.env && grantledger import --preview
    """
    from workers.sandbox import serve_forever
    from workers.settings import get_settings

    serve_forever(host=host, port=port, fixture=str(fixture) if fixture else None,
                  settle_delay=settle_delay, rate=rate or None,
                  env_file=str(env_file) if env_file else None,
                  log_requests=get_settings().log_level.upper() == "DEBUG")


@app.command("status")
def status_command(output: str = OutputOption) -> None:
    """Pending and stuck work at a glance.

    Queue depth per queue, outstanding AWS operations, failed grants with AWS's reasons,
    stuck revocations, the next expiries, the last full sync and its counts, limiter usage,
    the SCIM token's age, and status polling: its mode and, in "list" mode, the last poll
    round and whether AWS refuses its listing (then each operation is polled with Describe).
    Also the foreign assignments (no grant explains them) and the drift mode the workers
    handle them with, and each scheduled job's last and next run.
    Exit 0 even when something is failed: this command reports. Exit 1 when there is no
    ledger at all (nothing set up; none is created).

    Example: grantledger status -o json
    """
    from tasks.admin.status import missing_ledger
    from workers.runtime import get_runtime
    from workers.status import full_status

    runtime = get_runtime()
    absent = missing_ledger(runtime.settings.database_url)
    if absent is not None:
        raise NotSetUp(
            f"nothing is set up here: there is no ledger at {absent} "
            "(GRANTLEDGER_DATABASE_URL), so nothing is enrolled and no work is known",
            hint="try it with `grantledger demo`; to enrol an Identity Center, see README "
                 "(Real AWS): `grantledger import --preview`, then `grantledger import "
                 "--default-owner USER`; or point GRANTLEDGER_DATABASE_URL at your ledger")
    report = full_status(runtime)
    if output != "table":
        emit(report.as_dict(), fmt=output)
        return
    print_status(report)


def print_status(report: Any) -> None:
    """The status as a few small rich tables."""
    summary = {
        "database time": report.database_time,
        "enrolled": "yes" if report.enrolled else "NO: nothing enrolled yet; run `grantledger "
        "import --preview`, then `grantledger import --default-owner USER`",
        "grants": report.grants_by_state,
        "operations": report.operations_by_state,
        "outstanding operations": report.outstanding_operations,
        "stuck revocations": report.stuck_revocations,
        "overdue expiries": report.overdue_expiries,
        "queues": report.queues if any(v is not None for v in report.queues.values())
        else "in-process broker (no shared queues)",
        "outstanding creates": (report.limiter or {}).get("outstanding_creates"),
        "last full sync": last_sync_summary(report.last_full_sync),
        "SCIM token age": token_age(report.scim_token_age_days),
        "overdue access reviews": report.overdue_reviews or "none",
        "undelivered notifications": report.notifications.get("undelivered"),
        "status polling": polling_summary(report.status_polling),
        "SCIM pushes": scim_summary(report),
        "foreign assignments": foreign_summary(report.foreign, report.drift_mode),
    }
    emit(summary, fmt="table", title="grantledger status")
    if report.broker_error:
        stderr.print(f"[yellow]warning:[/] {report.broker_error}")
    if report.status_polling.get("listing_refused"):
        reasons = "; ".join(report.status_polling["refused"].values())
        stderr.print(f"[yellow]warning:[/] {escape(reasons)}. Poll rounds fall back to "
                     f"Describe polls per operation. Fix: {escape(report.status_polling['fix'])}")
    if report.scim_outage is not None:
        stderr.print(f"[red]SCIM pushes stopped:[/] {escape(str(report.scim_outage['reason']))}."
                     " Access-list membership changes, removals included, are not reaching "
                     f"Identity Center. Fix: {escape(report.scim_outage['fix'])}")
    if report.scim_token_warning:
        stderr.print(f"[yellow]warning:[/] {report.scim_token_warning}")
    if report.failed_grants:
        emit(report.failed_grants, fmt="table", title="failed grants",
             columns=["id", "principal", "account", "source", "attempts", "stuck", "reason"])
    if report.next_expiries:
        emit(report.next_expiries, fmt="table", title="next expiries",
             columns=["id", "principal", "account", "source", "expires_at"])
    if report.foreign.get("shown"):
        emit(report.foreign["shown"], fmt="table", title=f"foreign assignments (first "
             f"{len(report.foreign['shown'])} of {report.foreign['count']})",
             columns=["principal_type", "principal_name", "principal_id", "account_id",
                      "permission_set_arn", "quarantined", "first_seen"])
    if report.scheduled_jobs:
        emit([{**job, "last_run": when(job["last_run"]) if job["last_run"] else "never",
               "next_run": when(job["next_run"]) if job["next_run"] else "at beat's next tick"}
              for job in report.scheduled_jobs], fmt="table", title="scheduled jobs",
             columns=["job", "every", "last_run", "last_state", "next_run", "schedule_from"])


def token_age(days: float | None) -> str:
    """The SCIM token's age for people (AWS's tokens last a year)."""
    if days is None:
        return "unknown (set GRANTLEDGER_SCIM_TOKEN_CREATED_AT)"
    whole = int(days)
    return f"{whole} day{'s' if whole != 1 else ''}"


def scim_summary(report: Any) -> str:
    if not report.scim_configured:
        return "not configured (GRANTLEDGER_SCIM_URL unset): nothing is pushed"
    if report.scim_outage is not None:
        return f"STOPPED since {report.scim_outage['since']}"
    return "ok"


def foreign_summary(foreign: dict[str, Any], drift_mode: dict[str, Any]) -> str:
    """How many foreign assignments the syncs found, and what the workers do with them."""
    workers = drift_mode.get("workers")
    mode = f"workers' drift mode {workers}" if workers else \
        f"drift mode {drift_mode.get('this_process')} (this process's; no worker recorded its own)"
    return f"{foreign.get('count', 0)} ({foreign.get('quarantined', 0)} quarantined); {mode}"


def last_sync_summary(last: dict[str, Any] | None) -> str:
    """When the last full sync ended, how long it took and what it changed."""
    if not last or not last.get("finished_at"):
        return "never"
    counts = ", ".join(f"{k} {v}" for k, v in (last.get("counts") or {}).items() if v)
    errors = len(last.get("errors") or [])
    return (f"{when(last['finished_at'])} ({last.get('duration', 0):g}s"
            f"{'; ' + counts if counts else ''}{f'; {errors} error(s)' if errors else ''})")


def when(moment: Any) -> str:
    """A timestamp for people: to the second, with its zone."""
    return f"{moment:%Y-%m-%d %H:%M:%S %Z}".strip() if hasattr(moment, "strftime") else str(moment)


def polling_summary(polling: dict[str, Any]) -> str:
    """Status polling in one line: the mode; in "list" mode the last round, and whether AWS
    refuses its listing."""
    mode = polling.get("mode")
    if mode != "list":
        return "describe (each operation polled with Describe)" if mode == "describe" \
            else "unknown"
    last = polling.get("last_round_at")
    when = f"last round {last:%Y-%m-%d %H:%M:%S %Z}" if last else "no round recorded yet"
    if polling.get("listing_refused"):
        kinds = " and ".join(sorted(polling.get("refused", {})))
        return f"list: {kinds} listing REFUSED, Describe fallback in force ({when})"
    return f"list ({when})"


@app.command("doctor")
def doctor_command(output: str = OutputOption) -> None:
    """Check the whole install and say how to fix each failure.

    Settings, database (reachable, migrated to head), clock skew against the database,
    broker, live workers, AWS instance and identity store, each read API the integration
    uses (AccessDenied names the missing IAM action; the status listings only with
    GRANTLEDGER_STATUS_POLLING=list), SCIM URL and token (and its age).
    Exit 0 only when every check passes.

    Example: grantledger doctor -o json
    """
    from workers.doctor import run_checks
    from workers.runtime import Runtime
    from workers.settings import get_settings

    checks = run_checks(get_settings(), runtime_factory=Runtime)
    rows = [check.as_dict() for check in checks]
    if output == "table":
        for row in rows:
            row["ok"] = "PASS" if row["ok"] else "FAIL"
        emit(rows, fmt="table", title="grantledger doctor", columns=["ok", "name", "detail", "fix"])
    else:
        emit(rows, fmt=output)
    failed = [check.name for check in checks if not check.ok]
    if failed:
        stderr.print(f"[red]{len(failed)} check(s) failed:[/] {', '.join(failed)}")
        raise typer.Exit(1)

"""Operator commands: the local sandbox (and, as they land, demo, run, status, doctor)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

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
) -> None:
    """Serve a faithful local Identity Center until Ctrl-C.

    Prints the GRANTLEDGER_* settings that point grantledger at it.

    Example: grantledger sandbox serve --port 5000 --fixture ops/examples/sandbox-small.yaml
    """
    from workers.sandbox import serve_forever

    serve_forever(host=host, port=port, fixture=str(fixture) if fixture else None,
                  settle_delay=settle_delay, rate=rate or None)


@app.command("status")
def status_command(output: str = OutputOption) -> None:
    """Pending and stuck work at a glance.

    Queue depth per queue, outstanding AWS operations, failed grants with AWS's reasons,
    stuck revocations, the next expiries, the last full sync and its counts, limiter usage,
    the SCIM token's age, and status polling: its mode and, in "list" mode, the last poll
    round and whether AWS refuses its listing (then each operation is polled with Describe).
    Exit 0 even when something is failed: this command reports.

    Example: grantledger status -o json
    """
    from tasks.status import full_status
    from workers.runtime import get_runtime

    report = full_status(get_runtime())
    if output != "table":
        emit(report.as_dict(), fmt=output)
        return
    print_status(report)


def print_status(report: Any) -> None:
    """The status as a few small rich tables."""
    summary = {
        "database time": report.database_time,
        "grants": report.grants_by_state,
        "operations": report.operations_by_state,
        "outstanding operations": report.outstanding_operations,
        "stuck revocations": report.stuck_revocations,
        "overdue expiries": report.overdue_expiries,
        "queues": report.queues if any(v is not None for v in report.queues.values())
        else "in-process broker (no shared queues)",
        "outstanding creates": (report.limiter or {}).get("outstanding_creates"),
        "last full sync": last_sync_summary(report.last_full_sync),
        "SCIM token age (days)": report.scim_token_age_days,
        "overdue access reviews": report.overdue_reviews,
        "undelivered notifications": report.notifications.get("undelivered"),
        "status polling": polling_summary(report.status_polling),
        "SCIM pushes": "ok" if report.scim_outage is None else
        f"STOPPED since {report.scim_outage['since']}",
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
    from tasks.doctor import run_checks
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

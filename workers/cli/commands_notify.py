"""CLI commands: notifications (test the channels, list what is still undelivered)."""

from __future__ import annotations

import typer

from workers.cli.app import app
from workers.cli.output import OutputOption, emit, finish

notify_app = typer.Typer(help="Webhook and Slack notifications of requests, grants and "
                              "revocations (GRANTLEDGER_NOTIFY_*).", no_args_is_help=True)
app.add_typer(notify_app, name="notify")


@notify_app.command("test")
def notify_test(
    event: str = typer.Option("request.created", "--event",
                              help="Which kind of notice to send (e.g. grant.expiring)."),
    output: str = OutputOption,
) -> None:
    """Send one test notice now to every configured channel and show each answer.

    Exit 0 only when every channel answered 2xx; 3 when some did, 1 when none did or none is
    configured (set GRANTLEDGER_NOTIFY_WEBHOOK_URL and/or GRANTLEDGER_NOTIFY_SLACK_URL).

    Example: grantledger notify test --event grant.expiring
    """
    from tasks.notify.probe import send_test_notice
    from workers.settings import get_settings

    answers = send_test_notice(settings=get_settings(), event=event)
    rows = [{"channel": a.channel, "ok": a.ok, "status": a.status,
             "ms": round(a.seconds * 1000, 1), "answer": a.detail} for a in answers]
    emit(rows, fmt=output, title=f"notify test ({event})",
         columns=["channel", "ok", "status", "ms", "answer"])
    failed = [f"channel {a.channel} failed: {a.detail}" for a in answers if not a.ok]
    finish(errors=failed, unfinished="no channel accepted the notice"
           if failed and len(failed) == len(answers) else None)


@notify_app.command("pending")
def notify_pending(output: str = OutputOption) -> None:
    """Undelivered notices: how many, the oldest, and those failing for many attempts.

    Example: grantledger notify pending -o json
    """
    from models.ledger.db import transaction
    from tasks.notify.delivery import outbox_backlog
    from workers.runtime import get_runtime

    with transaction(get_runtime().sessions) as session:
        backlog = outbox_backlog(session)
    if output != "table":
        emit(backlog, fmt=output)
        return
    emit({k: v for k, v in backlog.items() if k != "failing"}, fmt="table",
         title="notification outbox")
    if backlog["failing"]:
        emit(backlog["failing"], fmt="table", title="failing notices",
             columns=["id", "event", "attempts", "next_attempt_at", "last_error"])

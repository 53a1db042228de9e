"""Ledger commands: `db upgrade`, `db current` (migrations) and `audit` (the trail, and who
held what at a moment)."""

from __future__ import annotations

import json

import typer

from workers.cli.app import app
from workers.cli.commands_resources import cli_actor, ledger_sessions, parse_time
from workers.cli.output import OutputOption, emit, plain

db_app = typer.Typer(help="The ledger database: schema migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _status(url: str) -> dict[str, object]:
    from sqlalchemy.engine import make_url

    from models.ledger import migrate

    revision, head = migrate.current(url), migrate.head()
    return {"database": make_url(url).render_as_string(hide_password=True),
            "revision": revision, "head": head, "at_head": revision == head}


@db_app.command("upgrade")
def db_upgrade_command(output: str = OutputOption) -> None:
    """Migrate the ledger (GRANTLEDGER_DATABASE_URL) to the newest schema; safe to repeat.

    Example: GRANTLEDGER_DATABASE_URL=postgresql://grantledger@db/grantledger grantledger db upgrade
    """
    from models.ledger import migrate
    from workers.settings import get_settings

    url = get_settings().database_url
    migrate.upgrade(url)
    emit(_status(url), fmt=output, title="ledger schema")


@db_app.command("current")
def db_current_command(output: str = OutputOption) -> None:
    """Print the ledger's schema revision and whether it is at head.

    Example: grantledger db current -o json
    """
    from workers.settings import get_settings

    emit(_status(get_settings().database_url), fmt=output, title="ledger schema")


TRAIL_COLUMNS = ("at", "actor", "action", "target_kind", "target", "principal_name",
                 "account_id", "reason")
HOLDER_COLUMNS = ("account_id", "permission_set", "user", "via", "since", "until")


@app.command("audit")
def audit_command(
    user: str | None = typer.Option(None, "--user", help="What the user did, and what "
                                    "happened to them and their access."),
    account: str | None = typer.Option(None, "--account", help="Events about one account "
                                       "id (12 digits)."),
    since: str | None = typer.Option(None, "--since", help="From this time (2027-01-31, "
                                     "2027-01-31T09:00:00Z) or this long ago (2h, 7d)."),
    until: str | None = typer.Option(None, "--until", help="Before this time (same forms)."),
    at: str | None = typer.Option(None, "--at", help="Instead of the trail: who had which "
                                  "account assignment at this time, person by person (grants "
                                  "of access lists expanded to their members then); with "
                                  "--user and/or --account, only theirs."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the newest N events."),
    output: str = OutputOption,
) -> None:
    """The audit trail, oldest first; or, with --at, who had which assignment at a moment:
    "did dave have access to Production at T?" is `audit --at T --user dave --account ID`.

    `-o json` on the trail prints JSON lines (one event per line) for a SIEM.

    Examples: grantledger audit --user alice --since 7d;
    grantledger audit --at 2027-01-31T09:00:00Z --account 111111111111;
    grantledger audit --since 1d -o json >> siem.jsonl
    """
    from tasks.access import queries

    if at is not None:
        from tasks.access.access_at import access_at

        rows = access_at(sessions=ledger_sessions(), viewer=cli_actor(),
                         at=parse_time(at, option="--at"),
                         user=user, account_id=account)
        emit(rows, fmt=output, columns=HOLDER_COLUMNS,
             title=f"access at {at}{f' of {user}' if user else ''}"
                   f"{f' to {account}' if account else ''} ({len(rows)})")
        return
    events = queries.audit_trail(
        sessions=ledger_sessions(), viewer=cli_actor(), user=user, account_id=account,
        limit=limit,
        since=parse_time(since, option="--since") if since else None,
        until=parse_time(until, option="--until") if until else None)
    if output.lower() == "json":
        for event in events:
            typer.echo(json.dumps(plain(event), separators=(",", ":")))
        return
    emit(events, fmt=output, columns=TRAIL_COLUMNS, title="audit trail")

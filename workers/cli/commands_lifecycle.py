"""Lifecycle commands: `revoke` / `restore` (offboarding, emergencies), `uninstall`, and
`aws-config` (AWS CLI profiles for a user).

Where the work of a revoke or restore runs depends on the broker, as for `sync`: embedded
(``memory://``): an in-process worker until nothing is left (or --timeout); Redis: enqueued
for the workers, and with --wait the ledger is followed until the work settled.
`uninstall` runs its deletes in this process, so it works with the workers stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import typer
from rich.markup import escape

from models.errors import AwsError, ConfigError, ScimError
from workers.cli.app import app
from workers.cli.commands_resources import ActorOption, actor_name, checked_text
from workers.cli.output import OutputOption, emit, finish, stderr, with_exit_codes
from workers.cli.waiting import report_key, sync_settled, take_report

WAIT_POLL = 0.2
REMOVED_COLUMNS = ("grant", "account", "permission_set", "source", "state", "reason")
UNINSTALL_COLUMNS = ("kind", "name", "id", "account", "permission_set")
UserOption = typer.Option(..., "--user", "-u", help="The user (ledger name).")
ReasonOption = typer.Option(..., "--reason", "-r", help="Why; kept in the audit trail.",
                            callback=checked_text)
TimeoutOption = typer.Option(120.0, "--timeout", min=1, help="Seconds to wait.")


def _runtime() -> Any:
    from workers.runtime import get_runtime

    return get_runtime()


# --- revoke / restore ------------------------------------------------------------------------


@app.command("revoke")
@with_exit_codes
def revoke_command(
    user: str = UserOption, reason: str = ReasonOption,
    wait: bool = typer.Option(False, "--wait", help="With Redis: follow until every delete "
                              "settled and the groups were emptied (embedded always waits)."),
    deactivate: bool = typer.Option(False, "--deactivate", help="Also disable the user's "
                                    "sign-in in Identity Center (SCIM active=false)."),
    timeout: float = TimeoutOption, actor: str | None = ActorOption,
    output: str = OutputOption,
) -> None:
    """Offboarding or emergency: suspend a user and remove everything they hold, now.

    In one transaction: the user is suspended (no sync grants them anything until
    `grantledger restore`), every grant they hold starts its revocation, the deletes of
    their direct assignments are recorded, pending requests are denied and approved ones
    ended. Then the deletes go out as one burst, a targeted sync removes the user from every
    group, and direct assignments no grant explains are deleted too.

    The suspension holds whatever else fails; failed deletes are retried with backoff.

    Examples:
      grantledger revoke --user alice --reason "left the company (HR-1234)" --wait
      grantledger revoke --user bob --reason "incident INC-42" --deactivate --wait
    """
    from tasks.access.offboarding import revoke_user

    runtime, actor = _runtime(), actor_name(actor)
    revocation = revoke_user(sessions=runtime.sessions, user=user, reason=reason, actor=actor,
                             drift_mode=runtime.settings.drift_mode)
    embedded = runtime.settings.broker_url.startswith("memory")
    key = report_key("revoke") if wait or embedded else None

    def carry_out() -> list[str]:
        return _carry_out(runtime, revocation, key=key, deactivate=deactivate, actor=actor)

    result = _run(runtime, carry_out, embedded=embedded, timeout=timeout,
                  done=None if key is None else lambda: _revocation_done(runtime, revocation,
                                                                        key))
    _report_revocation(runtime, revocation, key, result, output)


def _carry_out(runtime: Any, revocation: Any, *, key: str | None, deactivate: bool,
               actor: str) -> list[str]:
    """After the commit: the burst of deletes, the group removal, what no grant explains,
    and the sign-in; the problems met (the suspension holds whatever happens here)."""
    from tasks.access.offboarding import deactivate_directory_user, remove_unexplained_assignments
    from tasks.events import enqueue, submit

    enqueue(revocation.next_work(report_key=key))
    problems = []
    try:
        unexplained = remove_unexplained_assignments(runtime=runtime, revocation=revocation,
                                                     actor=actor)
        enqueue([submit(operation_id) for operation_id in unexplained])
    except AwsError as err:
        problems.append(f"could not list {revocation.user}'s assignments in AWS: {err}")
    if deactivate:
        try:
            if not deactivate_directory_user(runtime=runtime, user=revocation.user,
                                             reason=revocation.reason, actor=actor):
                problems.append(f"{revocation.user} has no Identity Center user to deactivate")
        except ScimError as err:
            problems.append(f"could not deactivate {revocation.user}: {err}")
    return problems


def _run(runtime: Any, carry_out: Callable[[], list[str]], *, embedded: bool, timeout: float,
         done: Callable[[], bool] | None) -> dict[str, Any]:
    """Do the work (in an in-process worker when embedded) and wait as asked."""
    if embedded:
        from workers.celery.embedded import EmbeddedWorker

        with EmbeddedWorker(runtime, beat=False) as worker:
            problems = carry_out()
            idle = worker.run_until_idle(timeout)
        return {"problems": problems, "finished": idle}
    problems = carry_out()
    if done is None:
        return {"problems": problems, "finished": None}
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(WAIT_POLL)
    return {"problems": problems, "finished": done()}


def _revocation_done(runtime: Any, revocation: Any, key: str) -> bool:
    from models.ledger.kv import read_state
    from tasks.access.offboarding import revocation_pending

    with runtime.sessions() as session:
        return (read_state(session, key) is not None
                and revocation_pending(session, revocation) == 0)


def _report_revocation(runtime: Any, revocation: Any, key: str | None,
                       result: dict[str, Any], output: str) -> None:
    from models.ledger.db import transaction
    from models.ledger.kv import delete_state, read_state
    from tasks.access.offboarding import revocation_outcome

    with transaction(runtime.sessions) as session:
        removed = revocation_outcome(session, revocation)
        sync = read_state(session, key) if key else None
        if key:
            delete_state(session, key)
    problems = list(result["problems"]) + list((sync or {}).get("errors") or [])
    failed = [r for r in removed if r["state"] not in ("REVOKED", "REVOKING")]
    summary = {**revocation.summary(), "removed": removed,
               "members_removed": ((sync or {}).get("counts") or {}).get("members_removed"),
               "finished": result["finished"], "problems": problems}
    if output == "table":
        emit({k: v for k, v in summary.items() if k != "removed"}, fmt="table",
             title=f"revoked {revocation.user}")
        emit(removed, fmt="table", columns=REMOVED_COLUMNS, title="grants taken")
    else:
        emit(summary, fmt=output)
    _exit_on_trouble(problems, failed, result["finished"], revocation.user)


def _exit_on_trouble(problems: list[str], failed: list[dict[str, Any]], finished: bool | None,
                     user: str) -> None:
    errors = list(problems)
    if failed:
        errors.append(f"{len(failed)} revocation(s) failed; they are retried with backoff: "
                      f"`grantledger get grants --user {user} --state FAILED`")
    finish(errors=errors, unfinished="still pending at --timeout; follow it with "
           "`grantledger status`" if finished is False else None)


@app.command("restore")
@with_exit_codes
def restore_command(
    user: str = UserOption, reason: str = ReasonOption,
    wait: bool = typer.Option(False, "--wait", help="With Redis: follow until the user's "
                              "access is back (embedded always waits)."),
    timeout: float = TimeoutOption, actor: str | None = ActorOption,
    output: str = OutputOption,
) -> None:
    """Lift a `grantledger revoke`: unsuspend the user and give their access back.

    Re-enables a sign-in the revoke disabled, then syncs the user: roles and access lists
    give their access back (requests the revoke ended stay ended).

    Example: grantledger restore --user alice --reason "back from leave" --wait
    """
    from tasks.access.offboarding import reactivate_directory_user, restore_user
    from tasks.events import sync_principals

    runtime, actor = _runtime(), actor_name(actor)
    restoration = restore_user(sessions=runtime.sessions, user=user, reason=reason,
                               actor=actor)
    embedded = runtime.settings.broker_url.startswith("memory")
    key = report_key("restore") if wait or embedded else None

    def carry_out() -> list[str]:
        from tasks.events import Next, enqueue

        problems = []
        try:
            reactivate_directory_user(runtime=runtime, restoration=restoration, reason=reason,
                                      actor=actor)
        except ScimError as err:
            problems.append(f"could not re-enable {user}'s sign-in: {err}")
        work = sync_principals(users=[user], reason=f"user restored: {reason}")
        enqueue([Next(work.task, kwargs={**work.kwargs, "report_key": key})])
        return problems

    result = _run(runtime, carry_out, embedded=embedded, timeout=timeout,
                  done=None if key is None else lambda: sync_settled(runtime, key))
    report = take_report(runtime, key) or {}
    summary = {"user": user, "unsuspended": restoration.lifted,
               "sign_in_enabled": restoration.reactivate is not None,
               "synced": {k: v for k, v in (report.get("counts") or {}).items() if v},
               **result, "problems": result["problems"] + list(report.get("errors") or [])}
    emit(summary if output != "table" else restore_rows(summary), fmt=output,
         title=f"restored {user}")
    _exit_on_trouble(summary["problems"], [], result["finished"], user)


def restore_rows(summary: dict[str, Any]) -> dict[str, str]:
    """A restore's outcome in words (`-o json` keeps the machine fields)."""
    synced = ", ".join(f"{k} {v}" for k, v in summary["synced"].items())
    finished = {True: "yes", False: "no: still pending at --timeout",
                None: "not waited for (add --wait)"}[summary["finished"]]
    return {
        "user": summary["user"],
        "suspension": "lifted" if summary["unsuspended"] else "none was in force",
        "sign-in": "re-enabled (the revoke had disabled it)" if summary["sign_in_enabled"]
        else "left as it was (the revoke had not disabled it)",
        "access synced": synced or "nothing to change",
        "finished": finished,
        "problems": "; ".join(summary["problems"]) or "none"}


# --- uninstall -------------------------------------------------------------------------------


@app.command("uninstall")
@with_exit_codes
def uninstall_command(
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be removed."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    timeout: float = typer.Option(600.0, "--timeout", min=1, help="Seconds for the deletes."),
    actor: str | None = ActorOption, output: str = OutputOption,
) -> None:
    """Remove from AWS what grantledger created there, and nothing else.

    Removes the account assignments grantledger's own grants created (not those found at
    enrolment), then the SCIM groups and users carrying grantledger's ownership marker.
    Imported objects and assignments no grant explains stay. Stop the workers and beat
    first: a sync afterwards would create everything again.

    Examples:
      grantledger uninstall --dry-run
      grantledger uninstall --yes
    """
    from tasks.admin.uninstall import apply_uninstall, plan_uninstall

    runtime = _runtime()
    plan = plan_uninstall(runtime=runtime)
    rows = plan.rows()
    as_table = output == "table"
    if as_table or dry_run or not rows:  # -o json|yaml: one document, the result's
        emit(rows, fmt=output, columns=UNINSTALL_COLUMNS,
             title=f"{'would remove' if dry_run else 'removing'} {len(rows)} object(s); "
                   "kept: " + ", ".join(f"{k} {v}" for k, v in plan.kept.items()))
    if dry_run or not rows:
        return
    if not yes and not typer.confirm(f"Remove these {len(rows)} object(s) from AWS?"):
        raise typer.Exit(1)
    result = apply_uninstall(runtime=runtime, plan=plan, actor=actor_name(actor),
                             timeout=timeout)
    if as_table:
        emit(result.removed, fmt=output, title="removed")
        if result.blocked:
            emit(result.blocked, fmt=output, title="not revoked (AWS may still hold these)")
        if result.left:
            emit(result.left, fmt=output, title="left in Identity Center")
    else:
        emit({"planned": rows, "kept": plan.kept, **result.as_dict()}, fmt=output)
    _exit_on_trouble(result.errors, [], None, "")


# --- aws-config ------------------------------------------------------------------------------


@app.command("aws-config")
def aws_config_command(
    user: str = UserOption,
    start_url: str | None = typer.Option(None, "--start-url", help="The AWS access portal "
                                         "URL (default: GRANTLEDGER_SSO_START_URL)."),
    region: str | None = typer.Option(None, "--region", help="The profiles' default region "
                                      "(default: GRANTLEDGER_AWS_REGION)."),
    write: bool = typer.Option(False, "--write", help="Write the profiles into the AWS CLI "
                               "config ($AWS_CONFIG_FILE or ~/.aws/config), replacing the "
                               "block a previous --write left there."),
) -> None:
    """AWS CLI v2 SSO profiles for the user's current assignments, and the start URL.

    One `[profile <account-name>-<permission-set-name>]` per assignment the user holds now
    (directly or through an access list), sharing `[sso-session grantledger]`.

    Examples:
      grantledger aws-config --user alice > alice.config
      grantledger aws-config --user alice --write && aws sso login --sso-session grantledger
    """
    from tasks.admin import aws_config

    runtime = _runtime()
    settings = runtime.settings
    start_url = start_url or settings.sso_start_url
    if not start_url:
        raise ConfigError("no AWS access portal URL to put in the profiles",
                          hint="set GRANTLEDGER_SSO_START_URL (Identity Center console, "
                               "Settings: AWS access portal URL) or pass --start-url")
    with runtime.sessions() as session:
        held = aws_config.held_assignments(session, user=user)
    sections = aws_config.config_sections(held, start_url=start_url,
                                          sso_region=settings.aws_region,
                                          region=region or settings.aws_region)
    typer.echo(f"# start URL: {start_url}")
    if not held:
        stderr.print(f"{user} holds no active assignment (or is suspended)")
    if not write:
        typer.echo(aws_config.render(sections), nl=False)
        return
    path = aws_config.config_path()
    skipped = aws_config.write_config(path, sections)
    typer.echo(f"# wrote {len(sections) - 1 - len(skipped)} profile(s) to {path}")
    for name in skipped:
        stderr.print(f"[yellow]left out:[/] {escape(f'[{name}]')} already exists in {path} outside "
                     "grantledger's block")

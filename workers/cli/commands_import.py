"""Import commands: `import` (--preview, enrol, re-import), `get accounts|permission-sets|
assignments`, and `iam-policy`.

The AWS side comes from the GRANTLEDGER_* settings (see `grantledger sandbox serve` for a
local Identity Center); the ledger is `workers.runtime.get_runtime().sessions`. Any AWS or
ledger error stops the import before anything is written: one line, a hint, exit non-zero.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from workers.cli.app import app, get_app
from workers.cli.commands_resources import ActorOption, actor_name, ledger_sessions
from workers.cli.output import OutputOption, emit, finish, stderr, stdout, with_exit_codes

NameArgument = typer.Argument(None, help="Show this one only.")
SHOWN_NAMES = 8  # names listed per line of the summary table; the rest are counted


@app.command("import")
@with_exit_codes
def import_command(
    preview: bool = typer.Option(False, "--preview", help="Show what Identity Center holds "
                                 "and what an import would make of it; write nothing."),
    default_owner: list[str] = typer.Option(
        [], "--default-owner", help="Owner of the imported access lists (repeatable; an "
        "Identity Center or ledger user). Required the first time."),
    adopt_new_groups: bool = typer.Option(
        False, "--adopt-new-groups", help="Also import groups created in Identity Center "
        "since enrolment (otherwise they are only reported)."),
    actor: str | None = ActorOption,
    output: str = OutputOption,
) -> None:
    """Import accounts, permission sets, users and groups from Identity Center.

    Each group becomes an access list, each of its account assignments a system role that
    list grants, and every assignment found a grant that is already ACTIVE: enrolment
    changes nothing in AWS. Running it again changes nothing.

    Examples:
      grantledger import --preview
      grantledger import --default-owner alice --default-owner bob
      grantledger import --adopt-new-groups
    """
    from tasks.importing import importer
    from workers.runtime import get_runtime

    runtime = get_runtime()
    with FetchProgress(quiet=output != "table") as progress:
        if preview:
            shown = importer.preview(runtime=runtime, progress=progress)
        else:
            summary = importer.run_import(runtime=runtime, default_owners=default_owner,
                                          actor=actor_name(actor),
                                          adopt_new_groups=adopt_new_groups, progress=progress)
    if preview:
        print_preview(shown.as_dict(), fmt=output)
    elif output != "table":
        emit(summary.as_dict(), fmt=output)
    else:
        print_summary(summary.as_dict())
    if not preview:
        finish(errors=[f"not imported: {line}" for line in summary.skipped],
               unfinished=f"import not run: {summary.not_run}" if summary.not_run else None)


class FetchProgress:
    """A rich progress display on stderr, one bar per fetch step; silent when ``quiet``."""

    def __init__(self, *, quiet: bool) -> None:
        self.display = Progress(TextColumn("{task.description:<18}"), BarColumn(),
                                MofNCompleteColumn(), TimeElapsedColumn(), console=stderr,
                                disable=quiet, transient=False)
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> FetchProgress:
        self.display.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.display.stop()

    def __call__(self, step: str, done: int, total: int) -> None:
        if step not in self.tasks:
            self.tasks[step] = self.display.add_task(step, total=total or None)
        self.display.update(self.tasks[step], completed=done, total=total or None)


def print_preview(preview: dict[str, Any], *, fmt: str) -> None:
    """The four preview tables (or the whole preview as JSON/YAML)."""
    if fmt != "table":
        emit(preview, fmt=fmt)
        return
    emit(preview["accounts"], fmt=fmt, columns=("id", "name", "ou_path", "status"),
         title="accounts")
    emit(preview["permission_sets"], fmt=fmt, columns=("name", "description", "arn"),
         title="permission sets")
    emit(preview["groups"], fmt=fmt, title="groups -> access lists", columns=(
        "display_name", "access_list", "members", "assignments", "status"))
    emit(preview["users"], fmt=fmt, columns=("user_name", "display_name", "email", "groups"),
         title="users")
    if preview["ledger"] != "at head":
        stdout.print(f"No ledger yet ({preview['ledger']}): shown as a first import would "
                     "see it; nothing was written.")
    if not preview["enrolled"]:
        stdout.print("Not enrolled yet: run `grantledger import --default-owner USER` to "
                     "import these.")


def print_summary(summary: dict[str, Any]) -> None:
    """One table: what was found, what is new, what vanished or drifted."""
    if summary["enrolled_now"]:
        stdout.print("[bold green]Enrolled:[/] Identity Center is now managed by grantledger.")
    emit(summary_rows(summary), fmt="table", columns=("what", "count", "names"),
         title="import")


def summary_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The summary as (what, count, names) rows, names cut after a few; what did not happen
    (a count of zero) is left out, except the counts found in AWS."""
    found: list[tuple[str, Any, list[str]]] = [(f"found {kind.replace('_', ' ')}", count, [])
             for kind, count in summary["found"].items()]
    new = [(f"new {kind.replace('_', ' ')}", len(names), names)
           for kind, names in summary["new"].items()]
    new.append(("new grants (ACTIVE)", summary["new_grants"], []))
    vanished = [(f"vanished {kind.replace('_', ' ')}", len(names), names)
                for kind, names in summary["vanished"].items()]
    renamed = [f"{old} -> {new}" for old, new in summary["renamed_roles"].items()]
    drift = [f"{g['display_name']} ({g['group_id']})" for g in summary["drift_groups"]]
    other = [("renamed system roles", len(renamed), renamed),
             ("grants failed (target vanished)", summary["failed_grants"], []),
             ("drift: groups not adopted", len(drift), drift),
             ("skipped", len(summary["skipped"]), summary["skipped"])]
    cost: list[tuple[str, Any, list[str]]] = [("AWS calls", summary["aws_calls"], []),
            ("seconds", summary["duration_seconds"], [])]
    changes = [row for row in [*new, *vanished, *other] if row[1]]
    return [{"what": what, "count": count, "names": _names(names)}
            for what, count, names in [*found, *changes, *cost]]


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN_NAMES])
    return shown + (f" (+{len(names) - SHOWN_NAMES} more)" if len(names) > SHOWN_NAMES else "")


# --- get accounts | permission-sets | assignments ------------------------------------------


@get_app.command("accounts")
def get_accounts_command(name: str | None = NameArgument, output: str = OutputOption) -> None:
    """AWS accounts known to the ledger (by id or name), with OU path and presence.

    Example: grantledger get accounts Production -o json
    """
    from tasks.importing import catalog

    if name:
        emit(asdict(catalog.get_account(sessions=ledger_sessions(), name=name)), fmt=output,
             title=f"account {name}")
        return
    emit([asdict(v) for v in catalog.list_accounts(sessions=ledger_sessions())], fmt=output,
         columns=("id", "name", "ou_path", "present", "last_seen_at"), title="accounts")


@get_app.command("permission-sets")
def get_permission_sets_command(name: str | None = NameArgument,
                                output: str = OutputOption) -> None:
    """Permission sets known to the ledger (by name or ARN).

    Example: grantledger get permission-sets AdministratorAccess
    """
    from tasks.importing import catalog

    if name:
        emit(asdict(catalog.get_permission_set(sessions=ledger_sessions(), name=name)),
             fmt=output, title=f"permission set {name}")
        return
    emit([asdict(v) for v in catalog.list_permission_sets(sessions=ledger_sessions())],
         fmt=output, columns=("name", "description", "present", "arn"),
         title="permission sets")


@get_app.command("assignments")
def get_assignments_command(name: str | None = NameArgument,
                            output: str = OutputOption) -> None:
    """The catalog of account assignments: each (account, permission set) pair, its id
    `<account-id>/<permission-set-name>` (what requests name) and its system role.

    Example: grantledger get assignments 111111111111/ReadOnlyAccess
    """
    from tasks.importing import catalog

    if name:
        emit(asdict(catalog.get_assignment(sessions=ledger_sessions(), name=name)),
             fmt=output, title=f"assignment {name}")
        return
    emit([asdict(v) for v in catalog.list_assignments(sessions=ledger_sessions())],
         fmt=output, columns=("id", "account_name", "permission_set", "system_role",
                              "granted_by"), title="account assignments")


@app.command("iam-policy")
def iam_policy_command() -> None:
    """Print the IAM policy (JSON) the role grantledger runs as needs.

    Example: grantledger iam-policy > grantledger-policy.json
    """
    from workers.adapters.aws.iam_policy import iam_policy

    typer.echo(json.dumps(iam_policy(), indent=2))

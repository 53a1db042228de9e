"""Resource commands: validate, apply, delete, get users|roles|access-lists, and access-list
membership (add-member, remove-member).

Every command exits 0 only on success; bad input exits 2 with `file:line field: problem`.
The ledger is `workers.runtime.get_runtime().sessions` (embedded default: ./grantledger.db).
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
import yaml

from models.errors import GrantledgerError, InputError, ResourceErrors
from workers.cli.app import access_list_app, app, get_app
from workers.cli.output import OutputOption, emit, stderr, with_exit_codes

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from models.resources import LoadedResource
    from tasks.access.permissions import Actor

FilesOption = typer.Option(
    ..., "--file", "-f", exists=False,
    help="YAML file(s) or directories with user / role / access_list documents; repeat -f "
         "for several; `-` reads standard input.",
)
ActorOption = typer.Option(
    None, "--actor", help="Who is acting, for the audit trail (default: the OS user). The CLI "
                          "acts with the database's authority; the audit records this name "
                          "and the OS user: cli:NAME (os: USER).",
)
CHANGE_COLUMNS = ("kind", "name", "action", "changes")


def actor_name(actor: str | None) -> str:
    """How the audit names a CLI action: ``cli:<--actor> (os: <OS user>)``."""
    from tasks.access.permissions import cli_label

    return cli_label(actor)


def cli_actor(actor: str | None = None) -> Actor:
    """The CLI's authority: the database's (an operator), labelled with ``--actor``."""
    from tasks.access.permissions import cli_operator

    return cli_operator(actor)


def checked_text(value: str | None) -> str | None:
    """Typer callback for free-text options: no control characters (models/text.py)."""
    from models.text import check_free_text

    try:
        return value if value is None else check_free_text(value)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None


def parse_time(text: str, *, option: str) -> datetime:
    """ISO 8601 (`2027-01-31`, `2027-01-31T09:00:00Z`; no offset = UTC), `now`, or a duration
    (`2h`, `7d`) meaning that long ago."""
    from models.durations import parse_duration
    from models.text import in_utc

    if text.strip().lower() == "now":
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        try:
            return datetime.now(UTC) - parse_duration(text)
        except ValueError:
            raise typer.BadParameter(
                f"{text!r} is neither a time (2027-01-31T09:00:00Z) nor a duration ago (2h)",
                param_hint=option) from None
    try:
        return in_utc(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint=option) from None


def ledger_sessions() -> sessionmaker[Session]:
    from workers.runtime import get_runtime

    return get_runtime().sessions


def _max_nesting_depth() -> int:
    from workers.runtime import get_runtime

    return get_runtime().settings.max_nesting_depth


# --- validate / apply ------------------------------------------------------------------------


@app.command("validate")
def validate_command(
    files: list[Path] = FilesOption,
    offline: bool = typer.Option(False, "--offline", help="Do not look at the ledger: names "
                                 "must all be defined in the files."),
    each: bool = typer.Option(False, "--each", help="Validate every file on its own (a "
                              "folder of independent examples) and report every file's "
                              "errors."),
    output: str = OutputOption,
) -> None:
    """Check resource files without applying them: syntax, fields, references, cycles.

    Names may refer to what the ledger already holds (users, roles, access lists, and the
    system roles `grantledger import` generates) when the database is reachable, at head
    and not empty; otherwise only to what the files define, except system roles, which
    only an import can tell: those references are listed as unchecked (stderr, and
    `unchecked` in -o json). --offline checks every name against the files alone. Exit 0
    when every document is valid; exit 2 with `file:line field: problem` for each mistake.

    Examples:
      grantledger validate -f ops/examples/resources/
      grantledger validate --each -f ops/examples/broken/
    """
    sessions, ledger = (None, "skipped (--offline)") if offline else _reachable_ledger()
    stdin = [[Path("-")]] if any(str(p) == "-" for p in files) else []
    batches = ([[p] for p in expand([p for p in files if str(p) != "-"])] + stdin if each
               else [files])
    loaded, unchecked, errors = [], [], []
    for paths in batches:
        try:
            valid, could_not = _validate(paths, sessions=sessions, strict=offline)
        except ResourceErrors as err:
            errors += err.errors
            continue
        loaded += valid
        unchecked += could_not
    if sessions is None and (errors or unchecked):
        stderr.print(f"note: the ledger was not consulted: {ledger}", highlight=False)
    if unchecked:
        stderr.print(f"note: could not check {len(unchecked)} reference(s) to system roles "
                     "(`grantledger import` creates them; validate again after it):\n  "
                     + "\n  ".join(unchecked), highlight=False, soft_wrap=True)
    if errors:
        raise ResourceErrors(errors).validated()
    counts: dict[str, int] = {}
    for item in loaded:
        counts[item.kind] = counts.get(item.kind, 0) + 1
    emit({"counts": counts, "names": [f"{item.kind}/{item.name}" for item in loaded],
          "ledger": ledger, "unchecked": unchecked}, fmt=output, title="valid")


def _validate(paths: list[Path], *, sessions: sessionmaker[Session] | None,
              strict: bool) -> tuple[list[LoadedResource], list[str]]:
    """The documents of ``paths`` if valid, and the references that could not be checked."""
    from models.domain import looks_like_system_role
    from models.errors import UnknownReference
    from models.resources import check_references

    loaded = load_inputs(paths)
    if sessions is not None:
        from tasks.access.resources import check_resources

        check_resources(sessions=sessions, loaded=loaded,
                        max_nesting_depth=_max_nesting_depth())
        return loaded, []
    errors = check_references(loaded)
    unchecked = [] if strict else [
        e for e in errors if isinstance(e, UnknownReference) and e.kind == "role"
        and looks_like_system_role(e.name)]
    if len(unchecked) < len(errors):
        raise ResourceErrors([e for e in errors if e not in unchecked])
    return loaded, [str(e).removesuffix(" does not exist") for e in unchecked]


def _reachable_ledger() -> tuple[sessionmaker[Session] | None, str]:
    """The ledger's sessions if it exists, answers, is at head and holds something; else
    why not."""
    from sqlalchemy.engine import make_url

    from models.ledger import migrate
    from workers.settings import get_settings

    url = get_settings().database_url
    database = make_url(url).database
    if url.startswith("sqlite") and not (database and Path(database).is_file()):
        return None, f"skipped (no ledger database {database or 'in memory'})"
    try:
        if not migrate.is_at_head(url):
            return None, "skipped (the ledger schema is not at head: grantledger db upgrade)"
        if _empty(ledger_sessions()):
            return None, "skipped (the ledger is empty: nothing imported or applied yet)"
        return ledger_sessions(), "checked"
    except GrantledgerError as err:
        return None, f"skipped ({err.message})"


def _empty(sessions: sessionmaker[Session]) -> bool:
    from sqlalchemy import select

    from models.ledger import tables

    with sessions() as session:
        return not any(session.scalar(select(table).limit(1)) for table in
                       (tables.Role, tables.User, tables.AccessList))


@app.command("apply")
@with_exit_codes
def apply_command(
    files: list[Path] = FilesOption,
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would change; write "
                                 "nothing."),
    actor: str | None = ActorOption,
    output: str = OutputOption,
) -> None:
    """Create or update users, roles and access lists from YAML, all or nothing.

    Every document is checked first, against the others and against the ledger; on any
    mistake nothing is written and the command exits 2 with `file:line field: problem`.
    Access-list members are replaced by the document's list. Prints one line per resource:
    created, updated (with the changed fields) or unchanged.

    Example: grantledger apply -f ops/examples/resources/ --dry-run
    """
    from tasks.access.resources import apply_resources

    result = apply_resources(sessions=ledger_sessions(), loaded=load_inputs(files),
                             actor=actor_name(actor), dry_run=dry_run,
                             max_nesting_depth=_max_nesting_depth())
    emit([c.as_row() for c in result.changes], fmt=output, columns=CHANGE_COLUMNS,
         title="dry run: nothing written" if dry_run else "applied")


def load_inputs(paths: list[Path]) -> list[LoadedResource]:
    """Files, directories and `-` (stdin), validated together; every mistake raised at once."""
    from models.resources import load_documents, load_sources

    loaded: list[LoadedResource] = []
    errors = []
    try:
        loaded += load_documents(expand([p for p in paths if str(p) != "-"]))
    except ResourceErrors as err:
        errors += err.errors
    if any(str(p) == "-" for p in paths):
        try:
            loaded += load_sources([("<stdin>", sys.stdin.read())])
        except ResourceErrors as err:
            errors += err.errors
    if errors:
        raise ResourceErrors(errors)
    return loaded


def expand(paths: list[Path]) -> list[Path]:
    """Directories stand for the *.yaml / *.yml files directly inside them, sorted."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.suffix in {".yaml", ".yml"})
            if not inside:
                raise InputError(f"{path}: no *.yaml or *.yml files in this directory")
            found.extend(inside)
        else:
            found.append(path)
    return found


# --- delete ----------------------------------------------------------------------------------


class DeleteKind(StrEnum):
    USER = "user"
    ROLE = "role"
    ACCESS_LIST = "access-list"


@app.command("delete")
def delete_command(
    kind: DeleteKind = typer.Argument(..., help="user, role or access-list"),
    name: str = typer.Argument(..., help="The resource's name."),
    force: bool = typer.Option(False, "--force", help="Also remove what still refers to it "
                               "(owners, held or granted roles, nesting)."),
    actor: str | None = ActorOption,
    output: str = OutputOption,
) -> None:
    """Delete a user, role or access list, all or nothing.

    Refused, naming them, while other resources still refer to it: lists the user owns,
    users or lists holding the role, lists nesting the list. --force removes those
    references in the same transaction. System roles cannot be deleted by hand.

    Example: grantledger delete access-list finance --force
    """
    from tasks.access.resources import delete_resource

    result = delete_resource(sessions=ledger_sessions(), kind=kind.value, name=name,
                             actor=actor_name(actor), force=force)
    emit([c.as_row() for c in result.changes], fmt=output, columns=CHANGE_COLUMNS,
         title="deleted")


# --- access-list membership ------------------------------------------------------------------


def _member(user: str | None, nested: str | None) -> tuple[str, str]:
    if (user is None) == (nested is None):
        raise typer.BadParameter("give exactly one of --user or --list")
    return (user, "user") if user is not None else (nested or "", "access_list")


UserOption = typer.Option(None, "--user", help="A user to add or remove.")
ListOption = typer.Option(None, "--list", help="An access list to nest or un-nest.")


@access_list_app.command("add-member")
def add_member_command(
    list_name: str = typer.Argument(..., metavar="LIST", help="The access list."),
    user: str | None = UserOption,
    nested: str | None = ListOption,
    expires: str | None = typer.Option(None, "--expires", help="When the membership ends: "
                                       "2027-01-31T00:00:00Z (no offset = UTC)."),
    actor: str | None = ActorOption,
    output: str = OutputOption,
) -> None:
    """Add a user or a nested list to an access list (again: moves its expiry).

    A nested list that would form a cycle or nest deeper than the limit is refused, naming
    the chain. Example: grantledger access-list add-member sre --user alice --expires 2027-01-31
    """
    from tasks.access.membership import add_member

    member, kind = _member(user, nested)
    until = parse_time(expires, option="--expires") if expires else None
    change = add_member(sessions=ledger_sessions(), list_name=list_name, member=member,
                        kind=kind, expires=until, actor=cli_actor(actor),
                        max_nesting_depth=_max_nesting_depth())
    emit(change.as_row(), fmt=output, title="membership")


@access_list_app.command("remove-member")
def remove_member_command(
    list_name: str = typer.Argument(..., metavar="LIST", help="The access list."),
    user: str | None = UserOption,
    nested: str | None = ListOption,
    actor: str | None = ActorOption,
    output: str = OutputOption,
) -> None:
    """Remove a user or a nested list from an access list.

    Example: grantledger access-list remove-member platform-admins --list sre
    """
    from tasks.access.membership import remove_member

    member, kind = _member(user, nested)
    change = remove_member(sessions=ledger_sessions(), list_name=list_name, member=member,
                           kind=kind, actor=cli_actor(actor))
    emit(change.as_row(), fmt=output, title="membership")


# --- get -------------------------------------------------------------------------------------

NameArgument = typer.Argument(None, help="Show this one in detail.")


@get_app.command("users")
def get_users_command(name: str | None = NameArgument, output: str = OutputOption) -> None:
    """Users: email, roles held directly, direct access lists.

    Example: grantledger get users alice -o yaml
    """
    from tasks.access import queries

    if name:
        emit(asdict(queries.get_user(sessions=ledger_sessions(), viewer=cli_actor(),
                                          name=name)), fmt=output,
             title=f"user {name}")
        return
    emit([asdict(v) for v in queries.list_users(sessions=ledger_sessions(),
                                                               viewer=cli_actor())], fmt=output,
         columns=("name", "email", "roles", "lists", "origin", "suspended"), title="users")


@get_app.command("roles")
def get_roles_command(name: str | None = NameArgument, output: str = OutputOption) -> None:
    """Roles (system roles included): who holds them and which lists grant them.

    Example: grantledger get roles developer -o yaml
    """
    from tasks.access import queries

    if name:
        view = asdict(queries.get_role(sessions=ledger_sessions(), viewer=cli_actor(),
                                           name=name))
        if output == "table":  # a spec reads best as the YAML it was written in
            view["spec"] = yaml.safe_dump(view["spec"], sort_keys=False).rstrip()
        emit(view, fmt=output, title=f"role {name}")
        return
    emit([asdict(v) for v in queries.list_roles(sessions=ledger_sessions(),
                                                               viewer=cli_actor())], fmt=output,
         columns=("name", "origin", "holders", "granted_by"), title="roles")


@get_app.command("access-lists")
def get_access_lists_command(name: str | None = NameArgument,
                             output: str = OutputOption) -> None:
    """Access lists: owners, live member count, granted roles, group id, next review.

    Example: grantledger get access-lists sre
    """
    from tasks.access import queries

    sessions = ledger_sessions()
    if name:
        view = asdict(queries.get_access_list(sessions=sessions, viewer=cli_actor(), name=name))
        if output == "table":
            view["members"] = [_member_cell(m) for m in view["members"]]
        emit(view, fmt=output, title=f"access list {name}")
        return
    rows = [asdict(v) for v in queries.list_access_lists(sessions=sessions, viewer=cli_actor())]
    emit(rows, fmt=output, columns=("name", "title", "owners", "member_count", "granted_roles",
                                    "group_id", "next_review_at", "review_overdue"),
         title="access lists")


def _member_cell(member: dict[str, Any]) -> str:
    text = member["name"] + (" (list)" if member["kind"] == "access_list" else "")
    if member["expires"] is not None:
        text += f" until {member['expires']:%Y-%m-%d %H:%M}Z"
    return text if member["live"] else text + " (expired)"

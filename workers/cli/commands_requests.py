"""Access-request commands: `request create|approve|deny|extend|promote`, `get requestable`,
`get requests`, and the owners' `access-list review`.

A refusal (not requestable, self-review, not an owner, ...) exits 2 with the reason on
stderr and what to do next. The CLI acts with the database's authority: ``--reviewer`` names
the person whose review it records (the same rules apply to them as in the API), and the
audit names it ``cli:NAME (usr-..., os: USER)``.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import TYPE_CHECKING

import typer

from workers.cli.app import access_list_app, app, get_app
from workers.cli.commands_resources import (
    ActorOption,
    checked_text,
    cli_actor,
    ledger_sessions,
)
from workers.cli.output import OutputOption, emit, stderr

if TYPE_CHECKING:
    from tasks.access.permissions import Actor

request_app = typer.Typer(help="Access requests: create, approve, deny, extend, promote.",
                          no_args_is_help=True)
app.add_typer(request_app, name="request")

REQUEST_COLUMNS = ("id", "user", "state", "roles", "resources", "duration", "approved_by",
                   "expires_at", "promoted_to")
ReviewerOption = typer.Option(..., "--reviewer", help="Who reviews (recorded in the audit).")
ReasonOption = typer.Option(None, "--reason", help="Why (recorded in the audit).",
                            callback=checked_text)
RequestIdArgument = typer.Argument(..., metavar="ID", help="The request id (req-...).")


def parse_duration_option(text: str, *, option: str) -> timedelta:
    """`90s`, `15m`, `2h`, `1d`, `1h30m`; a usage error (exit 2) otherwise."""
    from models.durations import parse_duration

    try:
        return parse_duration(text)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint=option) from None


def show_request(request_id: str, *, output: str, title: str) -> None:
    from tasks.access.requests import get_request

    emit(asdict(get_request(sessions=ledger_sessions(), viewer=cli_actor(),
                            request_id=request_id)), fmt=output, title=title)


def reviewer_actor(name: str) -> Actor:
    """The person ``--reviewer`` names, resolved now (active users only)."""
    from tasks.access.permissions import person_in

    return person_in(ledger_sessions(), name=name, via="cli")


@request_app.command("create")
def create_command(
    user: str = typer.Option(..., "--user", help="Who needs the access."),
    roles: list[str] = typer.Option([], "--role", help="A role to request; repeatable."),
    resources: list[str] = typer.Option(
        [], "--resource", help="ACCOUNT/PERMISSION-SET (account id or name); repeatable."),
    reason: str = typer.Option(..., "--reason", help="Why (required, shown to reviewers).",
                               callback=checked_text),
    duration: str | None = typer.Option(None, "--duration", help="How long, e.g. 1h "
                                        "(default and ceiling: the most the policy allows)."),
    break_glass: bool = typer.Option(False, "--break-glass", help="Emergency: approved at once "
                                     "by yourself if a role allows it; audited as an alert."),
    actor: str | None = ActorOption,
    output: str = OutputOption,
) -> None:
    """Request roles and/or account assignments; prints the new request's id.

    Example: grantledger request create --user alice --resource Staging/AdministratorAccess
    --reason "release 4.2" --duration 2h
    """
    from tasks.access.requests import create_request

    asked = parse_duration_option(duration, option="--duration") if duration else None
    request = create_request(sessions=ledger_sessions(), actor=cli_actor(actor), user=user,
                             roles=roles, resources=resources, reason=reason, duration=asked,
                             break_glass=break_glass)
    granted = timedelta(seconds=request.duration_seconds)
    if asked is not None and granted < asked:
        from models.durations import format_duration

        stderr.print(f"note: duration capped to {format_duration(granted)}, the most these "
                     "items allow", highlight=False)
    if output == "table":
        typer.echo(request.id)  # only the id: scripts capture it
    else:
        show_request(request.id, output=output, title="request")


@request_app.command("approve")
def approve_command(request_id: str = RequestIdArgument, reviewer: str = ReviewerOption,
                    reason: str | None = ReasonOption, output: str = OutputOption) -> None:
    """Approve a pending request (no self-review); the last needed approval starts its clock.

    Example: grantledger request approve req-3f9a1c2b --reviewer bob --reason "on call"
    """
    from tasks.access.requests import review_request

    review_request(sessions=ledger_sessions(), request_id=request_id,
                   actor=reviewer_actor(reviewer), decision="approve", reason=reason)
    show_request(request_id, output=output, title="reviewed")


@request_app.command("deny")
def deny_command(request_id: str = RequestIdArgument, reviewer: str = ReviewerOption,
                 reason: str | None = ReasonOption, output: str = OutputOption) -> None:
    """Deny a pending request; one deny ends it.

    Example: grantledger request deny req-3f9a1c2b --reviewer bob --reason "use staging"
    """
    from tasks.access.requests import review_request

    review_request(sessions=ledger_sessions(), request_id=request_id,
                   actor=reviewer_actor(reviewer), decision="deny", reason=reason)
    show_request(request_id, output=output, title="denied")


@request_app.command("cancel")
def cancel_command(request_id: str = RequestIdArgument, actor: str | None = ActorOption,
                   output: str = OutputOption) -> None:
    """Withdraw a pending request as an operator (it ends DENIED, "cancelled by the
    requester"); the audit names the operator.

    Example: grantledger request cancel req-3f9a1c2b --actor alice
    """
    from tasks.access.request_changes import cancel_request

    cancel_request(sessions=ledger_sessions(), request_id=request_id, actor=cli_actor(actor))
    show_request(request_id, output=output, title="cancelled")


@request_app.command("extend")
def extend_command(
    request_id: str = RequestIdArgument,
    duration: str = typer.Option(..., "--duration", help="How much longer, e.g. 1h."),
    reviewer: str = ReviewerOption,
    output: str = OutputOption,
) -> None:
    """Approve moving an approved request's expiry (and its live grants') later, with no gap.

    The extension applies once as many reviewers approved it as the request needs; a request
    lives at most twice its policy cap, extensions included.
    Example: grantledger request extend req-3f9a1c2b --duration 1h --reviewer bob
    """
    from tasks.access.request_changes import extend_request

    extend_request(sessions=ledger_sessions(), request_id=request_id,
                   actor=reviewer_actor(reviewer),
                   duration=parse_duration_option(duration, option="--duration"))
    show_request(request_id, output=output, title="extended")


@request_app.command("promote")
def promote_command(
    request_id: str = RequestIdArgument,
    access_list: str = typer.Option(..., "--access-list", help="The list the user joins; it "
                                    "must grant everything requested."),
    reviewer: str = ReviewerOption,
    allow_broader: bool = typer.Option(False, "--allow-broader", help="Promote even though "
                                       "the list grants more than was requested."),
    output: str = OutputOption,
) -> None:
    """Turn a request into long-term access: the user joins an access list the reviewer owns.

    A list granting more than the request asked for needs --allow-broader; see the lists
    that cover it exactly with: grantledger get promotion-lists ID.
    Example: grantledger request promote req-3f9a1c2b --access-list staging-admins
    --reviewer bob
    """
    from tasks.access.request_changes import promote_request

    promote_request(sessions=ledger_sessions(), request_id=request_id,
                    access_list=access_list, actor=reviewer_actor(reviewer),
                    confirm_broader=allow_broader)
    show_request(request_id, output=output, title="promoted")


@get_app.command("requestable")
def get_requestable_command(
    user: str = typer.Option(..., "--user", help="Whose requestable access to show."),
    output: str = OutputOption,
) -> None:
    """What a user may request: roles and account assignments, each with its own maximum
    duration, approvals needed and break-glass limit (what a request for it alone gets).

    Example: grantledger get requestable --user alice -o yaml
    """
    from tasks.access.requests import requestable_for

    view = requestable_for(sessions=ledger_sessions(), viewer=cli_actor(), user=user)
    if output == "table":
        emit(view.rows(), fmt=output, columns=("kind", "name", "max_duration", "approvals",
                                               "break_glass"),
             title=f"{user} may request (each row on its own terms)")
    else:
        emit(view.as_document(), fmt=output)


@get_app.command("requests")
def get_requests_command(
    request_id: str | None = typer.Argument(None, metavar="[ID]", help="Show this one."),
    user: str | None = typer.Option(None, "--user", help="Only this user's requests."),
    state: str | None = typer.Option(None, "--state", help="PENDING, APPROVED, DENIED, "
                                     "EXPIRED or PROMOTED."),
    output: str = OutputOption,
) -> None:
    """Access requests, oldest first, with their reviews and expiry.

    Example: grantledger get requests --user alice --state approved
    """
    from tasks.access.requests import list_requests

    if request_id:
        show_request(request_id, output=output, title=f"request {request_id}")
        return
    views = list_requests(sessions=ledger_sessions(), viewer=cli_actor(), user=user,
                          state=state)
    emit([asdict(v) for v in views], fmt=output, columns=REQUEST_COLUMNS, title="requests")


@get_app.command("promotion-lists")
def get_promotion_lists_command(request_id: str = RequestIdArgument,
                                output: str = OutputOption) -> None:
    """The access lists a request could be promoted into: those covering it exactly first;
    the others grant more (listed) and need --allow-broader.

    Example: grantledger get promotion-lists req-3f9a1c2b
    """
    from tasks.access.request_changes import promotion_lists

    found = promotion_lists(sessions=ledger_sessions(), request_id=request_id,
                            viewer=cli_actor())
    emit([asdict(c) for c in found], fmt=output,
         columns=("access_list", "exact", "broader", "owned"),
         title=f"access lists covering {request_id}")


@access_list_app.command("review")
def review_command(
    list_name: str = typer.Argument(..., metavar="LIST", help="The access list."),
    reviewer: str = typer.Option(..., "--reviewer", help="An owner of the list."),
    remove: list[str] = typer.Option([], "--remove", help="A member to remove; repeatable."),
    notes: str | None = typer.Option(None, "--notes", help="What was checked (audited).",
                                     callback=checked_text),
    output: str = OutputOption,
) -> None:
    """Record an owner's periodic review, removing members who no longer need access.

    The next review is due one recurrence from now.
    Example: grantledger access-list review sre --reviewer bob --remove frank
    """
    from tasks.access.reviews import review_access_list

    review = review_access_list(sessions=ledger_sessions(), list_name=list_name,
                                reviewer=reviewer, remove=remove, notes=notes)
    emit(asdict(review), fmt=output, title=f"access review of {list_name}")

"""The Slack app (slack-bolt, HTTP mode): Approve/Deny buttons, the request slash command
and its modal. Every action goes through ``people.person_for`` and the same service
functions as the API; a refusal is shown to the clicker only (ephemeral), nothing changes.

Bolt acknowledges at once (``process_before_response=False``) and runs the listener on its
thread pool; a modal submission is checked before its acknowledgement, so its errors show
under the inputs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from slack_bolt import App

from models.errors import GrantledgerError
from models.ledger.base import database_time
from tasks.access import requests
from tasks.access.permissions import Actor
from tasks.notify.slack import refresh_review_messages
from tasks.notify.slack_messages import APPROVE_ACTION, DENY_ACTION
from tasks.sync.views import grant_rows
from workers.runtime import Runtime
from workers.slack.modal import CALLBACK_ID, error_block, filed_view, read_form, request_modal
from workers.slack.people import person_for
from workers.slack.web import SlackWeb

log = logging.getLogger(__name__)
USAGE = "Use `{command}` to request access, or `{command} mine` to see what you hold."


def refusal(err: GrantledgerError) -> str:
    """What a refused person reads: why, and what to do next."""
    return f":no_entry: {err.message}" + (f"\n{err.hint}" if err.hint else "")


def slack_bolt_app(runtime: Runtime) -> App:
    """The Bolt app with every listener, around the runtime's ledger and Slack client."""
    settings, slack = runtime.settings, runtime.slack
    assert slack is not None, "the Slack app needs GRANTLEDGER_SLACK_BOT_TOKEN"
    app = App(client=slack.client, signing_secret=settings.slack_signing_key(),
              token_verification_enabled=False,
              process_before_response=False, logger=logging.getLogger("grantledger.slack"))
    decide = review_listener(runtime, slack)
    app.action(APPROVE_ACTION)(decide("approve"))
    app.action(DENY_ACTION)(decide("deny"))
    app.command(settings.slack_command)(command_listener(runtime, slack))
    app.view(CALLBACK_ID)(submission_listener(runtime, slack))
    return app


def review_listener(runtime: Runtime, slack: SlackWeb) -> Callable[[str], Callable[..., None]]:
    """A button listener per decision: review as the clicker, then refresh every copy."""
    def for_decision(decision: str) -> Callable[..., None]:
        def listener(ack: Callable[..., None], body: dict[str, Any]) -> None:
            ack()
            clicker, channel = body["user"]["id"], body["container"]["channel_id"]
            request_id = str(body["actions"][0]["value"])
            try:
                person = person_for(clicker, slack=slack, sessions=runtime.sessions)
                requests.review_request(sessions=runtime.sessions, request_id=request_id,
                                        actor=person, decision=decision)
            except GrantledgerError as err:
                slack.ephemeral(channel=channel, user=clicker, text=refusal(err))
                return
            refresh_review_messages(slack, sessions=runtime.sessions, request_id=request_id)
            slack.ephemeral(channel=channel, user=clicker,
                            text=f"You {decision}d request {request_id}.")
        return listener
    return for_decision


def command_listener(runtime: Runtime, slack: SlackWeb) -> Callable[..., None]:
    """``/access``: the request modal; ``/access mine``: the caller's active grants."""
    command = runtime.settings.slack_command

    def listener(ack: Callable[..., None], body: dict[str, Any]) -> None:
        word = str(body.get("text") or "").strip().lower()
        if word not in ("", "mine", "request"):
            ack(text=USAGE.format(command=command))
            return
        try:
            person = person_for(body["user_id"], slack=slack, sessions=runtime.sessions)
            if word == "mine":
                ack(text=held_text(runtime, person))
                return
            offer = requests.requestable_for(sessions=runtime.sessions, viewer=person)
        except GrantledgerError as err:
            ack(text=refusal(err))
            return
        ack()
        slack.open_view(trigger_id=body["trigger_id"], view=request_modal(offer))
    return listener


def held_text(runtime: Runtime, person: Actor) -> str:
    """The person's active grants with the time left, one line each."""
    with runtime.sessions() as session:
        now = database_time(session)
        rows = grant_rows(session, user=person.name, state="ACTIVE")
    if not rows:
        return f"{person.name} holds no access through grantledger right now."
    lines = [f"*{person.name}* holds:"]
    for row in rows:
        left = (f"{_left(row['expires_at'] - now)} left" if row["expires_at"]
                else "long-term")
        lines.append(f"• {row['permission_set']} on {row['account']} ({left}, "
                     f"via {row['source']})")
    return "\n".join(lines)


def _left(delta: timedelta) -> str:
    minutes = max(int(delta.total_seconds() // 60), 0)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def submission_listener(runtime: Runtime, slack: SlackWeb) -> Callable[..., None]:
    """The modal's submit: file the request exactly as ``POST /v1/requests`` does."""
    def listener(ack: Callable[..., None], body: dict[str, Any], view: dict[str, Any]) -> None:
        values = view["state"]["values"]
        try:
            person = person_for(body["user"]["id"], slack=slack, sessions=runtime.sessions)
            form = read_form(values)
            created = requests.create_request(
                sessions=runtime.sessions, actor=person, roles=form.roles,
                resources=form.resources, reason=form.reason, duration=form.duration,
                break_glass=form.break_glass)
        except GrantledgerError as err:
            ack(response_action="errors", errors={error_block(values, err): refusal(err)[:150]})
            return
        shown = requests.get_request(sessions=runtime.sessions, viewer=person,
                                     request_id=created.id)
        ack(response_action="update",
            view=filed_view(shown.id, state=shown.state, duration=shown.duration))
    return listener

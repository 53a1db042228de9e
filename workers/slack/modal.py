"""The request modal of the slash command: built from the requestable view, read back into
the arguments of ``tasks.access.requests.create_request``. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from models.durations import format_duration, parse_duration
from models.errors import InputError
from tasks.access.requests_policy import RequestableView

CALLBACK_ID = "grantledger_request"
MAX_OPTIONS = 100  # Slack's limit per select (and per option group)
LABEL_LIMIT = 75  # Slack's limit on an option's text


@dataclass(frozen=True)
class RequestForm:
    """What the person filled in."""

    roles: list[str]
    resources: list[str]
    duration: timedelta | None
    reason: str
    break_glass: bool


def request_modal(view: RequestableView) -> dict[str, Any]:
    """The modal listing what the caller may request, duration, reason, break-glass."""
    cap = format_duration(view.max_duration)
    blocks = []
    if view.accounts:
        groups = [{"label": _text(f"{a.account_name} ({a.account_id})"), "options": [
            _option(f"{name} (max {format_duration(limit)})", f"{a.account_id}/{name}")
            for name, limit in list(a.permission_sets.items())[:MAX_OPTIONS]]}
            for a in view.accounts[:MAX_OPTIONS]]
        blocks.append(_input("resources", "Permission sets", {
            "type": "multi_static_select", "action_id": "value", "option_groups": groups}))
    if view.roles:
        blocks.append(_input("roles", "Roles", {
            "type": "multi_static_select", "action_id": "value", "options": [
                _option(f"{name} (max {format_duration(limit)})", name)
                for name, limit in list(view.roles.items())[:MAX_OPTIONS]]}))
    blocks.append(_input("duration", f"Duration (at most {cap})", {
        "type": "plain_text_input", "action_id": "value",
        "placeholder": _text(f"e.g. 1h; empty: {cap}")}, optional=True))
    blocks.append(_input("reason", "Reason", {
        "type": "plain_text_input", "action_id": "value", "multiline": True,
        "max_length": 1000}, optional=False))
    if view.break_glass:
        blocks.append(_input("break_glass", "Break-glass", {
            "type": "checkboxes", "action_id": "value", "options": [_option(
                "Emergency: approve at once (audited as an alert)", "yes")]}))
    return {"type": "modal", "callback_id": CALLBACK_ID, "title": _text("Request access"),
            "submit": _text("Request"), "close": _text("Cancel"), "blocks": blocks}


def read_form(values: Mapping[str, Any]) -> RequestForm:
    """The submitted state (``view.state.values``); ``InputError`` for a bad duration."""
    def picked(block: str) -> list[str]:
        chosen = values.get(block, {}).get("value", {}).get("selected_options") or []
        return [str(option["value"]) for option in chosen]

    def typed(block: str) -> str:
        return str(values.get(block, {}).get("value", {}).get("value") or "").strip()

    duration_text = typed("duration")
    try:
        duration = parse_duration(duration_text) if duration_text else None
    except ValueError as err:
        raise InputError(str(err), hint="write it like 30m, 1h or 1h30m") from None
    return RequestForm(roles=picked("roles"), resources=picked("resources"), duration=duration,
                       reason=typed("reason"), break_glass=bool(picked("break_glass")))


def error_block(values: Mapping[str, Any], err: InputError | Exception) -> str:
    """Which input to show a refusal under: the duration's own, else the first list."""
    if "duration" in str(err) and "duration" in values:
        return "duration"
    return next((b for b in ("resources", "roles") if b in values), "reason")


def filed_view(request_id: str, *, state: str, duration: str) -> dict[str, Any]:
    """What the modal turns into once the request is filed."""
    text = (f"Request *{request_id}* is {state} for {duration}. Reviewers have been asked; "
            "you get a direct message when it is decided and when the access is ready.")
    return {"type": "modal", "title": _text("Request filed"), "close": _text("Done"),
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


def _input(block_id: str, label: str, element: dict[str, Any], *,
           optional: bool = True) -> dict[str, Any]:
    return {"type": "input", "block_id": block_id, "label": _text(label), "element": element,
            "optional": optional}


def _option(label: str, value: str) -> dict[str, Any]:
    return {"text": _text(label), "value": value}


def _text(text: str) -> dict[str, str]:
    return {"type": "plain_text", "text": text[:LABEL_LIMIT]}

"""Block Kit messages of the Slack app: pure rendering, no I/O.

A review message shows one request (requester, items, reason, duration, approvals) with
Approve and Deny buttons while it is PENDING, and its outcome and deciders once decided; the
same function renders the first post and every later update, so all copies agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tasks.access.requests import RequestView
from tasks.notify.channels import escape, section, slack_blocks

APPROVE_ACTION = "grantledger_approve"
DENY_ACTION = "grantledger_deny"
OUTCOMES = {"APPROVED": ":white_check_mark: *Approved*", "DENIED": ":no_entry: *Denied*",
            "EXPIRED": ":hourglass: *Expired*", "PROMOTED": ":arrow_up: *Promoted*"}


def review_message(view: RequestView) -> dict[str, Any]:
    """The message reviewers get for a request, buttons only while it is PENDING."""
    title = escape(f":raising_hand: Access request {view.id} from {view.user}")
    items = [f"role {role}" for role in view.roles] + list(view.resources)
    facts = (("Requester", view.user), ("Items", ", ".join(items) or "-"),
             ("Reason", view.reason), ("Duration", view.duration),
             ("Approvals", f"{len(view.approved_by)} of {view.required_approvals}"))
    blocks: list[dict[str, Any]] = [
        section(f"*{title}*"),
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{label}*\n{escape(text)}"}
                                       for label, text in facts]},
        _decision_block(view),
    ]
    return {"text": title, "blocks": blocks}


def _decision_block(view: RequestView) -> dict[str, Any]:
    if view.state == "PENDING":
        return {"type": "actions", "block_id": f"review:{view.id}", "elements": [
            _button("Approve", APPROVE_ACTION, view.id, "primary"),
            _button("Deny", DENY_ACTION, view.id, "danger")]}
    deciders = view.denied_by if view.state == "DENIED" else view.approved_by
    outcome = OUTCOMES.get(view.state, f"*{view.state}*")
    by = f" by {escape(', '.join(deciders))}" if deciders else ""
    return section(f"{outcome}{by}")


def _button(label: str, action: str, request_id: str, style: str) -> dict[str, Any]:
    return {"type": "button", "text": {"type": "plain_text", "text": label},
            "action_id": action, "value": request_id, "style": style}


def personal_message(notice: Mapping[str, Any], *, start_url: str | None) -> dict[str, Any]:
    """A direct message about the person's own request or access (ACTIVE: where to sign in)."""
    message = slack_blocks(notice)
    if notice["event"] == "grant.active" and start_url:
        message["blocks"].insert(-1, section(
            f"Sign in at the AWS access portal: {escape(start_url)}"))
    return message


def review_due_message(notice: Mapping[str, Any]) -> dict[str, Any]:
    """To an access list's owners: its periodic review is due."""
    return slack_blocks(notice)

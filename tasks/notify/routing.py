"""Which events each channel takes: per-channel filters instead of a firehose.

A filter is a comma-separated list of event names (``GRANTLEDGER_NOTIFY_SLACK_EVENTS=
request.created,breakglass.used,grant.stuck``); ``*`` takes every event. Per-grant events
(``grant.active`` and friends) are personal: the Slack app sends them to the requester, and
access reviews coming due to the list's owners, whatever the channel filter says.
"""

from __future__ import annotations

from models.errors import ConfigError
from models.ledger.outbox import NOTICE_EVENTS

DEFAULT_WEBHOOK_EVENTS = NOTICE_EVENTS  # a machine receiver gets everything, as before
PERSONAL_EVENTS = frozenset({"grant.active", "grant.expiring", "grant.revoked"})
# What a team channel wants by default: decisions and alarms, not one post per grant.
DEFAULT_SLACK_EVENTS = frozenset({
    "request.created", "request.approved", "request.denied", "breakglass.used",
    "grant.stuck", "user.revoked", "scim.stopped", "scim.resumed", "access_list.owner_joined",
})


def event_filter(text: str | None, default: frozenset[str], *, setting: str) -> frozenset[str]:
    """The events a filter setting names (``default`` when unset); unknown names refused."""
    if text is None or not text.strip():
        return default
    names = {name.strip() for name in text.split(",") if name.strip()}
    if "*" in names:
        return NOTICE_EVENTS
    unknown = sorted(names - NOTICE_EVENTS)
    if unknown:
        raise ConfigError(f"{setting} names unknown events: {', '.join(unknown)}",
                          hint="choose among: " + ", ".join(sorted(NOTICE_EVENTS)) +
                               " (or * for all)")
    return frozenset(names)

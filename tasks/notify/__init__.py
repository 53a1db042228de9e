"""Notifications: the outbox is written with each change (``models.ledger.outbox``, through
``audit.record``); this package turns it into webhook and Slack messages and delivers them.

Modules: ``channels`` (configured receivers, pure rendering, HMAC signature), ``delivery``
(claim with a lease, send, settle, backlog), ``expiring`` (the ``grant.expiring`` sweep),
``sweep`` (what the beat task runs), ``probe`` (``grantledger notify test``).
"""

from tasks.notify.channels import Channel, configured_channels, sign, slack_blocks
from tasks.notify.delivery import (
    ChannelAnswer,
    DeliveryReport,
    claim_due,
    deliver_due,
    outbox_backlog,
    retry_delay,
)
from tasks.notify.expiring import queue_expiring_notices
from tasks.notify.probe import send_test_notice
from tasks.notify.sweep import notify_sweep

__all__ = [
    "Channel", "ChannelAnswer", "DeliveryReport", "claim_due", "configured_channels",
    "deliver_due", "notify_sweep", "outbox_backlog", "queue_expiring_notices", "retry_delay",
    "send_test_notice", "sign", "slack_blocks",
]

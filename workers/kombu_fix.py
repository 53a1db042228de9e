"""Keep a worker alive when Redis goes away while it holds reserved messages (kombu 5.7.0).

On a lost broker connection celery closes the connection; kombu's Redis channel then still
uses it: to put its reserved messages back, and to ack tasks that finish meanwhile. Both
reach ``Channel._connparams`` with the connection gone and raise ``AttributeError``
(``'NoneType' object has no attribute 'hostname'`` / ``'client'``), which no one expects:
it leaves celery's consumer and the worker's main process exits (ops/decisions/drills.md).

Here a channel whose connection is gone raises redis's ``ConnectionError`` instead, which
celery and kombu already handle (an ack that cannot be sent is logged, a close ignores it),
and restoring reserved messages on such a channel is skipped: they stay in Redis's unacked
set, which kombu restores after the visibility timeout exactly as after the exit. The worker
reconnects instead of waiting for its supervisor (a Sentinel failover cost 26 s of worker
restarts under load, every revocation waiting).
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

log = logging.getLogger(__name__)
_connparams = kombu_redis.Channel._connparams
_restore_unacked = kombu_redis.QoS.restore_unacked


def connparams(self: Any, asynchronous: bool = False) -> Any:
    if getattr(self.connection, "client", None) is None:
        raise RedisConnectionError("the broker connection of this channel is closed")
    return _connparams(self, asynchronous=asynchronous)


def restore_unacked(self: Any, client: Any = None) -> Any:
    try:
        return _restore_unacked(self, client)
    except RedisConnectionError:
        if getattr(self.channel.connection, "client", None) is not None:
            raise  # the broker is down, not this channel closed: kombu's own handling
        log.warning("broker connection gone: %d reserved message(s) left in Redis's unacked "
                    "set (restored after the visibility timeout); reconnecting",
                    len(self._delivered))
        self._delivered.clear()  # as kombu does once restored: nothing left to restore here
        return None


def apply() -> None:
    """Install the fix (idempotent)."""
    kombu_redis.Channel._connparams = connparams  # type: ignore[method-assign]  # the fix
    kombu_redis.QoS.restore_unacked = restore_unacked  # type: ignore[method-assign]

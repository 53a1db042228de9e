"""Connections to the install's Redis, plain or behind Redis Sentinel, from the settings.

``GRANTLEDGER_BROKER_URL`` names the Redis every process shares: ``redis://host:6379/0``, or
kombu's Sentinel form ``sentinel://h1:26379;sentinel://h2:26379`` (optionally ``/db`` after
the last one) with ``GRANTLEDGER_REDIS_MASTER_NAME``. Each client speaks its own dialect of
it, so this module translates once for all of them: the Celery broker (kombu's ``sentinel``
transport with ``master_name``), the limiter (redis-py's ``Sentinel.master_for`` and the
``limits`` library's ``redis+sentinel://`` storage), and beat's redbeat lock
(``redis-sentinel://`` with ``sentinels`` and ``service_name`` options). Every one of them
asks the sentinels for the current master on reconnect, so a promoted replica is found
without a restart.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import redis
from limits.storage import RedisSentinelStorage, RedisStorage, Storage
from redis.sentinel import Sentinel

from models.errors import ConfigError
from workers.settings import Settings

# A dead master must not hang a caller: sentinels and masters answer loopback-fast or not
# at all; the callers retry (limiter: its own deadline; tasks: their retries).
SOCKET_TIMEOUT = 5.0


def sentinel_addresses(broker_url: str) -> tuple[list[tuple[str, int]], int]:
    """The (host, port) of each sentinel in ``sentinel://h:p;sentinel://h:p/db``, and db."""
    addresses, db = [], 0
    for part in broker_url.split(";"):
        parsed = urlsplit(part.strip())
        if parsed.scheme != "sentinel" or not parsed.hostname:
            raise ConfigError(f"GRANTLEDGER_BROKER_URL: {part!r} is not sentinel://host:port",
                              hint="separate sentinels with ';', e.g. "
                                   "sentinel://10.0.0.1:26379;sentinel://10.0.0.2:26379")
        addresses.append((parsed.hostname, parsed.port or 26379))
        if parsed.path.strip("/"):
            db = int(parsed.path.strip("/"))
    return addresses, db


def master_name(settings: Settings) -> str:
    if not settings.redis_master_name:
        raise ConfigError("GRANTLEDGER_BROKER_URL is a sentinel:// URL but "
                          "GRANTLEDGER_REDIS_MASTER_NAME is unset",
                          hint="set it to the name your sentinels monitor")
    return settings.redis_master_name


def redis_client(settings: Settings, **options: Any) -> redis.Redis:
    """A client on the current master (behind Sentinel: re-discovered on reconnect)."""
    if not settings.uses_sentinel:
        return redis.Redis.from_url(settings.broker_url, **options)
    addresses, db = sentinel_addresses(settings.broker_url)
    options.setdefault("socket_timeout", SOCKET_TIMEOUT)
    sentinel = Sentinel(addresses, socket_timeout=SOCKET_TIMEOUT)
    return sentinel.master_for(master_name(settings), db=db, **options)


def limits_storage(settings: Settings, *, key_prefix: str) -> Storage:
    """The ``limits`` moving-window storage on the master (never a replica: stale counts)."""
    if not settings.uses_sentinel:
        return RedisStorage(settings.broker_url, key_prefix=key_prefix)
    addresses, db = sentinel_addresses(settings.broker_url)
    hosts = ",".join(f"{host}:{port}" for host, port in addresses)
    return RedisSentinelStorage(f"redis+sentinel://{hosts}/{master_name(settings)}",
                                use_replicas=False, key_prefix=key_prefix, db=db,
                                socket_timeout=SOCKET_TIMEOUT,
                                sentinel_kwargs={"socket_timeout": SOCKET_TIMEOUT})


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    """What kombu's ``sentinel`` transport needs beyond the URL (nothing for redis://)."""
    if not settings.uses_sentinel:
        return {}
    return {"master_name": master_name(settings),
            "sentinel_kwargs": {"socket_timeout": SOCKET_TIMEOUT}}


def redbeat_config(settings: Settings) -> dict[str, Any]:
    """redbeat's URL and options: its lock and schedule on the current master."""
    if not settings.uses_redis:
        return {"redbeat_redis_url": None, "redbeat_redis_options": {}}
    if not settings.uses_sentinel:
        # said explicitly: redbeat warns at every start when it falls back to the broker's
        # transport options (visibility timeout, polling), which are not for its client
        return {"redbeat_redis_url": settings.broker_url, "redbeat_redis_options": {}}
    addresses, db = sentinel_addresses(settings.broker_url)
    host, port = addresses[0]
    return {"redbeat_redis_url": f"redis-sentinel://{host}:{port}/{db}",
            "redbeat_redis_options": {"sentinels": addresses,
                                      "service_name": master_name(settings), "db": db,
                                      "socket_timeout": SOCKET_TIMEOUT}}

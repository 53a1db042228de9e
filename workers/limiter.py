"""The global AWS rate limiter and the cap on outstanding CreateAccountAssignment operations.

Identity Center's limits are per AWS account, not per process (docs/DESIGN.md section 4): about
20 requests/s for sso-admin, identitystore and SCIM each, and at most 15 creates in flight.
So with Redis as the broker, every worker process shares one limiter stored in Redis; in the
embedded mode (``memory://``) one in-process limiter is injected everywhere.

* Rates: the ``limits`` library's moving window (never more than N hits in any window).
* Create slots: leases in a Redis sorted set (member = operation id, score = lease expiry by
  the Redis clock), because a rate limiter has no "release"; see ops/decisions/aws.md.
* Turns: at most one holder of a named turn per period across all processes (one status
  poll round a second, however many workers ask for one): ``SET NX PX``.
* Priority: a revocation's calls (``with revocation_priority():``) go before everything else.
  A priority caller that finds the window full registers as waiting (a lease in a sorted
  set per family, like a create slot); other callers do not take a permit while one waits,
  so a delete never queues behind creates. Nothing is reserved while no delete waits.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from fractions import Fraction
from typing import Any, Protocol

import redis
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import MemoryStorage, Storage
from limits.strategies import MovingWindowRateLimiter

from models.errors import AwsThrottled
from models.ports.priority import has_priority, revocation_priority  # noqa: F401 - re-exported
from workers.redis_conn import limits_storage, redis_client
from workers.settings import Settings

KEY_PREFIX = "grantledger:limiter"
CREATE_SLOTS_KEY = f"{KEY_PREFIX}:create-slots"
# Waiters woken by the same freed slot spread over this many seconds instead of racing.
WAKE_JITTER = 0.01
# A priority waiter's lease: renewed each time it looks again, gone soon after it died.
PRIORITY_LEASE = 2.0
# How long a normal caller stands aside before it looks again while a priority caller waits.
YIELD_PAUSE = 0.02
# No cap on how many priority callers may wait at once.
UNCAPPED = 1 << 30

def rate_item(rate: float) -> RateLimitItem:
    """``rate`` requests/s as a moving-window item: 20 -> 20 per 1 s, 2.5 -> 5 per 2 s."""
    fraction = Fraction(rate).limit_denominator(60)
    amount, seconds = max(fraction.numerator, 1), fraction.denominator
    return RateLimitItemPerSecond(amount, seconds, namespace="rate")


class CreateSlots(Protocol):
    """Leases on the outstanding-create budget, one per operation id."""

    def try_acquire(self, op_id: str, *, ttl: float, cap: int) -> bool: ...
    def release(self, op_id: str) -> None: ...
    def outstanding(self) -> int: ...


class Limiter:
    """Rate per API family plus the outstanding-create cap; share one per install."""

    def __init__(self, *, rates: dict[str, float], storage: Storage, slots: CreateSlots,
                 max_outstanding_creates: int, backend: str, turns: Turns | None = None,
                 waiting: dict[str, CreateSlots] | None = None) -> None:
        self._items = {family: rate_item(rate) for family, rate in rates.items()}
        self._window = MovingWindowRateLimiter(storage)
        self._slots = slots
        # family -> priority callers waiting for a permit (leases, like create slots)
        self._waiting = waiting or {family: MemoryCreateSlots() for family in rates}
        self._turns = turns or MemoryTurns()
        self._cap = max_outstanding_creates
        self.backend = backend

    def acquire(self, family: str, *, timeout: float, priority: bool | None = None) -> None:
        """Block until one request of ``family`` is allowed; AwsThrottled after ``timeout``.

        ``priority`` (default: inside ``revocation_priority()``): go before every caller
        without it. Families without a configured rate (organizations, iam, sts) pass at once.
        """
        item = self._items.get(family)
        if item is None:
            return
        first = has_priority() if priority is None else priority
        deadline = time.monotonic() + timeout
        waiter = uuid.uuid4().hex if first else None
        try:
            while not self._take(item, family, waiter):
                wait = (YIELD_PAUSE if waiter is None and self.priority_waiting(family)
                        else self._until_next_slot(item, family))
                if time.monotonic() + wait > deadline:
                    raise AwsThrottled(
                        f"local rate limit for {family} ({item}) still full after "
                        f"{timeout:g}s", api=family, code="LocalRateLimit")
                if waiter is not None:  # seen by the others until we have our permit
                    self._waiting[family].try_acquire(waiter, ttl=PRIORITY_LEASE, cap=UNCAPPED)
                time.sleep(wait)
        finally:
            if waiter is not None:
                self._waiting[family].release(waiter)

    def priority_waiting(self, family: str) -> int:
        """Priority callers waiting for a permit of ``family`` right now, in every process."""
        waiting = self._waiting.get(family)
        return waiting.outstanding() if waiting is not None else 0

    def _take(self, item: RateLimitItem, family: str, waiter: str | None) -> bool:
        if waiter is None and self.priority_waiting(family):
            return False  # a revocation waits: stand aside
        return self._window.hit(item, family)

    def try_acquire_create_slot(self, op_id: str, *, ttl: float) -> bool:
        """Take (or renew) a create slot for ``op_id`` for ``ttl`` seconds; False if full."""
        return self._slots.try_acquire(op_id, ttl=ttl, cap=self._cap)

    def release_create_slot(self, op_id: str) -> None:
        """Give the slot back once the create has settled (SUCCEEDED or FAILED)."""
        self._slots.release(op_id)

    def take_turn(self, name: str, *, period: float) -> float:
        """Take the turn ``name`` for ``period`` seconds: 0.0 if the caller has it, else the
        seconds until the current holder's turn ends (try again then)."""
        return self._turns.take(name, period)

    def spare_share(self, family: str) -> float:
        """The share (0..1) of ``family``'s rate window still free right now; 1.0 for a
        family without a configured rate."""
        item = self._items.get(family)
        if item is None:
            return 1.0
        return self._window.get_window_stats(item, family).remaining / item.amount

    def hold_turn(self, name: str, *, period: float) -> None:
        """Hold the turn ``name`` for ``period`` seconds from now, whoever held it."""
        self._turns.hold(name, period)

    def outstanding_creates(self) -> int:
        """Creates holding a live lease right now, across all processes."""
        return self._slots.outstanding()

    def usage(self) -> dict[str, Any]:
        """What ``grantledger status`` shows: use of each rate window and of create slots."""
        rates = {}
        for family, item in self._items.items():
            stats = self._window.get_window_stats(item, family)
            rates[family] = {"limit": str(item), "used": item.amount - stats.remaining,
                             "remaining": stats.remaining}
        return {"backend": self.backend, "rates": rates,
                "outstanding_creates": self.outstanding_creates(),
                "max_outstanding_creates": self._cap}

    def _until_next_slot(self, item: RateLimitItem, family: str) -> float:
        stats = self._window.get_window_stats(item, family)
        # room already (a permit was freed since our hit failed): only the jitter
        until_free = 0.0 if stats.remaining > 0 else max(0.0, stats.reset_time - time.time())
        return until_free + random.uniform(0, WAKE_JITTER)


class Turns(Protocol):
    """Named turns, each held by one caller at a time for a period."""

    def take(self, name: str, period: float) -> float: ...
    def hold(self, name: str, period: float) -> None: ...


class MemoryTurns:
    """Turns for one process (embedded mode)."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def take(self, name: str, period: float) -> float:
        with self._lock:
            now = time.monotonic()
            until = self._until.get(name, 0.0)
            if until > now:
                return until - now
            self._until[name] = now + period
            return 0.0

    def hold(self, name: str, period: float) -> None:
        with self._lock:
            self._until[name] = time.monotonic() + period


class RedisTurns:
    """Turns shared by every process using the same Redis (expiry by the Redis clock)."""

    def __init__(self, client: redis.Redis, *, prefix: str = f"{KEY_PREFIX}:turn") -> None:
        self._redis, self._prefix = client, prefix

    def take(self, name: str, period: float) -> float:
        key = f"{self._prefix}:{name}"
        if self._redis.set(key, "1", nx=True, px=max(1, int(period * 1000))):
            return 0.0
        remaining = int(self._redis.pttl(key))  # type: ignore[arg-type]
        return max(remaining, 1) / 1000.0  # -2: gone meanwhile, try again almost at once

    def hold(self, name: str, period: float) -> None:
        self._redis.set(f"{self._prefix}:{name}", "1", px=max(1, int(period * 1000)))


class MemoryCreateSlots:
    """Create slots for one process (embedded mode)."""

    def __init__(self) -> None:
        self._leases: dict[str, float] = {}
        self._lock = threading.Lock()

    def try_acquire(self, op_id: str, *, ttl: float, cap: int) -> bool:
        with self._lock:
            self._drop_expired()
            if op_id not in self._leases and len(self._leases) >= cap:
                return False
            self._leases[op_id] = time.monotonic() + ttl
            return True

    def release(self, op_id: str) -> None:
        with self._lock:
            self._leases.pop(op_id, None)

    def outstanding(self) -> int:
        with self._lock:
            self._drop_expired()
            return len(self._leases)

    def _drop_expired(self) -> None:
        now = time.monotonic()
        for op_id in [op for op, expires in self._leases.items() if expires <= now]:
            del self._leases[op_id]


# Lease expiry uses the Redis server clock, so workers with skewed clocks agree.
_NOW_AND_PRUNE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
"""
_ACQUIRE = _NOW_AND_PRUNE + """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3])
then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  return 1
end
return 0
"""
_COUNT = _NOW_AND_PRUNE + "return redis.call('ZCARD', KEYS[1])"


class RedisCreateSlots:
    """Create slots shared by every process using the same Redis (a leased semaphore)."""

    def __init__(self, client: redis.Redis, *, key: str = CREATE_SLOTS_KEY) -> None:
        self._redis, self._key = client, key
        self._acquire = client.register_script(_ACQUIRE)
        self._count = client.register_script(_COUNT)

    def try_acquire(self, op_id: str, *, ttl: float, cap: int) -> bool:
        return bool(self._acquire(keys=[self._key], args=[op_id, ttl, cap]))

    def release(self, op_id: str) -> None:
        self._redis.zrem(self._key, op_id)

    def outstanding(self) -> int:
        return int(self._count(keys=[self._key]))


def make_limiter(settings: Settings) -> Limiter:
    """The Redis-backed limiter when the broker is Redis, else an in-process one."""
    rates = {"sso-admin": settings.sso_admin_rate,
             "identitystore": settings.identitystore_rate, "scim": settings.scim_rate}
    if settings.uses_redis:
        client = redis_client(settings)
        return Limiter(
            rates=rates, storage=limits_storage(settings, key_prefix=KEY_PREFIX),
            slots=RedisCreateSlots(client), turns=RedisTurns(client),
            waiting={family: RedisCreateSlots(client, key=f"{KEY_PREFIX}:priority:{family}")
                     for family in rates},
            max_outstanding_creates=settings.max_outstanding_creates, backend="redis")
    return Limiter(rates=rates, storage=MemoryStorage(), slots=MemoryCreateSlots(),
                   max_outstanding_creates=settings.max_outstanding_creates, backend="memory")

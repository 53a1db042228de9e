"""Rate limiting and injected faults, as the sandbox applies them to incoming calls.

AWS throttles the sso-admin APIs with one token bucket of about 20 requests/s shared by
every operation (docs/DESIGN.md section 4); :class:`TokenBucket` is that bucket. :class:`Faults`
holds what a test or an operator asked the sandbox to get wrong on purpose.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]

DEFAULT_FAILURE_REASON = "An unexpected internal service exception was encountered"


class TokenBucket:
    """A token bucket: ``rate`` tokens per second, holding at most ``burst`` (default ``rate``).

    ``rate=None`` means unlimited: every ``take()`` succeeds.
    """

    def __init__(self, rate: float | None, *, burst: float | None = None,
                 clock: Clock = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else (rate or 0.0)
        self._clock = clock
        self._tokens = self.burst
        self._stamp = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Spend one token if there is one; False means the caller is throttled."""
        if self.rate is None:
            return True
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False


@dataclass
class Faults:
    """Misbehaviour on demand: failed operations, random throttling, stalled operations.

    ``fail_next`` counts down: each create/delete submitted while it is positive ends FAILED
    with ``failure_reason``. ``throttle_ratio`` is the share of sso-admin calls refused at
    random. ``stalled`` keeps every unsettled operation IN_PROGRESS; the Identity Center
    state owns that flag because flipping it moves settle times (see ``IdentityCenter``).
    ``answer_delay`` holds the answer of each call named in ``slow_answers`` (default: create
    and delete) that many seconds *after* the work was done: a caller that dies meanwhile
    never learns the request id (fault drills). ``denied`` names sso-admin operations
    answered AccessDeniedException, as for an integration role without those actions.
    """

    fail_next: int = 0
    failure_reason: str = DEFAULT_FAILURE_REASON
    throttle_ratio: float = 0.0
    answer_delay: float = 0.0
    slow_answers: tuple[str, ...] = ("CreateAccountAssignment", "DeleteAccountAssignment")
    denied: frozenset[str] = frozenset()
    chance: Callable[[], float] = field(default=random.random, repr=False)

    def take_forced_failure(self) -> str | None:
        """The failure reason for the operation being submitted now, if one is due."""
        if self.fail_next <= 0:
            return None
        self.fail_next -= 1
        return self.failure_reason

    def throttles_now(self) -> bool:
        """Whether this call is one of the randomly throttled share."""
        return self.throttle_ratio > 0 and self.chance() < self.throttle_ratio


class CallCounter:
    """Counts calls by name (``service:Operation``); thread-safe."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, name: str) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()

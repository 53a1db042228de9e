"""How the SCIM adapter stops hammering: an auth circuit breaker and jittered backoff.

A revoked or expired SCIM token answers every call with 401/403. Retrying is pointless and
noisy, so after ``threshold`` consecutive auth failures the breaker opens and the adapter
refuses to call at all (ScimCircuitOpen) until an operator fixes the token and resets it.
"""

from __future__ import annotations

import threading

from models.errors import ScimCircuitOpen


class CircuitBreaker:
    """Counts consecutive 401/403 answers; opens at ``threshold``. Thread-safe."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.failures = 0
        self.last_status: int | None = None
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self.failures >= self.threshold

    def check(self) -> None:
        """Raise ScimCircuitOpen while the breaker is open: no call may go out."""
        if self.is_open:
            raise ScimCircuitOpen(
                f"SCIM calls are paused after {self.failures} consecutive "
                f"{self.last_status} answers", status=self.last_status,
            )

    def record_auth_failure(self, status: int) -> bool:
        """Count one 401/403; True when this failure opened the breaker."""
        with self._lock:
            self.failures += 1
            self.last_status = status
            return self.failures == self.threshold

    def record_success(self) -> None:
        """Any answer that is not 401/403 proves the token works."""
        with self._lock:
            if not self.is_open:
                self.failures = 0

    def reset(self) -> None:
        """Close the breaker (after the token was fixed)."""
        with self._lock:
            self.failures = 0
            self.last_status = None


def backoff_delay(attempt: int, *, base: float, cap: float, jitter: float,
                  retry_after: float | None = None) -> float:
    """Seconds to wait before retry ``attempt`` (1-based).

    Exponential from ``base``, scaled by ``jitter`` in [0, 1) to between half and the full
    step (so workers throttled together spread out), capped at ``cap``; a server's
    Retry-After wins when it is longer, still capped.
    """
    step = min(cap, base * 2 ** (attempt - 1))
    delay = step * (0.5 + jitter / 2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the delta-seconds form; a date form is ignored)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None

"""Waiting for work the tests did not do themselves: poll with a deadline, never sleep a
fixed time. One helper for every suite (unit, integration, e2e)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def eventually(condition: Callable[[], Any], *, what: str, timeout: float,
               every: float = 0.1, tail: Callable[[], str] = str) -> Any:
    """Call ``condition`` every ``every`` seconds until it returns something true, and
    return that; fail the test naming ``what`` (and ``tail()``, e.g. a log's end) once
    ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g}s\n{tail()}"
        time.sleep(every)
    return result

"""Which AWS calls are a revocation's: a context the core sets and the adapters read.

Calls made inside ``revocation_priority()`` take rate permits before anyone else's and are
retried sooner when throttled (ops/decisions/aws.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_priority: ContextVar[bool] = ContextVar("grantledger_limiter_priority", default=False)


@contextmanager
def revocation_priority(active: bool = True) -> Iterator[None]:
    """Calls made in this block (a revocation's) go first; ``active=False``: the block runs
    as it would without it."""
    token = _priority.set(active)
    try:
        yield
    finally:
        _priority.reset(token)


def has_priority() -> bool:
    """Whether the current call is a revocation's (``revocation_priority``)."""
    return _priority.get()

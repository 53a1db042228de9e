"""Events that tell the sync what to look at again (stub until the sync lands).

Services call ``desired_state_changed`` AFTER their transaction commits, naming the users
and access lists whose desired state may have moved; the sync enqueues a targeted sync
(``grantledger.sync.principals``) for them. The periodic full sync covers any change this
misses, so a lost event only delays, never loses, a change.
"""

from __future__ import annotations

from collections.abc import Iterable


def desired_state_changed(*, users: Iterable[str] = (), lists: Iterable[str] = (),
                          reason: str) -> None:
    """No-op placeholder with the shared signature; the sync helper replaces the body."""

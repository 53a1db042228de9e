"""Waiting for a sync's report in the CLI: one key scheme, one check, one read-and-forget."""
from __future__ import annotations

import uuid
from typing import Any


def report_key(kind: str) -> str:
    """A fresh ledger key the worker writes its report under (`<kind>.report.<hex>`)."""
    return f"{kind}.report.{uuid.uuid4().hex}"


def sync_reported(runtime: Any, key: str) -> dict[str, Any] | None:
    """The report stored under `key`, or None while the sync has not run yet."""
    from models.ledger.kv import read_state

    with runtime.sessions() as session:
        return read_state(session, key)


def sync_settled(runtime: Any, key: str) -> bool:
    """True once the sync reported and none of its operations is still pending."""
    from models.ledger.kv import read_state
    from tasks.sync.views import unsettled

    with runtime.sessions() as session:
        return read_state(session, key) is not None and not any(unsettled(session).values())


def take_report(runtime: Any, key: str | None) -> dict[str, Any] | None:
    """Read the report under `key` and delete it (None without a key or a report)."""
    from models.ledger.db import transaction
    from models.ledger.kv import delete_state, read_state

    if key is None:
        return None
    with transaction(runtime.sessions) as session:
        report = read_state(session, key)
        delete_state(session, key)
    return report

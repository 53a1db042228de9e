"""Whether AWS answers the poll rounds' status listings: kept by the rounds, shown by status.

With ``status_polling = "list"`` a poll round asks AWS which creates / deletes are still
IN_PROGRESS (``ListAccountAssignment{Creation,Deletion}Status``). When the integration role
lacks those actions, the round hands its operations to one Describe poll each: everything
still settles, only with more calls, and an operator would see it only in worker logs. So
the rounds keep a small kv document, ``poll_rounds``: when a round last listed, and which
listings AWS refused and why. A round writes it only when the refused listings change, or
when the last write is ``RECORD_EVERY`` old: rounds come every 0.4-1 s while work is in
flight, and a write each time would cost more than the listing it reports on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from models.ledger.db import transaction
from models.ledger.kv import read_state, write_state

KEY = "poll_rounds"
RECORD_EVERY = timedelta(minutes=1)
LISTING_FIX = ("grant sso:ListAccountAssignmentCreationStatus and "
               "sso:ListAccountAssignmentDeletionStatus to the integration role (the policy: "
               "grantledger iam-policy; ops/bootstrap-aws applies it), or set "
               "GRANTLEDGER_STATUS_POLLING=describe (each operation polled with Describe)")


def next_record(previous: Any, *, at: datetime, answered: Iterable[str],
                refused: Mapping[str, str]) -> dict[str, Any] | None:
    """The document to keep after a round that listed at ``at`` (database time), or None
    when the one kept still says the same and is younger than ``RECORD_EVERY``.

    ``answered``: the kinds (create, delete) whose listing AWS answered; ``refused``: kind ->
    why AWS refused it. A kind the round did not list (none of its operations was due, or
    the call failed for a moment) keeps what the previous document said of it.
    """
    before = _refused(previous)
    listed = set(answered)
    after = {kind: why for kind, why in before.items() if kind not in listed} | dict(refused)
    last = _recorded_at(previous)
    if set(after) == set(before) and last is not None and at - last < RECORD_EVERY:
        return None
    return {"last_round_at": at.isoformat(), "refused": dict(sorted(after.items()))}


def record_round(sessions: sessionmaker[Session], *, at: datetime, answered: Iterable[str],
                 refused: Mapping[str, str]) -> bool:
    """Keep a round's outcome when ``next_record`` says so; True if it wrote."""
    with transaction(sessions) as session:
        record = next_record(read_state(session, KEY), at=at, answered=answered,
                             refused=refused)
        if record is not None:
            write_state(session, KEY, record)
    return record is not None


def listing_status(session: Session, *, mode: str) -> dict[str, Any]:
    """Status polling for `grantledger status`: the mode; in "list" mode, when a round last
    listed (recorded at most ``RECORD_EVERY`` late) and the listings AWS refuses, with the fix.
    """
    record = read_state(session, KEY) if mode == "list" else None
    refused = _refused(record)
    return {"mode": mode, "last_round_at": _recorded_at(record),
            "listing_refused": bool(refused), "refused": refused,
            "fix": LISTING_FIX if refused else None}


def _refused(record: Any) -> dict[str, str]:
    refused = record.get("refused") if isinstance(record, Mapping) else None
    return {str(k): str(v) for k, v in refused.items()} if isinstance(refused, Mapping) else {}


def _recorded_at(record: Any) -> datetime | None:
    # A document this code did not write (or an older shape) reads as "never recorded".
    try:
        return datetime.fromisoformat(record["last_round_at"])
    except (KeyError, TypeError, ValueError):
        return None

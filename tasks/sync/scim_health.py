"""SCIM outages: recorded, audited and notified once when they start, and once when they end.

A refused SCIM token (401/403; after ``scim_circuit_threshold`` of them the circuit breaker
of ``workers/adapters/scim/breaker.py`` stops a process from calling at all) stops the SCIM push
(``ScimPush.stopped``). What stops with it matters: users, groups and group memberships no
longer reach Identity Center, so a member removed from an access list keeps the group's
access in AWS. That must not wait in a worker log. So each sync hands its push to
``note_push``:

- a stopped push records the outage (kv ``scim.stopped``: since when, AWS's answer), audits
  ``scim.stopped`` and notifies (webhook / Slack) - once, however many syncs and processes
  meet it (an INSERT that only one of them wins);
- while an outage is recorded, a push that was not stopped tests the token with one lookup
  (the push alone may have made no call: nothing to push); the first answer ends the
  outage, audited and notified as ``scim.resumed``.

``status`` shows the outage with the fix, the API's ``/metrics`` as
``grantledger_scim_push_stopped``. The breaker itself stays per process: a new token needs a
restart of the workers (settings are read once), which is also what closes their breakers.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from models.errors import ScimError
from models.ledger.audit import record
from models.ledger.db import transaction
from models.ledger.kv import add_state, delete_state, read_state, state_updated_at
from models.ports.scim import ScimDirectory

KEY = "scim.stopped"
ACTOR = "system:scim"
PROBE_USER = "grantledger-health-probe"  # looked up, never created
FIX = ("set a valid GRANTLEDGER_SCIM_TOKEN (Identity Center > Settings > Automatic "
       "provisioning) and restart the workers; `grantledger doctor` tests it")


def outage(session: Session) -> dict[str, Any] | None:
    """The outage in progress, ``{"since", "reason", "fix"}``, or None."""
    recorded = read_state(session, KEY)
    if recorded is None:
        return None
    since = state_updated_at(session, KEY)
    return {"since": since.isoformat() if since else None, "reason": recorded.get("reason"),
            "fix": FIX}


def note_push(*, sessions: sessionmaker[Session], directory: ScimDirectory, stopped: bool,
              reason: str | None) -> str | None:
    """Record what a (not dry-run) push says of SCIM; "stopped" / "resumed" when that
    changed, else None."""
    if stopped:
        with transaction(sessions) as session:
            return "stopped" if _start(session, reason=reason or "SCIM refused the token") \
                else None
    with sessions() as session:
        if outage(session) is None:
            return None
    try:
        directory.find_user(user_name=PROBE_USER)
    except ScimError:
        return None  # still refused (or this process's breaker is still open)
    with transaction(sessions) as session:
        return "resumed" if _end(session) else None


def _start(session: Session, *, reason: str) -> bool:
    if not add_state(session, KEY, {"reason": reason}):
        return False  # recorded already: notified when it started
    record(session, actor=ACTOR, action="scim.stopped", target_kind="scim", target="scim",
           reason=f"{reason}. Access-list membership changes, removals included, are not "
                  f"reaching Identity Center. Fix: {FIX}")
    return True


def _end(session: Session) -> bool:
    if not delete_state(session, KEY):
        return False
    record(session, actor=ACTOR, action="scim.resumed", target_kind="scim", target="scim",
           reason="SCIM answers again; pending membership changes go out with this sync")
    return True

"""Reconcile: desired grants vs the ledger's live grants -> rows to insert, revoke, extend.

The pure part (``reconcile``) decides; ``apply_reconciliation`` writes the decision in the
caller's transaction, in bulk, with one audit event per grant touched.

- a desired grant without a live row: inserted PENDING;
- a live grant no longer desired: revoked (``begin_revocation``: PENDING -> REVOKED, never
  provisioned; ACTIVE or failed-create -> REVOKING; PROVISIONING -> FAILED -> REVOKING, the
  only legal road while its create is in flight);
- a desired grant whose expiry moved (a request extended): ``expires_at`` updated on the same
  row, so access has no gap (a grant whose create failed too: its retry, and the expiry
  sweep, read the row's expiry);
- a grant on an account or permission set that vanished from AWS: FAILED with the reason.

A desired grant whose live row is being revoked is left alone: the revocation finishes, and
the next sync records a new row (the ledger keeps one live row per grant key).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from models.ledger.audit import record_many
from models.ledger.enums import GrantState
from models.ledger.grants import KEY_COLUMNS, extend_grant
from models.ledger.tables import LIVE_GRANT, Grant
from models.ledger.upsert import dialect_insert
from tasks.sync.applier import CREATING, grant_event, move_grants
from tasks.sync.desired import DesiredGrant, GrantKey
from tasks.sync.planner import GrantView, PrincipalRef

PENDING, PROVISIONING, ACTIVE = GrantState.PENDING, GrantState.PROVISIONING, GrantState.ACTIVE
REVOKING, REVOKED, FAILED = GrantState.REVOKING, GrantState.REVOKED, GrantState.FAILED
INSERT_CHUNK = 1000
REVOKED_WHILE_CREATING = "revoked while its create was in flight"


@dataclass(frozen=True)
class Reconciliation:
    insert: tuple[DesiredGrant, ...] = ()
    revoke: tuple[GrantView, ...] = ()
    extend: tuple[tuple[GrantView, datetime | None], ...] = ()
    vanish: tuple[tuple[GrantView, str], ...] = ()

    def counts(self) -> dict[str, int]:
        return {"grants_inserted": len(self.insert), "grants_revoked": len(self.revoke),
                "grants_extended": len(self.extend), "grants_vanished": len(self.vanish)}


def vanished_reason(grant: GrantView, *, accounts: Mapping[str, str],
                    permission_sets: Mapping[str, str]) -> str | None:
    """Why a grant can no longer exist in AWS, or None."""
    if grant.account_id in accounts:
        return f"account {grant.account_id} ({accounts[grant.account_id]}) no longer exists " \
               "in the Organization"
    if grant.permission_set_arn in permission_sets:
        return f"permission set {permission_sets[grant.permission_set_arn]} " \
               f"({grant.permission_set_arn}) no longer exists in Identity Center"
    return None


def reconcile(*, desired: Mapping[GrantKey, DesiredGrant], live: Iterable[GrantView],
              vanished_accounts: Mapping[str, str] | None = None,
              vanished_permission_sets: Mapping[str, str] | None = None) -> Reconciliation:
    """What to write so that the live grants (in scope) are exactly the desired ones."""
    accounts, sets = vanished_accounts or {}, vanished_permission_sets or {}
    seen: set[GrantKey] = set()
    revoke, extend, vanish = [], [], []
    for grant in live:
        seen.add(grant.source_key)
        reason = vanished_reason(grant, accounts=accounts, permission_sets=sets)
        if reason is not None:
            if grant.state is not FAILED:
                vanish.append((grant, reason))
            continue
        wanted = desired.get(grant.source_key)
        if wanted is None:
            if grant.backs(None):
                revoke.append(grant)
        elif wanted.expires_at != grant.expires_at and grant.backs(None):
            # backs(None): held or being created (a failed create too), whatever its expiry
            extend.append((grant, wanted.expires_at))
    insert = [d for key, d in sorted(desired.items()) if key not in seen]
    return Reconciliation(insert=tuple(insert), revoke=tuple(revoke), extend=tuple(extend),
                          vanish=tuple(vanish))


def resulting_grants(live: Iterable[GrantView], result: Reconciliation,
                     principal_ids: Mapping[PrincipalRef, str | None]) -> list[GrantView]:
    """The live grants as they would be after ``result`` (for a dry run: nothing written).

    Inserted grants get negative ids, so a plan can show them without a row.
    """
    revoked = {g.id for g in result.revoke}
    vanished = {g.id for g, _ in result.vanish}
    grants = []
    for grant in live:
        if grant.id in vanished:
            continue
        if grant.id in revoked:
            if grant.state is PENDING:
                continue
            grant = _replace_state(grant, REVOKING)
        grants.append(grant)
    for index, wanted in enumerate(result.insert, start=1):
        grants.append(GrantView(
            id=-index, principal_type=wanted.principal_type, principal_name=wanted.principal_name,
            account_id=wanted.account_id, permission_set_arn=wanted.permission_set_arn,
            state=PENDING, source_kind=wanted.source_kind, source_id=wanted.source_id,
            principal_id=principal_ids.get((wanted.principal_type, wanted.principal_name)),
            expires_at=wanted.expires_at))
    return grants


def _replace_state(grant: GrantView, state: GrantState) -> GrantView:
    from dataclasses import replace

    return replace(grant, state=state, failed_from=None)


# --- the ledger side --------------------------------------------------------------------------


def apply_reconciliation(session: Session, result: Reconciliation, *,
                         principal_ids: Mapping[PrincipalRef, str | None],
                         actor: str) -> dict[str, int]:
    """Write ``result`` in the caller's transaction; counts of what actually changed."""
    inserted = insert_grants(session, result.insert, principal_ids=principal_ids, actor=actor)
    revoked = begin_revocation(session, result.revoke, actor=actor,
                               reason="no longer desired")
    extended = 0
    for grant, expires_at in result.extend:
        if extend_grant(session, grant_id=grant.id, expires_at=expires_at):
            extended += 1
            record_many(session, [grant_event(grant, actor=actor, action="grant.extended",
                                              reason="expiry moved by its source",
                                              before={"expires_at": grant.expires_at},
                                              after={"expires_at": expires_at})])
    vanished = sum(fail_vanished(session, grant, reason=reason, actor=actor)
                   for grant, reason in result.vanish)
    return {"grants_inserted": inserted, "grants_revoked": len(revoked),
            "grants_extended": extended, "grants_vanished": vanished}


def insert_grants(session: Session, wanted: Iterable[DesiredGrant], *,
                  principal_ids: Mapping[PrincipalRef, str | None], actor: str) -> int:
    """Insert PENDING rows in bulk; a key that already has a live row is skipped."""
    rows = [{"principal_type": d.principal_type, "principal_name": d.principal_name,
             "account_id": d.account_id, "permission_set_arn": d.permission_set_arn,
             "source_kind": d.source_kind, "source_id": d.source_id,
             "principal_id": principal_ids.get((d.principal_type, d.principal_name)),
             "expires_at": d.expires_at, "state": PENDING} for d in wanted]
    inserted = 0
    for start in range(0, len(rows), INSERT_CHUNK):
        statement = (dialect_insert(session, Grant).values(rows[start:start + INSERT_CHUNK])
                     .on_conflict_do_nothing(index_elements=list(KEY_COLUMNS),
                                             index_where=LIVE_GRANT)
                     .returning(*(getattr(Grant, c) for c in (*KEY_COLUMNS, "id",
                                                              "expires_at"))))
        created = session.execute(statement).all()
        inserted += len(created)
        record_many(session, [_created_event(row, actor) for row in created])
    return inserted


def _created_event(row: Any, actor: str) -> dict[str, Any]:
    principal_type, name, account_id, arn, source_kind, source_id, grant_id, expires = row
    return {"actor": actor, "action": "grant.created", "target_kind": "grant",
            "target": str(grant_id), "principal_name": name, "account_id": account_id,
            "reason": f"desired by {source_kind} {source_id}",
            "details": {"principal_type": str(principal_type), "permission_set_arn": arn,
                        "source": f"{source_kind}:{source_id}",
                        "expires_at": expires.isoformat() if expires else None}}


def begin_revocation(session: Session, grants: Iterable[GrantView], *, actor: str,
                     reason: str, action: str = "grant.revoking") -> list[GrantView]:
    """Start revoking live grants whatever their state; the ones that moved.

    Never provisioned (PENDING) -> REVOKED at once; ACTIVE / failed-create -> REVOKING;
    PROVISIONING -> FAILED -> REVOKING (the create in flight may still land: the delete
    that follows removes it). Grants already being revoked are left as they are.
    """
    grants = list(grants)
    by_id = {g.id: g for g in grants}
    moved = move_grants(session, [g.id for g in grants if g.state is PENDING],
                        expected=PENDING, to=REVOKED)
    moved += move_grants(session, [g.id for g in grants if g.state is ACTIVE],
                         expected=ACTIVE, to=REVOKING)
    provisioning = move_grants(session, [g.id for g in grants if g.state is PROVISIONING],
                               expected=PROVISIONING, to=FAILED, reason=REVOKED_WHILE_CREATING)
    failed = [g.id for g in grants if g.state is FAILED and g.wants_create] + provisioning
    moved += move_grants(session, failed, expected=FAILED, to=REVOKING, failed_from=CREATING)
    changed = [by_id[i] for i in sorted(set(moved))]
    record_many(session, [grant_event(g, actor=actor, action=action, reason=reason)
                          for g in changed])
    return changed


def fail_vanished(session: Session, grant: GrantView, *, reason: str, actor: str) -> bool:
    """A grant whose account or permission set vanished: FAILED with the reason (ACTIVE and
    PROVISIONING pass through REVOKING / FAILED as the state machine requires)."""
    state = grant.state
    if state is ACTIVE and move_grants(session, [grant.id], expected=ACTIVE, to=REVOKING):
        state = REVOKING
    if state not in (PENDING, PROVISIONING, REVOKING):
        return False
    if not move_grants(session, [grant.id], expected=state, to=FAILED, reason=reason):
        return False
    record_many(session, [grant_event(grant, actor=actor, action="grant.failed",
                                      reason=reason)])
    return True

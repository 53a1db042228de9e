"""Offboarding and emergency revocation: take away everything a user holds, in seconds; and
give it back.

``revoke_user`` is one transaction, serialized with the sync engine's reconcile step (so a
sync running meanwhile cannot insert a grant for the user after it):

1. the user is suspended (``users.suspended`` + reason): desired state gives a suspended
   user nothing and leaves them out of every synced group, so no sync re-grants them;
2. every live grant of the user (``live_grants_of``: one locked query) starts its revocation
   and the deletes of every assignment they hold directly are planned and recorded at once
   (``tasks.provisioning.expiry.revoke_assignments``, without the failed-delete backoff);
3. their PENDING requests are denied, their APPROVED ones ended (EXPIRED), and their API
   tokens revoked: a restore gives back what roles and access lists grant, not a temporary
   elevation, and no old credential;
4. ``user.revoked`` is audited (notifiable), with what was taken.

After the commit, the caller enqueues ``Revocation.next_work()``: the deletes (a burst through
the global limiter) and a targeted sync of the user, which removes them from every synced
group through SCIM. ``deactivate_directory_user`` also disables sign-in (SCIM
``active=false``); ``restore_user`` lifts the suspension and ``reactivate_directory_user``
re-enables a sign-in that a revoke disabled.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.domain import PrincipalType
from models.errors import InputError, NotFound
from models.flatten import lists_of_user
from models.ledger import audit, tables
from models.ledger.base import database_time
from models.ledger.db import transaction
from models.ledger.enums import GrantState
from models.ledger.grants import live_grants_of, lock_assignment
from models.ledger.locks import RECONCILE_LOCK, serialize
from models.ports.runtime import Runtime
from tasks.access.requests import close_requests_of
from tasks.access.tokens import revoke_tokens_of
from tasks.events import Next, submit, sync_principals
from tasks.provisioning.expiry import revoke_assignments
from tasks.sync.applier import apply_changes
from tasks.sync.planner import ChangeKind, GrantView, plan
from tasks.sync.reconcile import begin_revocation
from tasks.sync.snapshot import IN_FLIGHT_STATES, Scope, grant_view, load_lists, load_plan_inputs

DEACTIVATED, REACTIVATED = "user.deactivated", "user.reactivated"
UNSETTLED = (GrantState.PENDING, GrantState.PROVISIONING, GrantState.REVOKING)


@dataclass(frozen=True)
class Revocation:
    """What one revoke took, and the work that carries it out in AWS."""

    user: str
    reason: str
    principal_id: str | None
    grant_ids: tuple[int, ...]
    groups: tuple[str, ...]  # synced access lists the user leaves (their groups)
    denied_requests: tuple[str, ...] = ()
    ended_requests: tuple[str, ...] = ()
    revoked_tokens: tuple[int, ...] = ()
    submit: tuple[int, ...] = ()  # delete operations recorded, to enqueue after commit
    counts: dict[str, int] = field(default_factory=dict)

    def next_work(self, *, report_key: str | None = None) -> list[Next]:
        """The deletes first (the burst), then the targeted sync that empties the groups."""
        sync = sync_principals(users=[self.user], reason=f"user revoked: {self.reason}")
        if report_key:
            sync = Next(sync.task, kwargs={**sync.kwargs, "report_key": report_key})
        return [*(submit(operation_id) for operation_id in self.submit), sync]

    def summary(self) -> dict[str, Any]:
        return {"user": self.user, "reason": self.reason, "grants": len(self.grant_ids),
                "groups": list(self.groups), "denied_requests": list(self.denied_requests),
                "ended_requests": list(self.ended_requests),
                "revoked_tokens": list(self.revoked_tokens), "counts": self.counts}


@dataclass(frozen=True)
class Restoration:
    user: str
    lifted: bool  # False: the user was not suspended (only the sign-in was left to restore)
    reactivate: str | None  # the Identity Center id whose sign-in a revoke disabled


def revoke_user(*, sessions: sessionmaker[Session], user: str, reason: str, actor: str,
                drift_mode: str = "report") -> Revocation:
    """Suspend ``user`` and start revoking everything they hold (see the module docstring).

    Raises NotFound for an unknown user (nothing changes). Revoking a suspended user again is
    allowed: it retries whatever is still held, at once.
    """
    reason = _required(reason)
    with transaction(sessions) as session:
        serialize(session, RECONCILE_LOCK)
        row = _locked_user(session, user)
        row.suspended, row.suspended_reason = True, reason
        grants = [grant_view(g) for g in live_grants_of(
            session, principal_type=PrincipalType.USER, principal_name=user)]
        applied = revoke_grants(session, grants, reason=f"user revoked: {reason}",
                                actor=actor, drift_mode=drift_mode)
        denied, ended = close_requests_of(session, user_id=row.id, actor=actor,
                                          reason=f"user revoked: {reason}")
        tokens = revoke_tokens_of(session, user_id=row.id, actor=actor,
                                  reason=f"user revoked: {reason}")
        revocation = Revocation(
            user=user, reason=reason, principal_id=row.principal_id,
            grant_ids=tuple(g.id for g in grants), groups=tuple(synced_lists_of(session, user)),
            denied_requests=tuple(denied), ended_requests=tuple(ended),
            submit=tuple(applied.submit), counts=dict(applied.counts),
            revoked_tokens=tuple(tokens))
        audit.record(session, actor=actor, action="user.revoked", target_kind="user",
                     target=user, reason=reason, principal_name=user,
                     details={**revocation.summary(),
                              "resources": resource_names(session, grants)})
    return revocation


def revoke_grants(session: Session, grants: list[GrantView], *, reason: str, actor: str,
                  drift_mode: str) -> Any:
    """Start revoking ``grants`` and record the deletes of their assignments, in the caller's
    transaction (what the expiry sweep does for due grants, without its backoff)."""
    keys = {g.name_key for g in grants}
    for key in sorted(keys):
        lock_assignment(session, principal_type=PrincipalType(key[0]), principal_name=key[1],
                        account_id=key[2], permission_set_arn=key[3])
    begin_revocation(session, grants, actor=actor, reason=reason)
    # An assignment may exist for any grant that got past PENDING (or is failing a delete).
    maybe_present = {g.name_key for g in grants if g.state is not GrantState.PENDING}
    return revoke_assignments(session, keys=keys, maybe_present=maybe_present,
                              drift_mode=drift_mode, actor=actor, backoff=False)


def remove_unexplained_assignments(*, runtime: Runtime, revocation: Revocation,
                                   actor: str) -> list[int]:
    """Record deletes of the user's direct assignments that no grant explains (made outside
    grantledger, or a create that landed after its grant was revoked); the operations to
    submit. An emergency takes everything, whatever the drift mode; one AWS listing."""
    if not revocation.principal_id:
        return []
    held = {record.key for record in runtime.identity_center.list_assignments_for_principal(
        principal_type=PrincipalType.USER.value, principal_id=revocation.principal_id)
        # Only the user's own: AWS may also name assignments held through groups.
        if record.principal_type == PrincipalType.USER.value
        and record.principal_id == revocation.principal_id}
    with transaction(runtime.sessions) as session:
        inputs = load_plan_inputs(session, scope=Scope.of(users=[revocation.user]))
        changes = plan(grants=inputs.grants, actual=held, principal_ids=inputs.principal_ids,
                       in_flight=inputs.in_flight, drift_mode="remove", history=inputs.history)
        unexplained = [c for c in changes if c.kind is ChangeKind.FOREIGN_REMOVE
                       or (c.kind is ChangeKind.DELETE and not c.grant_ids)]
        return apply_changes(session, unexplained, actor=actor).submit


def restore_user(*, sessions: sessionmaker[Session], user: str, reason: str,
                 actor: str) -> Restoration:
    """Lift a revoke's suspension (audited ``user.restored``); the next sync gives back what
    roles and access lists grant. InputError when there is nothing to restore."""
    reason = _required(reason)
    with transaction(sessions) as session:
        row = _locked_user(session, user)
        disabled = sign_in_disabled(session, user)
        if not row.suspended and not disabled:
            raise InputError(f"user {user!r} is not suspended: nothing to restore",
                             hint="see `grantledger get users`")
        lifted = row.suspended
        if lifted:
            audit.record(session, actor=actor, action="user.restored", target_kind="user",
                         target=user, reason=reason, principal_name=user,
                         before={"suspended_reason": row.suspended_reason})
            row.suspended, row.suspended_reason = False, None
        return Restoration(user=user, lifted=lifted,
                           reactivate=row.principal_id if disabled else None)


def deactivate_directory_user(*, runtime: Runtime, user: str, reason: str, actor: str) -> bool:
    """Disable the user's sign-in (SCIM ``active=false``); False when they have no Identity
    Center user. Audited ``user.deactivated``, which is how restore knows to undo it."""
    with runtime.sessions() as session:
        principal_id = session.scalar(select(tables.User.principal_id)
                                      .where(tables.User.name == user))
    if not principal_id:
        return False
    runtime.directory.set_user_active(user_id=principal_id, active=False)
    _audit_sign_in(runtime, user=user, action=DEACTIVATED, reason=reason, actor=actor,
                   principal_id=principal_id)
    return True


def reactivate_directory_user(*, runtime: Runtime, restoration: Restoration, reason: str,
                              actor: str) -> bool:
    """Re-enable a sign-in that a revoke disabled; False when there was none to re-enable."""
    if restoration.reactivate is None:
        return False
    runtime.directory.set_user_active(user_id=restoration.reactivate, active=True)
    _audit_sign_in(runtime, user=restoration.user, action=REACTIVATED, reason=reason,
                   actor=actor, principal_id=restoration.reactivate)
    return True


def _audit_sign_in(runtime: Runtime, *, user: str, action: str, reason: str, actor: str,
                   principal_id: str) -> None:
    with transaction(runtime.sessions) as session:
        audit.record(session, actor=actor, action=action, target_kind="user", target=user,
                     reason=reason, principal_name=user, details={"principal_id": principal_id})


def sign_in_disabled(session: Session, user: str) -> bool:
    """Whether a revoke disabled the user's sign-in and no restore re-enabled it since."""
    last = session.scalar(
        select(tables.AuditEvent.action)
        .where(tables.AuditEvent.target_kind == "user", tables.AuditEvent.target == user,
               tables.AuditEvent.action.in_((DEACTIVATED, REACTIVATED)))
        .order_by(tables.AuditEvent.id.desc()).limit(1))
    return last == DEACTIVATED


# --- reading -----------------------------------------------------------------------------------


def synced_lists_of(session: Session, user: str) -> list[str]:
    """The access lists (direct or nested) the user belongs to that have a group."""
    lists, group_ids = load_lists(session)
    return sorted(name for name in lists_of_user(lists, user=user, at=database_time(session))
                  if group_ids.get(name))


def resource_names(session: Session, grants: Iterable[GrantView]) -> list[str]:
    """``<account-id>/<permission-set-name>`` of each grant (notifications name these)."""
    names = dict(session.execute(select(tables.PermissionSet.arn,
                                       tables.PermissionSet.name)).all())
    return sorted({f"{g.account_id}/{names.get(g.permission_set_arn, g.permission_set_arn)}"
                   for g in grants})


def revocation_pending(session: Session, revocation: Revocation) -> int:
    """How many of the revocation's grants, and operations on the user's assignments, are
    still on their way out."""
    grants = session.scalars(select(tables.Grant.id).where(
        tables.Grant.id.in_(revocation.grant_ids), tables.Grant.state.in_(UNSETTLED))).all()
    operations = session.scalars(select(tables.Operation.id).where(
        tables.Operation.principal_type == PrincipalType.USER,
        tables.Operation.principal_id == revocation.principal_id,
        tables.Operation.state.in_(IN_FLIGHT_STATES))).all() if revocation.principal_id else []
    return len(grants) + len(operations)


def revocation_outcome(session: Session, revocation: Revocation) -> list[dict[str, Any]]:
    """Each grant the revocation took: where it stands now, with AWS's reason if it failed."""
    accounts = dict(session.execute(select(tables.Account.id, tables.Account.name)).all())
    sets = dict(session.execute(select(tables.PermissionSet.arn,
                                      tables.PermissionSet.name)).all())
    rows = session.scalars(select(tables.Grant).where(tables.Grant.id.in_(revocation.grant_ids))
                           .order_by(tables.Grant.id))
    return [{"grant": g.id, "account": f"{g.account_id} ({accounts.get(g.account_id, '?')})",
             "permission_set": sets.get(g.permission_set_arn, g.permission_set_arn),
             "source": f"{g.source_kind}:{g.source_id}", "state": str(g.state),
             "reason": g.failure_reason} for g in rows]


def _locked_user(session: Session, user: str) -> tables.User:
    row = session.scalars(select(tables.User).where(tables.User.name == user)
                          .with_for_update()).one_or_none()
    if row is None:
        raise NotFound("user", user)
    return row


def _required(reason: str) -> str:
    if not reason or not reason.strip():
        raise InputError("a reason is required", hint="say why, e.g. --reason 'left the "
                         "company (HR-1234)'; it is kept in the audit trail")
    return reason.strip()

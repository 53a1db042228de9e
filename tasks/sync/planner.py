"""The sync planner: ledger grants + what AWS holds -> the changes to make. Pure, no I/O.

Grants are grouped by the AWS assignment they need (principal x account x permission set);
several grants (sources) may share one assignment, which exists while any of them backs it
(reference counting). Per assignment:

- a grant waiting to be created (PENDING, or FAILED while being created): ``activate`` when
  AWS already has the assignment (no AWS call), else join the create in flight, else
  ``create``;
- PROVISIONING grants whose assignment is in AWS: ``activate`` (even with their create
  still recorded in flight: a crash may have lost its request id); PROVISIONING/ACTIVE
  grants whose assignment is missing and no create in flight (deleted outside grantledger,
  or its create lost): ``create`` again;
- grants being revoked (REVOKING, or FAILED while being revoked): ``retire`` (REVOKED, no AWS
  call) when another live grant still backs the assignment or AWS does not have it; else one
  ``delete`` per assignment. A failed delete is retried only after a growing backoff.

Assignments in AWS that no grant row explains: *stale* when the ledger revoked every grant it
ever had for them (a create that landed after its grant was revoked): ``delete``; *foreign*
when no grant row ever named them: reported, quarantined or removed per the drift mode.

The result is sorted (kind, then assignment key), so equal inputs give equal plans.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from models.domain import AssignmentKey
from models.ledger.enums import GrantState

NameKey = tuple[str, str, str, str]
"""An assignment named by our principal name: (principal_type, principal_name, account, ps)."""
PrincipalRef = tuple[str, str]
"""(principal_type, principal_name): USER alice, GROUP platform-admins."""

PENDING, PROVISIONING, ACTIVE = GrantState.PENDING, GrantState.PROVISIONING, GrantState.ACTIVE
REVOKING, FAILED = GrantState.REVOKING, GrantState.FAILED
CREATE_STATES = frozenset({PENDING, PROVISIONING})

# A delete that failed is retried after 30 s, 1 min, 2 min, ... at most hourly, forever.
REVOKE_RETRY_BASE = timedelta(seconds=30)
REVOKE_RETRY_CAP = timedelta(hours=1)

DRIFT_MODES = ("report", "quarantine", "remove")


class ChangeKind(StrEnum):
    """What one change does; the order here is the order changes are applied in."""

    ACTIVATE = "activate"  # the assignment exists: mark its grants ACTIVE, no AWS call
    CREATE = "create"  # CreateAccountAssignment
    RETIRE = "retire"  # grants to REVOKED without an AWS call
    DELETE = "delete"  # DeleteAccountAssignment
    FOREIGN_REPORT = "foreign_report"  # audit + metric only
    FOREIGN_QUARANTINE = "foreign_quarantine"  # recorded and flagged in status
    FOREIGN_REMOVE = "foreign_remove"  # DeleteAccountAssignment of what we do not own


KIND_ORDER = {kind: index for index, kind in enumerate(ChangeKind)}
FOREIGN_KINDS = {"report": ChangeKind.FOREIGN_REPORT,
                 "quarantine": ChangeKind.FOREIGN_QUARANTINE,
                 "remove": ChangeKind.FOREIGN_REMOVE}


@dataclass(frozen=True, slots=True)
class GrantView:
    """What the planner needs of one live grant row."""

    id: int
    principal_type: str
    principal_name: str
    account_id: str
    permission_set_arn: str
    state: GrantState
    source_kind: str = ""
    source_id: str = ""
    principal_id: str | None = None
    failed_from: GrantState | None = None
    expires_at: datetime | None = None
    attempts: int = 0
    updated_at: datetime | None = None

    @property
    def name_key(self) -> NameKey:
        return (self.principal_type, self.principal_name, self.account_id,
                self.permission_set_arn)

    @property
    def source_key(self) -> tuple[str, str, str, str, str, str]:
        """The ledger's one-live-row-per key (assignment + source)."""
        return (*self.name_key, self.source_kind, self.source_id)

    @property
    def wants_create(self) -> bool:
        """Waiting for its assignment: never submitted, or its create failed."""
        return self.state is PENDING or (self.state is FAILED
                                          and self.failed_from in CREATE_STATES)

    @property
    def being_revoked(self) -> bool:
        return self.state is REVOKING or (self.state is FAILED and self.failed_from is REVOKING)

    def backs(self, now: datetime | None) -> bool:
        """Still needs its assignment: live, not being revoked, not expired at ``now``."""
        wants = self.state in (PENDING, PROVISIONING, ACTIVE) or self.wants_create
        expired = now is not None and self.expires_at is not None and self.expires_at <= now
        return wants and not expired


@dataclass(frozen=True, slots=True)
class InFlight:
    """A create or delete operation recorded and not settled yet (QUEUED or SUBMITTED)."""

    operation_id: int
    kind: ChangeKind  # CREATE or DELETE (FOREIGN_REMOVE is recorded as a DELETE)
    key: AssignmentKey


@dataclass(frozen=True, slots=True)
class Change:
    """One step of a plan. ``operation_id`` set: join that in-flight operation, add none."""

    kind: ChangeKind
    key: AssignmentKey
    grant_ids: tuple[int, ...] = ()
    reason: str = ""
    principal_name: str | None = None
    operation_id: int | None = None
    generation: str = ""  # the last part of the operation's idempotency key

    @property
    def calls_aws(self) -> bool:
        """True for the changes that become an AWS operation (a new one, not a join)."""
        return (self.kind in (ChangeKind.CREATE, ChangeKind.DELETE, ChangeKind.FOREIGN_REMOVE)
                and self.operation_id is None)

    def sort_key(self) -> tuple[int, str, str, str, str, tuple[int, ...]]:
        principal_type, principal_id, account_id, permission_set_arn = self.key
        return (KIND_ORDER[self.kind], str(principal_type), principal_id, account_id,
                permission_set_arn, self.grant_ids)


def revoke_retry_due(grant: GrantView, now: datetime | None) -> bool:
    """Whether a failed delete may be tried again: backoff doubles per attempt, capped."""
    if grant.state is not FAILED or now is None or grant.updated_at is None:
        return True
    exponent = min(max(grant.attempts - 1, 0), 16)
    return now >= grant.updated_at + min(REVOKE_RETRY_BASE * (2 ** exponent), REVOKE_RETRY_CAP)


def plan(
    *, grants: Iterable[GrantView], actual: Collection[AssignmentKey],
    principal_ids: Mapping[PrincipalRef, str | None], in_flight: Iterable[InFlight] = (),
    drift_mode: str = "report", history: Collection[NameKey] = (),
    now: datetime | None = None,
) -> list[Change]:
    """The changes that make AWS match the grants, in a stable order.

    ``actual``: the assignments AWS holds (the whole instance, or the part in scope).
    ``principal_ids``: our principals' Identity Center ids. ``history``: every assignment
    any grant row (revoked ones included) ever named, to tell stale from foreign.
    ``now``: the database time; expired grants back nothing and failed deletes wait out
    their backoff (None: no expiry, no backoff).
    """
    if drift_mode not in FOREIGN_KINDS:
        raise ValueError(f"drift mode must be one of {', '.join(DRIFT_MODES)}, not {drift_mode!r}")
    creating: dict[AssignmentKey, int] = {}
    deleting: dict[AssignmentKey, int] = {}
    for operation in in_flight:
        (creating if operation.kind is ChangeKind.CREATE else deleting)[operation.key] = \
            operation.operation_id
    by_assignment: dict[NameKey, list[GrantView]] = defaultdict(list)
    for grant in grants:
        by_assignment[grant.name_key].append(grant)
    state = _Actual(actual, creating, deleting, now)
    changes: list[Change] = []
    owned: set[AssignmentKey] = set()
    for name_key, members in by_assignment.items():
        key = _assignment_key(name_key, members, principal_ids)
        if key is None:
            changes.extend(_without_principal(name_key, members))
            continue
        owned.add(key)
        changes.extend(_plan_assignment(key, name_key[1], members, state))
    changes.extend(_plan_unowned(actual, owned, principal_ids, history, drift_mode))
    changes.sort(key=Change.sort_key)
    return changes


@dataclass(frozen=True, slots=True)
class _Actual:
    """AWS's side of one planning run."""

    present: Collection[AssignmentKey]
    creating: Mapping[AssignmentKey, int]
    deleting: Mapping[AssignmentKey, int]
    now: datetime | None


def _assignment_key(name_key: NameKey, members: list[GrantView],
                    principal_ids: Mapping[PrincipalRef, str | None]) -> AssignmentKey | None:
    # The principal's current id; else the id a grant recorded when it was provisioned.
    principal_type, principal_name, account_id, permission_set_arn = name_key
    principal_id = principal_ids.get((principal_type, principal_name))
    if principal_id is None:
        principal_id = next((g.principal_id for g in members if g.principal_id), None)
    if principal_id is None:
        return None
    return AssignmentKey(principal_type, principal_id, account_id, permission_set_arn)


def _without_principal(name_key: NameKey, members: list[GrantView]) -> list[Change]:
    """A principal that never reached Identity Center holds nothing there: revocations end;
    creations wait until the SCIM push gives it an id."""
    revoking = tuple(sorted(g.id for g in members if g.being_revoked))
    if not revoking:
        return []
    key = AssignmentKey(name_key[0], "", name_key[2], name_key[3])
    return [Change(ChangeKind.RETIRE, key, revoking, "principal never existed in Identity "
                   "Center", principal_name=name_key[1])]


def _plan_assignment(key: AssignmentKey, name: str, members: list[GrantView],
                     aws: _Actual) -> list[Change]:
    if key in aws.present and all(g.state is ACTIVE for g in members):
        return []  # the steady state, almost every assignment: nothing to decide
    changes = _plan_creation(key, name, members, aws)
    revoking = [g for g in members if g.being_revoked]
    if revoking:
        backed = any(g.backs(aws.now) for g in members)
        changes.extend(_plan_revocation(key, name, revoking, backed, aws))
    return changes


def _plan_creation(key: AssignmentKey, name: str, members: list[GrantView],
                   aws: _Actual) -> list[Change]:
    present, in_flight = key in aws.present, aws.creating.get(key)
    waiting = [g for g in members if g.wants_create and g.backs(aws.now)]
    if waiting:
        ids = _ids(waiting)
        if present:
            return [Change(ChangeKind.ACTIVATE, key, ids, "assignment already in AWS", name)]
        if in_flight is not None:
            return [Change(ChangeKind.CREATE, key, ids, "joins the create in flight", name,
                           operation_id=in_flight)]
        return [Change(ChangeKind.CREATE, key, ids, "new grant", name,
                       generation=_generation(waiting, retry_bump=True))]
    held = [g for g in members if g.state in (PROVISIONING, ACTIVE) and g.backs(aws.now)]
    provisioning = [g for g in held if g.state is PROVISIONING]
    if present:
        # AWS is the truth: also heals a create whose request id was never saved (a crash
        # between the call and the commit), whatever its operation row still says.
        return [Change(ChangeKind.ACTIVATE, key, _ids(provisioning),
                       "assignment already in AWS", name)] if provisioning else []
    if not held or in_flight is not None:
        return []
    return [Change(ChangeKind.CREATE, key, (), "assignment missing from AWS "
                   "(deleted outside grantledger, or its create was lost)", name,
                   generation=_generation(held, retry_bump=False))]


def _plan_revocation(key: AssignmentKey, name: str, revoking: list[GrantView], backed: bool,
                     aws: _Actual) -> list[Change]:
    ids = _ids(revoking)
    if backed:
        return [Change(ChangeKind.RETIRE, key, ids, "another live grant still backs the "
                       "assignment", name)]
    in_flight = aws.deleting.get(key)
    if in_flight is not None:
        failed = tuple(g.id for g in revoking if g.state is FAILED)
        return [Change(ChangeKind.DELETE, key, failed, "joins the delete in flight", name,
                       operation_id=in_flight)] if failed else []
    if key not in aws.present and key not in aws.creating:
        return [Change(ChangeKind.RETIRE, key, ids, "assignment not in AWS", name)]
    if not any(revoke_retry_due(g, aws.now) for g in revoking):
        return []  # every try so far failed: wait out the backoff
    return [Change(ChangeKind.DELETE, key, ids, "no live grant backs the assignment", name,
                   generation=_generation(revoking, retry_bump=True))]


def _plan_unowned(actual: Collection[AssignmentKey], owned: set[AssignmentKey],
                  principal_ids: Mapping[PrincipalRef, str | None],
                  history: Collection[NameKey], drift_mode: str) -> list[Change]:
    unowned = [key for key in actual if key not in owned]
    if not unowned:
        return []
    names = {(ref[0], pid): ref[1] for ref, pid in principal_ids.items() if pid}
    known = history if isinstance(history, set | frozenset) else set(history)
    changes = []
    for key in unowned:
        principal_type, principal_id, account_id, permission_set_arn = key
        name = names.get((str(principal_type), principal_id))
        if name is not None and (str(principal_type), name, account_id,
                                 permission_set_arn) in known:
            changes.append(Change(ChangeKind.DELETE, key, (), "revoked in the ledger but still "
                                  "in AWS", name, generation="stale"))
        else:
            changes.append(Change(FOREIGN_KINDS[drift_mode], key, (), "no grant explains this "
                                  "assignment", name, generation="foreign"))
    return changes


def _ids(grants: Iterable[GrantView]) -> tuple[int, ...]:
    return tuple(sorted(g.id for g in grants))


def _generation(grants: list[GrantView], *, retry_bump: bool) -> str:
    """Names this try of the change: the lead grant and the attempt it is about to make.

    Two syncs planning the same try compute the same value, so they find one operation.
    A failed grant's next try counts one more attempt, which gives a new operation.
    """
    lead = min(grants, key=lambda g: g.id)
    attempt = lead.attempts + 1 if retry_bump and (lead.state is FAILED
                                                    or lead.state is PENDING) else lead.attempts
    return f"g{lead.id}.{attempt}"

"""Identity Center's account assignments, behaving the way AWS does.

- Create and delete are asynchronous: they answer IN_PROGRESS and settle ``settle_delay``
  seconds later (plus a random share of ``settle_jitter``: AWS takes 1-5 s, not a
  constant). Settling is computed lazily from the clock whenever the state is read, so no
  thread is needed and a test with a fake clock is exact.
- What is wrong with a request (unknown principal, account or permission set; deleting an
  assignment that is not there) is only found when it settles: the operation ends FAILED
  with a FailureReason worded like AWS's, never as an error of the call itself.
- Assignments are a set: creating an existing one succeeds without a second row.
- A create and a delete of the same assignment in flight at once: ConflictException.
- More than ``max_outstanding_creates`` creates in flight: ThrottlingException.

The module knows nothing of HTTP: ``sso_admin.py`` turns requests into these calls.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from workers.sandbox.limits import Faults

AssignmentKey = tuple[str, str, str, str]
"""(principal_type, principal_id, account_id, permission_set_arn): the shared convention."""

IN_PROGRESS, SUCCEEDED, FAILED = "IN_PROGRESS", "SUCCEEDED", "FAILED"
CREATE, DELETE = "CREATE", "DELETE"

TOO_MANY_OUTSTANDING = "There are too many requests processing. Please try again later."


class ServiceFault(Exception):
    """An error answer of the simulated AWS API: ``code`` is its ``__type``."""

    def __init__(self, code: str, message: str, *, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status = code, message, status


class Directory(Protocol):
    """Who and what exists: the organization's accounts and the identity store's principals."""

    def account_exists(self, account_id: str) -> bool: ...

    def principal_exists(self, principal_type: str, principal_id: str) -> bool: ...


@dataclass
class PermissionSet:
    arn: str
    name: str
    description: str
    created_at: float
    session_duration: str = "PT1H"
    relay_state: str = ""

    def describe(self) -> dict[str, object]:
        """The ``PermissionSet`` shape of DescribePermissionSet."""
        shape: dict[str, object] = {
            "Name": self.name, "PermissionSetArn": self.arn, "CreatedDate": self.created_at,
            "SessionDuration": self.session_duration,
        }
        if self.description:
            shape["Description"] = self.description
        if self.relay_state:
            shape["RelayState"] = self.relay_state
        return shape


@dataclass
class Operation:
    """One CreateAccountAssignment or DeleteAccountAssignment request and its fate."""

    kind: str
    key: AssignmentKey
    created_at: float
    settles_at: float | None  # None while stalled
    forced_failure: str | None = None
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: str = IN_PROGRESS
    failure_reason: str | None = None

    def describe(self) -> dict[str, object]:
        """The ``AccountAssignmentOperationStatus`` shape."""
        principal_type, principal_id, account_id, permission_set_arn = self.key
        shape: dict[str, object] = {
            "Status": self.status, "RequestId": self.request_id, "TargetId": account_id,
            "TargetType": "AWS_ACCOUNT", "PermissionSetArn": permission_set_arn,
            "PrincipalType": principal_type, "PrincipalId": principal_id,
            "CreatedDate": self.created_at,
        }
        if self.failure_reason:
            shape["FailureReason"] = self.failure_reason
        return shape

    def summary(self) -> dict[str, object]:
        """The ``AccountAssignmentOperationStatusMetadata`` shape of the List*Status calls."""
        return {"Status": self.status, "RequestId": self.request_id,
                "CreatedDate": self.created_at}


@dataclass
class Provisioning:
    """One ProvisionPermissionSet request (minimal: it always succeeds once settled)."""

    permission_set_arn: str
    account_id: str | None
    created_at: float
    settles_at: float
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def describe(self, now: float) -> dict[str, object]:
        shape: dict[str, object] = {
            "Status": SUCCEEDED if now >= self.settles_at else IN_PROGRESS,
            "RequestId": self.request_id, "PermissionSetArn": self.permission_set_arn,
            "CreatedDate": self.created_at,
        }
        if self.account_id:
            shape["AccountId"] = self.account_id
        return shape


def failure_reason(
    operation: Operation, *, assignments: set[AssignmentKey], permission_set_arns: set[str],
    directory: Directory, identity_store_id: str, instance_arn: str,
) -> str | None:
    """Why ``operation`` ends FAILED when it settles, worded like AWS; None if it succeeds."""
    principal_type, principal_id, account_id, permission_set_arn = operation.key
    if operation.kind == DELETE:
        if operation.key in assignments:
            return None
        # AWS answers a delete of a missing assignment with this 404, not with SUCCEEDED.
        return ("Received a 404 status error: EntitlementItem doesn't exist with the given "
                f"entitlement key EntitlementKey{{accessorId=AccessorId{{value={principal_id}}}, "
                f"resourceId=ResourceId{{value={account_id}}}, auxiliaryResourceId="
                f"AuxiliaryResourceId{{value={permission_set_arn}}}, containerId="
                f"ContainerId{{value={instance_arn}}}}}")
    if permission_set_arn not in permission_set_arns:
        return (f"Received a 404 status error: PermissionSet {permission_set_arn} "
                f"was not found in instance {instance_arn}")
    if not directory.account_exists(account_id):
        return (f"Received a 404 status error: the target account {account_id} "
                "was not found in the organization")
    if not directory.principal_exists(principal_type, principal_id):
        return (f"Received a 404 status error: the {principal_type} assignee {principal_id} "
                f"was not found in directory {identity_store_id}")
    return None


class IdentityCenter:
    """One Identity Center instance: permission sets, assignments and their operations.

    Every public method takes the lock and first settles what is due, so callers always
    see the state as of now.
    """

    def __init__(
        self, *, directory: Directory, instance_id: str, identity_store_id: str,
        settle_delay: float = 0.0, max_outstanding_creates: int = 15,
        faults: Faults | None = None, clock: Callable[[], float] = time.time,
        settle_jitter: float = 0.0,
    ) -> None:
        self.directory = directory
        self.instance_id = instance_id
        self.instance_arn = f"arn:aws:sso:::instance/{instance_id}"
        self.identity_store_id = identity_store_id
        self.settle_delay, self.settle_jitter = settle_delay, settle_jitter
        self.max_outstanding_creates = max_outstanding_creates
        self.faults = faults or Faults()
        self.created_at = clock()
        self._clock = clock
        self._lock = threading.RLock()
        self._stalled = False
        self._permission_sets: dict[str, PermissionSet] = {}
        self._assignments: set[AssignmentKey] = set()
        self._provisioned: set[tuple[str, str]] = set()  # (account_id, permission_set_arn)
        self._operations: dict[str, Operation] = {}
        self._pending: list[Operation] = []
        self._provisionings: dict[str, Provisioning] = {}

    # -- permission sets ------------------------------------------------------------------

    def create_permission_set(self, *, name: str, description: str = "",
                              session_duration: str = "PT1H",
                              relay_state: str = "") -> PermissionSet:
        """A new permission set; ConflictException if the name is taken."""
        with self._lock:
            if any(ps.name == name for ps in self._permission_sets.values()):
                raise ServiceFault("ConflictException",
                                   f"PermissionSet with name {name} already exists.")
            arn = f"arn:aws:sso:::permissionSet/{self.instance_id}/ps-{secrets.token_hex(8)}"
            permission_set = PermissionSet(arn, name, description, self._clock(),
                                           session_duration, relay_state)
            self._permission_sets[arn] = permission_set
            return permission_set

    def permission_set(self, arn: str) -> PermissionSet:
        with self._lock:
            if arn not in self._permission_sets:
                raise ServiceFault("ResourceNotFoundException",
                                   f"Could not find PermissionSet with arn {arn}")
            return self._permission_sets[arn]

    def permission_set_arns(self) -> list[str]:
        with self._lock:
            return list(self._permission_sets)

    # -- assignment operations ------------------------------------------------------------

    def submit(self, kind: str, key: AssignmentKey) -> Operation:
        """Accept a create or delete: IN_PROGRESS now, settled later."""
        with self._lock:
            self._settle()
            self._refuse_conflict(kind, key)
            if kind == CREATE and self._outstanding_creates() >= self.max_outstanding_creates:
                raise ServiceFault("ThrottlingException", TOO_MANY_OUTSTANDING)
            now = self._clock()
            operation = Operation(
                kind, key, now, None if self._stalled else now + self._settle_time(),
                forced_failure=self.faults.take_forced_failure(),
            )
            self._operations[operation.request_id] = operation
            self._pending.append(operation)
            self._settle()  # a zero settle delay settles at once
            return operation

    def _settle_time(self) -> float:
        """Seconds from submit to settled: ``settle_delay`` + uniform(0, ``settle_jitter``)."""
        return self.settle_delay + random.uniform(0.0, self.settle_jitter)

    def _refuse_conflict(self, kind: str, key: AssignmentKey) -> None:
        if any(op.key == key and op.kind != kind for op in self._pending):
            raise ServiceFault(
                "ConflictException",
                "Operation is in conflict with an in-progress operation on the same "
                "account assignment. Retry after it completes.",
            )

    def _outstanding_creates(self) -> int:
        return sum(1 for op in self._pending if op.kind == CREATE)

    def operation(self, kind: str, request_id: str) -> Operation:
        """The operation with this request id; ResourceNotFoundException if unknown."""
        with self._lock:
            self._settle()
            operation = self._operations.get(request_id)
            if operation is None or operation.kind != kind:
                raise ServiceFault("ResourceNotFoundException",
                                   f"Could not find request with id {request_id}")
            return operation

    def operations(self, kind: str, *, status: str | None = None) -> list[Operation]:
        with self._lock:
            self._settle()
            return [op for op in self._operations.values()
                    if op.kind == kind and (status is None or op.status == status)]

    # -- reading assignments --------------------------------------------------------------

    def assignments_on(self, account_id: str, permission_set_arn: str) -> list[AssignmentKey]:
        """Who holds ``permission_set_arn`` on ``account_id``, in a stable order."""
        with self._lock:
            self.permission_set(permission_set_arn)
            self._settle()
            return sorted(k for k in self._assignments
                          if k[2] == account_id and k[3] == permission_set_arn)

    def assignments_of(self, principal_type: str, principal_id: str,
                       account_id: str | None = None) -> list[AssignmentKey]:
        """What one principal holds, optionally on one account only."""
        with self._lock:
            self._settle()
            return sorted(k for k in self._assignments
                          if k[:2] == (principal_type, principal_id)
                          and account_id in (None, k[2]))

    def snapshot(self) -> set[AssignmentKey]:
        """Every assignment as of now (the ground truth tests compare against)."""
        with self._lock:
            self._settle()
            return set(self._assignments)

    # -- provisioning ---------------------------------------------------------------------

    def provisioned_to(self, account_id: str) -> list[str]:
        with self._lock:
            self._settle()
            return sorted(arn for acct, arn in self._provisioned if acct == account_id)

    def accounts_provisioned_with(self, permission_set_arn: str) -> list[str]:
        with self._lock:
            self.permission_set(permission_set_arn)
            self._settle()
            return sorted(acct for acct, arn in self._provisioned if arn == permission_set_arn)

    def provision(self, permission_set_arn: str, account_id: str | None) -> Provisioning:
        """ProvisionPermissionSet to one account, or re-provision everywhere (None)."""
        with self._lock:
            self.permission_set(permission_set_arn)
            now = self._clock()
            if account_id is not None:
                self._provisioned.add((account_id, permission_set_arn))
            record = Provisioning(permission_set_arn, account_id, now, now + self.settle_delay)
            self._provisionings[record.request_id] = record
            return record

    def provisioning(self, request_id: str) -> dict[str, object]:
        with self._lock:
            if request_id not in self._provisionings:
                raise ServiceFault("ResourceNotFoundException",
                                   f"Could not find request with id {request_id}")
            return self._provisionings[request_id].describe(self._clock())

    # -- seeding and faults ---------------------------------------------------------------

    def seed_assignment(self, key: AssignmentKey) -> None:
        """An assignment that already exists (as if created and SUCCEEDED long ago)."""
        with self._lock:
            self.permission_set(key[3])
            self._assignments.add(key)
            self._provisioned.add((key[2], key[3]))

    def drop_assignment(self, key: AssignmentKey) -> None:
        """An assignment removed out of band (console, another tool): drift, no operation."""
        with self._lock:
            self._assignments.discard(key)

    @property
    def stalled(self) -> bool:
        return self._stalled

    def set_stalled(self, stalled: bool) -> None:
        """Freeze every unsettled operation IN_PROGRESS, or let them settle again."""
        with self._lock:
            self._settle()
            self._stalled = stalled
            now = self._clock()
            for op in self._pending:
                if stalled:
                    op.settles_at = None
                elif op.settles_at is None:
                    op.settles_at = now + self._settle_time()

    # -- settling -------------------------------------------------------------------------

    def _settle(self) -> None:
        now = self._clock()
        due = sorted((op for op in self._pending
                      if op.settles_at is not None and op.settles_at <= now),
                     key=lambda op: op.settles_at or 0.0)
        for operation in due:
            self._finish(operation)
        if due:
            self._pending = [op for op in self._pending if op.status == IN_PROGRESS]

    def _finish(self, operation: Operation) -> None:
        reason = operation.forced_failure or failure_reason(
            operation, assignments=self._assignments,
            permission_set_arns=set(self._permission_sets), directory=self.directory,
            identity_store_id=self.identity_store_id, instance_arn=self.instance_arn,
        )
        if reason:
            operation.status, operation.failure_reason = FAILED, reason
            return
        operation.status = SUCCEEDED
        if operation.kind == CREATE:
            self._assignments.add(operation.key)
            self._provisioned.add((operation.key[2], operation.key[3]))
        else:
            self._assignments.discard(operation.key)

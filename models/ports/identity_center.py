"""What grantledger needs from AWS IAM Identity Center, as an interface with typed records.

``BotoIdentityCenter`` (workers/adapters/aws/boto_adapter.py) implements it over boto3;
the same class talks to real AWS, to moto and to our sandbox, chosen only by endpoint. Code takes an
``IdentityCenter`` as an argument: it is injected, never patched.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from models.domain import AssignmentKey

__all__ = [
    "AWS_CALLS_METRIC", "FAILED", "IN_PROGRESS", "SUCCEEDED", "AccountRecord", "AssignmentKey",
    "AssignmentRecord",
    "GroupRecord", "IdentityCenter", "InstanceInfo", "OperationStatus", "PermissionSetRecord",
    "StatusListing", "UserRecord",
]

# The call wrapper's counter of AWS requests sent (Prometheus name, without ``_total``).
AWS_CALLS_METRIC = "grantledger_aws_calls"

# AWS's statuses of an asynchronous assignment operation.
IN_PROGRESS, SUCCEEDED, FAILED = "IN_PROGRESS", "SUCCEEDED", "FAILED"


@dataclass(frozen=True)
class InstanceInfo:
    instance_arn: str
    identity_store_id: str


@dataclass(frozen=True)
class AccountRecord:
    id: str
    name: str
    status: str
    ou_path: str | None = None  # "/Root/Workloads/Prod"; None when not asked for


@dataclass(frozen=True)
class PermissionSetRecord:
    arn: str
    name: str
    description: str | None = None


@dataclass(frozen=True)
class UserRecord:
    user_id: str
    user_name: str
    display_name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    email: str | None = None
    external_id: str | None = None


@dataclass(frozen=True)
class GroupRecord:
    group_id: str
    display_name: str
    description: str | None = None


@dataclass(frozen=True)
class AssignmentRecord:
    principal_type: str
    principal_id: str
    account_id: str
    permission_set_arn: str

    @property
    def key(self) -> AssignmentKey:
        return AssignmentKey(self.principal_type, self.principal_id, self.account_id,
                             self.permission_set_arn)


@dataclass(frozen=True)
class OperationStatus:
    """State of an asynchronous create/delete: IN_PROGRESS, SUCCEEDED or FAILED."""

    request_id: str
    status: str
    failure_reason: str | None = None

    @property
    def settled(self) -> bool:
        return self.status in (SUCCEEDED, FAILED)


@dataclass(frozen=True)
class StatusListing:
    """The request ids of one List*Status answer (``Filter.Status``), and whether they are
    all of them (False: the listing stopped at its page budget)."""

    request_ids: frozenset[str]
    complete: bool


class IdentityCenter(ABC):
    """Identity Center as grantledger sees it. Every list returns all pages."""

    @abstractmethod
    def discover(self) -> InstanceInfo:
        """The instance ARN and identity store id (from settings, else ListInstances)."""

    @abstractmethod
    def list_accounts(self, *, with_ou_path: bool = False) -> list[AccountRecord]:
        """Accounts of the Organization; ``with_ou_path`` walks the OU tree too."""

    @abstractmethod
    def list_permission_sets(self) -> list[PermissionSetRecord]:
        """Every permission set of the instance, described."""

    @abstractmethod
    def list_users(self) -> list[UserRecord]:
        """Every user of the identity store."""

    @abstractmethod
    def list_groups(self) -> list[GroupRecord]:
        """Every group of the identity store."""

    @abstractmethod
    def list_group_memberships(self, group_id: str) -> list[str]:
        """User ids of the members of one group."""

    @abstractmethod
    def list_assignments(self, *, account_id: str,
                         permission_set_arn: str) -> list[AssignmentRecord]:
        """Who holds ``permission_set_arn`` on ``account_id``."""

    @abstractmethod
    def list_provisioned_permission_sets(self, account_id: str) -> list[str]:
        """ARNs of the permission sets provisioned to an account."""

    @abstractmethod
    def list_accounts_for_permission_set(self, permission_set_arn: str) -> list[str]:
        """Ids of the accounts a permission set is provisioned to."""

    @abstractmethod
    def list_assignments_for_principal(
        self, *, principal_type: str, principal_id: str, account_id: str | None = None,
    ) -> list[AssignmentRecord]:
        """Everything one user or group holds, optionally on one account."""

    @abstractmethod
    def create_assignment(self, key: AssignmentKey) -> OperationStatus:
        """Submit a create; the result comes later from :meth:`creation_status`."""

    @abstractmethod
    def delete_assignment(self, key: AssignmentKey) -> OperationStatus:
        """Submit a delete; the result comes later from :meth:`deletion_status`."""

    @abstractmethod
    def creation_status(self, request_id: str) -> OperationStatus:
        """Where a create submitted earlier stands."""

    @abstractmethod
    def deletion_status(self, request_id: str) -> OperationStatus:
        """Where a delete submitted earlier stands."""

    @abstractmethod
    def operation_statuses(self, kind: str, status: str, *,
                           max_pages: int | None = None) -> StatusListing:
        """Request ids of the creates (``kind="create"``) or deletes (``"delete"``) of the
        instance in ``status``, up to 100 a call; at most ``max_pages`` calls."""

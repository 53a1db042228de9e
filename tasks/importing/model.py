"""The shapes the import passes between its steps: what AWS has, what the ledger knows, and
the plan that turns the first into changes of the second. Plain frozen dataclasses, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from models.domain import Account, PermissionSet, PrincipalType
from models.ledger.enums import SourceKind
from models.ports.identity_center import (
    AccountRecord,
    AssignmentRecord,
    GroupRecord,
    PermissionSetRecord,
    UserRecord,
)

ENROLMENT_SOURCE = "enrolment"  # source_id of grants for direct user assignments found at enrolment
# Accounts that can hold access; SUSPENDED / PENDING_CLOSURE ones are closing (or closed).
USABLE_ACCOUNT_STATES = frozenset({"ACTIVE", ""})


# --- fetched: what Identity Center holds ----------------------------------------------------


@dataclass(frozen=True)
class Inventory:
    """Everything one import read from AWS (deduplicated, every page)."""

    instance_arn: str
    accounts: tuple[AccountRecord, ...] = ()
    permission_sets: tuple[PermissionSetRecord, ...] = ()
    users: tuple[UserRecord, ...] = ()
    groups: tuple[GroupRecord, ...] = ()
    members: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # group id -> user ids
    assignments: tuple[AssignmentRecord, ...] = ()


# --- known: what the ledger holds before the import -----------------------------------------


@dataclass(frozen=True)
class KnownAccount:
    name: str
    ou_path: str
    present: bool


@dataclass(frozen=True)
class KnownPermissionSet:
    name: str
    description: str
    present: bool


@dataclass(frozen=True)
class LedgerView:
    """The part of the ledger an import decides with, read in the import's transaction."""

    enrolled: bool = False
    default_owners: tuple[str, ...] = ()  # chosen at enrolment, reused for adopted groups
    accounts: Mapping[str, KnownAccount] = field(default_factory=dict)
    permission_sets: Mapping[str, KnownPermissionSet] = field(default_factory=dict)
    users: Mapping[str, str | None] = field(default_factory=dict)  # name -> principal id
    lists: Mapping[str, str | None] = field(default_factory=dict)  # name -> group id
    # role name -> (account id, permission set ARN) for system roles, None for other roles
    roles: Mapping[str, tuple[str, str] | None] = field(default_factory=dict)
    imported_groups: frozenset[str] = frozenset()  # every group id an import ever adopted
    reported_drift: frozenset[str] = frozenset()  # group ids already reported as drift


# --- planned: what the import will write ----------------------------------------------------


@dataclass(frozen=True)
class ImportedUser:
    name: str
    principal_id: str
    email: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    link_only: bool = False  # a ledger user of that name exists: only record its principal id


@dataclass(frozen=True)
class SystemRoleRow:
    """A system role as the ledger stores it; ``renamed_from`` when its name changed."""

    name: str
    account_id: str
    permission_set_arn: str
    spec: dict[str, object]
    spec_hash: str
    renamed_from: str | None = None


@dataclass(frozen=True)
class ImportedList:
    name: str
    title: str
    description: str
    group_id: str
    owners: tuple[str, ...]
    members: tuple[str, ...]  # ledger user names
    granted_roles: tuple[str, ...]


@dataclass(frozen=True)
class ImportedGrant:
    principal_type: PrincipalType
    principal_name: str
    principal_id: str
    account_id: str
    permission_set_arn: str
    source_kind: SourceKind
    source_id: str


@dataclass(frozen=True)
class ImportPlan:
    """Every change one import makes, decided before the first write."""

    accounts: tuple[Account, ...] = ()  # present in the Organization now
    permission_sets: tuple[PermissionSet, ...] = ()
    new_accounts: tuple[str, ...] = ()  # ids unknown (or absent) before
    new_permission_sets: tuple[str, ...] = ()  # ARNs
    vanished_accounts: tuple[str, ...] = ()  # ids the ledger had present, AWS no longer has
    vanished_permission_sets: tuple[str, ...] = ()  # ARNs
    users: tuple[ImportedUser, ...] = ()
    system_roles: tuple[SystemRoleRow, ...] = ()
    access_lists: tuple[ImportedList, ...] = ()
    grants: tuple[ImportedGrant, ...] = ()
    drift_groups: tuple[GroupRecord, ...] = ()  # in Identity Center, neither ours nor imported
    vanished_groups: tuple[str, ...] = ()  # access lists whose group is gone from AWS
    skipped: tuple[str, ...] = ()  # what could not be imported, and why (one line each)

    @property
    def renamed_roles(self) -> dict[str, str]:
        """Old name -> new name of the system roles this import renames."""
        return {row.renamed_from: row.name for row in self.system_roles if row.renamed_from}

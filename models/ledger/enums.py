"""The ledger's own vocabularies (stored as their values, checked by the database).

``PrincipalType``, ``MemberKind`` and ``RequestState`` belong to the domain model
(``models.domain``) and are reused from there.
"""

from __future__ import annotations

from enum import StrEnum


class GrantState(StrEnum):
    PENDING = "PENDING"            # recorded, no AWS call yet
    PROVISIONING = "PROVISIONING"  # create submitted
    ACTIVE = "ACTIVE"              # AWS confirmed the assignment
    REVOKING = "REVOKING"          # delete submitted (or skipped: another grant backs it)
    REVOKED = "REVOKED"            # gone; the row stays as history
    FAILED = "FAILED"              # the last create or delete failed; see failed_from


class OperationState(StrEnum):
    QUEUED = "QUEUED"        # recorded before the call
    SUBMITTED = "SUBMITTED"  # AWS accepted it; request_id kept, status is polled
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class SourceKind(StrEnum):
    """Why a grant exists."""

    ACCESS_LIST = "access_list"  # membership of an access list (source_id = list name)
    ROLE = "role"                # a role the user holds directly (source_id = role name)
    REQUEST = "request"          # an approved access request (source_id = request id)
    IMPORTED = "imported"        # found in AWS at enrolment (source_id says from where)


class OperationKind(StrEnum):
    """What one operation asks of AWS. Stored as plain text: a new kind needs no migration."""

    CREATE_ASSIGNMENT = "create_assignment"
    DELETE_ASSIGNMENT = "delete_assignment"
    SCIM_USER_CREATE = "scim_user_create"
    SCIM_USER_UPDATE = "scim_user_update"
    SCIM_USER_DELETE = "scim_user_delete"
    SCIM_GROUP_CREATE = "scim_group_create"
    SCIM_GROUP_UPDATE = "scim_group_update"
    SCIM_GROUP_DELETE = "scim_group_delete"


class Origin(StrEnum):
    """Who owns a row: a YAML resource, an enrolment import, or grantledger itself."""

    RESOURCE = "resource"
    IMPORTED = "imported"
    SYSTEM = "system"


class ReviewDecision(StrEnum):
    APPROVE = "approve"
    DENY = "deny"

"""``IdentityCenter`` over boto3: real AWS, moto or the sandbox, chosen by endpoint only.

Each method is fetch (one wrapper call per AWS page) + transform (the pure ``*_record``
functions below, which turn AWS shapes into our records). ARNs and ids stay opaque.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from models.errors import AwsNotFound, ConfigError
from models.ports.identity_center import (
    IN_PROGRESS,
    AccountRecord,
    AssignmentKey,
    AssignmentRecord,
    GroupRecord,
    IdentityCenter,
    InstanceInfo,
    OperationStatus,
    PermissionSetRecord,
    StatusListing,
    UserRecord,
)
from workers.adapters.aws.call import Backoff, RateGate, call, pages, paginate
from workers.adapters.aws.clients import AwsClients
from workers.settings import Settings


class BotoIdentityCenter(IdentityCenter):
    """Identity Center through the call wrapper, the global limiter in every call."""

    def __init__(self, clients: AwsClients, *, settings: Settings,
                 limiter: RateGate | None) -> None:
        self._clients = clients
        self._settings = settings
        self._limiter = limiter
        self._backoff = Backoff.from_settings(settings)
        self._instance: InstanceInfo | None = None

    # -- discovery and inventory ------------------------------------------------------------

    def discover(self) -> InstanceInfo:
        if self._instance is None:
            arn, store = self._settings.instance_arn, self._settings.identity_store_id
            if arn and store:
                self._instance = InstanceInfo(arn, store)
            else:
                instances = self._paginate(self._clients.sso_admin, "ListInstances",
                                           result_key="Instances",
                                           key=lambda row: row["InstanceArn"])
                self._instance = pick_instance(instances, instance_arn=arn)
        return self._instance

    def list_accounts(self, *, with_ou_path: bool = False) -> list[AccountRecord]:
        rows = self._paginate(self._clients.organizations, "ListAccounts",
                              result_key="Accounts", key=lambda row: row["Id"])
        paths = self._ou_paths() if with_ou_path else {}
        return [account_record(row, ou_path=paths.get(row["Id"])) for row in rows]

    def list_permission_sets(self) -> list[PermissionSetRecord]:
        instance_arn = self.discover().instance_arn
        arns = self._paginate(self._clients.sso_admin, "ListPermissionSets",
                              result_key="PermissionSets", InstanceArn=instance_arn)
        return [permission_set_record(self._call(
            self._clients.sso_admin, "DescribePermissionSet",
            InstanceArn=instance_arn, PermissionSetArn=arn)["PermissionSet"]) for arn in arns]

    def list_users(self) -> list[UserRecord]:
        rows = self._paginate(self._clients.identitystore, "ListUsers", result_key="Users",
                              key=lambda row: row["UserId"],
                              IdentityStoreId=self.discover().identity_store_id)
        return [user_record(row) for row in rows]

    def list_groups(self) -> list[GroupRecord]:
        rows = self._paginate(self._clients.identitystore, "ListGroups", result_key="Groups",
                              key=lambda row: row["GroupId"],
                              IdentityStoreId=self.discover().identity_store_id)
        return [group_record(row) for row in rows]

    def list_group_memberships(self, group_id: str) -> list[str]:
        rows = self._paginate(self._clients.identitystore, "ListGroupMemberships",
                              result_key="GroupMemberships", key=member_user_id,
                              IdentityStoreId=self.discover().identity_store_id,
                              GroupId=group_id)
        return [user_id for user_id in map(member_user_id, rows) if user_id]

    # -- assignments --------------------------------------------------------------------------

    def list_assignments(self, *, account_id: str,
                         permission_set_arn: str) -> list[AssignmentRecord]:
        rows = self._paginate(self._clients.sso_admin, "ListAccountAssignments",
                              result_key="AccountAssignments", key=assignment_identity,
                              InstanceArn=self.discover().instance_arn,
                              AccountId=account_id, PermissionSetArn=permission_set_arn)
        return [assignment_record(row) for row in rows]

    def list_provisioned_permission_sets(self, account_id: str) -> list[str]:
        return self._paginate(self._clients.sso_admin, "ListPermissionSetsProvisionedToAccount",
                              result_key="PermissionSets",
                              InstanceArn=self.discover().instance_arn, AccountId=account_id)

    def list_accounts_for_permission_set(self, permission_set_arn: str) -> list[str]:
        return self._paginate(self._clients.sso_admin,
                              "ListAccountsForProvisionedPermissionSet", result_key="AccountIds",
                              InstanceArn=self.discover().instance_arn,
                              PermissionSetArn=permission_set_arn)

    def list_assignments_for_principal(
        self, *, principal_type: str, principal_id: str, account_id: str | None = None,
    ) -> list[AssignmentRecord]:
        account_filter = {"Filter": {"AccountId": account_id}} if account_id else {}
        rows = self._paginate(self._clients.sso_admin, "ListAccountAssignmentsForPrincipal",
                              result_key="AccountAssignments", key=assignment_identity,
                              InstanceArn=self.discover().instance_arn,
                              PrincipalType=principal_type, PrincipalId=principal_id,
                              **account_filter)
        return [assignment_record(row) for row in rows]

    def create_assignment(self, key: AssignmentKey) -> OperationStatus:
        answer = self._call(self._clients.sso_admin, "CreateAccountAssignment",
                            **self._assignment_params(key))
        return operation_status(answer["AccountAssignmentCreationStatus"])

    def delete_assignment(self, key: AssignmentKey) -> OperationStatus:
        answer = self._call(self._clients.sso_admin, "DeleteAccountAssignment",
                            **self._assignment_params(key))
        return operation_status(answer["AccountAssignmentDeletionStatus"])

    def creation_status(self, request_id: str) -> OperationStatus:
        answer = self._call(self._clients.sso_admin, "DescribeAccountAssignmentCreationStatus",
                            InstanceArn=self.discover().instance_arn,
                            AccountAssignmentCreationRequestId=request_id)
        return operation_status(answer["AccountAssignmentCreationStatus"])

    def deletion_status(self, request_id: str) -> OperationStatus:
        answer = self._call(self._clients.sso_admin, "DescribeAccountAssignmentDeletionStatus",
                            InstanceArn=self.discover().instance_arn,
                            AccountAssignmentDeletionRequestId=request_id)
        return operation_status(answer["AccountAssignmentDeletionStatus"])

    def operation_statuses(self, kind: str, status: str, *,
                           max_pages: int | None = None) -> StatusListing:
        params = {"InstanceArn": self.discover().instance_arn, "Filter": {"Status": status},
                  "MaxResults": 100}
        sso, gate, backoff = self._clients.sso_admin, self._limiter, self._backoff
        if kind == "create":
            listing = pages(sso, "ListAccountAssignmentCreationStatus", limiter=gate,
                            backoff=backoff, **params)
            result_key = "AccountAssignmentsCreationStatus"
        else:
            listing = pages(sso, "ListAccountAssignmentDeletionStatus", limiter=gate,
                            backoff=backoff, **params)
            result_key = "AccountAssignmentsDeletionStatus"
        ids: set[str] = set()
        for count, page in enumerate(listing, start=1):
            ids.update(row["RequestId"] for row in page.get(result_key, []))
            if max_pages is not None and count >= max_pages and page.get("NextToken"):
                return StatusListing(frozenset(ids), complete=False)
        return StatusListing(frozenset(ids), complete=True)

    # -- plumbing -----------------------------------------------------------------------------

    def _assignment_params(self, key: AssignmentKey) -> dict[str, str]:
        return {"InstanceArn": self.discover().instance_arn, "TargetId": key.account_id,
                "TargetType": "AWS_ACCOUNT", "PermissionSetArn": key.permission_set_arn,
                "PrincipalType": str(key.principal_type), "PrincipalId": key.principal_id}

    def _ou_paths(self) -> dict[str, str]:
        """Account id -> "/Root/OU/..." by walking the OU tree: two listings per OU,
        instead of one ListParents chain per account."""
        org = self._clients.organizations
        pending = [(root["Id"], "/" + root["Name"]) for root in
                   self._paginate(org, "ListRoots", result_key="Roots", key=_by_id)]
        paths: dict[str, str] = {}
        while pending:
            parent_id, path = pending.pop()
            for account in self._paginate(org, "ListAccountsForParent", result_key="Accounts",
                                          key=_by_id, ParentId=parent_id):
                paths[account["Id"]] = path
            pending += [(ou["Id"], f"{path}/{ou['Name']}") for ou in self._paginate(
                org, "ListOrganizationalUnitsForParent", result_key="OrganizationalUnits",
                key=_by_id, ParentId=parent_id)]
        return paths

    def _call(self, client: Any, api: str, **params: Any) -> dict[str, Any]:
        return call(client, api, limiter=self._limiter, backoff=self._backoff, **params)

    def _paginate(self, client: Any, api: str, *, result_key: str,
                  key: Callable[[Any], Hashable] | None = None, **params: Any) -> list[Any]:
        return paginate(client, api, result_key=result_key, key=key, limiter=self._limiter,
                        backoff=self._backoff, **params)


# -- transforms: AWS shapes -> our records (pure) ---------------------------------------------

def pick_instance(instances: list[dict[str, Any]], *, instance_arn: str | None) -> InstanceInfo:
    """The one instance to use: the configured ARN, else the only instance there is."""
    matches = [row for row in instances
               if instance_arn is None or row["InstanceArn"] == instance_arn]
    if not matches:
        wanted = instance_arn or "any Identity Center instance"
        raise AwsNotFound(f"ListInstances found no {wanted} ({len(instances)} instance(s) seen)",
                          api="ListInstances")
    if len(matches) > 1:
        arns = ", ".join(row["InstanceArn"] for row in matches)
        raise ConfigError(f"{len(matches)} Identity Center instances found: {arns}",
                          hint="set GRANTLEDGER_INSTANCE_ARN to the one grantledger manages")
    return InstanceInfo(matches[0]["InstanceArn"], matches[0]["IdentityStoreId"])


def account_record(row: dict[str, Any], *, ou_path: str | None = None) -> AccountRecord:
    # Organizations is replacing Status with State; accept either.
    status = row.get("State") or row.get("Status") or ""
    return AccountRecord(id=row["Id"], name=row.get("Name", ""), status=status, ou_path=ou_path)


def permission_set_record(row: dict[str, Any]) -> PermissionSetRecord:
    return PermissionSetRecord(arn=row["PermissionSetArn"], name=row["Name"],
                               description=row.get("Description"))


def user_record(row: dict[str, Any]) -> UserRecord:
    name = row.get("Name") or {}
    emails = row.get("Emails") or []
    primary = next((e for e in emails if e.get("Primary")), emails[0] if emails else {})
    external_ids = row.get("ExternalIds") or []
    return UserRecord(
        user_id=row["UserId"], user_name=row.get("UserName", ""),
        display_name=row.get("DisplayName"), given_name=name.get("GivenName"),
        family_name=name.get("FamilyName"), email=primary.get("Value"),
        external_id=external_ids[0].get("Id") if external_ids else None,
    )


def group_record(row: dict[str, Any]) -> GroupRecord:
    return GroupRecord(group_id=row["GroupId"], display_name=row.get("DisplayName", ""),
                       description=row.get("Description"))


def member_user_id(row: dict[str, Any]) -> str | None:
    """The user id of a group membership row (members can only be users today)."""
    return (row.get("MemberId") or {}).get("UserId")


def assignment_identity(row: dict[str, Any]) -> tuple[str, str, str, str]:
    return (row["PrincipalType"], row["PrincipalId"], row["AccountId"], row["PermissionSetArn"])


def assignment_record(row: dict[str, Any]) -> AssignmentRecord:
    return AssignmentRecord(*assignment_identity(row))


def operation_status(row: dict[str, Any]) -> OperationStatus:
    return OperationStatus(request_id=row["RequestId"], status=row.get("Status", IN_PROGRESS),
                           failure_reason=row.get("FailureReason"))


def _by_id(row: dict[str, Any]) -> str:
    return row["Id"]

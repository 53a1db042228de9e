"""The IAM policy grantledger needs, and the table from boto API name to IAM action.

One source for two uses: ``grantledger iam-policy`` prints :func:`iam_policy`, and the call
wrapper names the missing action when AWS answers AccessDenied (:func:`iam_action`).
A test walks the adapter's source and checks every API it calls is listed in ``USED_APIS``.
"""

from __future__ import annotations

from typing import Any

# IAM action prefix of each boto service. sso-admin is the only one whose prefix differs.
IAM_PREFIX = {
    "sso-admin": "sso",
    "identitystore": "identitystore",
    "organizations": "organizations",
    "iam": "iam",
    "sts": "sts",
}

# Every AWS API the code calls, by boto service name.
USED_APIS: dict[str, tuple[str, ...]] = {
    "sso-admin": (
        "ListInstances",
        "ListPermissionSets",
        "DescribePermissionSet",
        "ListAccountAssignments",
        "ListAccountAssignmentsForPrincipal",
        "ListPermissionSetsProvisionedToAccount",
        "ListAccountsForProvisionedPermissionSet",
        "CreateAccountAssignment",
        "DescribeAccountAssignmentCreationStatus",
        "ListAccountAssignmentCreationStatus",
        "DeleteAccountAssignment",
        "DescribeAccountAssignmentDeletionStatus",
        "ListAccountAssignmentDeletionStatus",
    ),
    "identitystore": ("ListUsers", "ListGroups", "ListGroupMemberships"),
    "organizations": (
        "ListAccounts",
        "ListRoots",
        "ListOrganizationalUnitsForParent",
        "ListAccountsForParent",
    ),
}

# Not called by this code, but part of the documented integration's policy:
# - the iam:* actions are checked by AWS on our behalf: CreateAccountAssignment provisions the
#   permission set into the account as an IAM role (and uses the SAML provider of the
#   management account); ListRoles shows provisioned roles;
# - sso:DescribeInstance is for install checks (`grantledger doctor`); discovery uses
#   ListInstances, which also returns the identity store id.
DEPENDENT_ACTIONS: tuple[str, ...] = (
    "sso:DescribeInstance",
    "iam:AttachRolePolicy",
    "iam:CreateRole",
    "iam:GetRole",
    "iam:ListAttachedRolePolicies",
    "iam:ListRolePolicies",
    "iam:GetSAMLProvider",
    "iam:ListRoles",
)


def iam_action(service: str, api: str) -> str:
    """The IAM action that authorises ``api`` of boto service ``service``."""
    return f"{IAM_PREFIX.get(service, service)}:{api}"


def api_actions() -> dict[str, str]:
    """Every API the code calls -> the IAM action it needs (API names are unique across
    the services we use; an import-time check keeps it so)."""
    return {api: iam_action(service, api) for service, apis in USED_APIS.items() for api in apis}


def iam_policy() -> dict[str, Any]:
    """The IAM policy document (JSON-ready) for the role grantledger runs as."""
    called = sorted(set(api_actions().values()))
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "GrantledgerCalls", "Effect": "Allow", "Action": called,
             "Resource": "*"},
            {"Sid": "IdentityCenterDependencies", "Effect": "Allow",
             "Action": sorted(DEPENDENT_ACTIONS), "Resource": "*"},
        ],
    }


def policy_actions(policy: dict[str, Any]) -> set[str]:
    """All actions a policy document allows (for tests and `grantledger doctor`)."""
    return {action for statement in policy["Statement"] if statement["Effect"] == "Allow"
            for action in statement["Action"]}


def _check_unique_api_names() -> None:
    names = [api for apis in USED_APIS.values() for api in apis]
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:  # api_actions() is keyed by API name alone
        raise RuntimeError(f"API names used by two services: {sorted(duplicates)}")


_check_unique_api_names()

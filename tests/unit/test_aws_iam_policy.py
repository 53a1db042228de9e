"""The IAM policy covers every AWS API the code calls (found by reading the source)."""

from __future__ import annotations

import ast
from pathlib import Path

from workers.adapters.aws.iam_policy import (
    USED_APIS,
    api_actions,
    iam_action,
    iam_policy,
    policy_actions,
)

AWS_PACKAGE = Path(__file__).resolve().parents[2] / "workers" / "adapters" / "aws"
WRAPPERS = {"call", "paginate", "pages", "_call", "_paginate"}

# The permission list of the Identity Center integration grantledger replaces
# (shared/seeds/000_c5d5e2025bb68551.txt): the policy must allow at least these.
DOCUMENTED_ACTIONS = {
    "organizations:ListAccounts", "organizations:ListAccountsForParent",
    "identitystore:ListUsers", "identitystore:ListGroups", "identitystore:ListGroupMemberships",
    "sso:DescribeInstance", "sso:DescribePermissionSet", "sso:ListPermissionSets",
    "sso:ListAccountAssignmentsForPrincipal", "sso:ListPermissionSetsProvisionedToAccount",
    "sso:CreateAccountAssignment", "sso:DescribeAccountAssignmentCreationStatus",
    "sso:DeleteAccountAssignment", "sso:DescribeAccountAssignmentDeletionStatus",
    "iam:AttachRolePolicy", "iam:CreateRole", "iam:GetRole", "iam:ListAttachedRolePolicies",
    "iam:ListRolePolicies", "iam:GetSAMLProvider", "iam:ListRoles",
}


def called_apis() -> set[str]:
    """API names passed as the second argument of call/paginate in workers/adapters/aws/*.py."""
    found = set()
    for source in AWS_PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if not isinstance(node, ast.Call) or len(node.args) < 2:
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            api = node.args[1]
            if name in WRAPPERS and isinstance(api, ast.Constant) and isinstance(api.value, str):
                found.add(api.value)
    return found


def test_source_walk_finds_the_adapter_calls():
    assert {"CreateAccountAssignment", "ListUsers", "ListAccounts"} <= called_apis()


def test_every_called_api_is_allowed_by_the_policy():
    allowed = policy_actions(iam_policy())
    mapping = api_actions()
    missing = sorted(api for api in called_apis() if mapping.get(api) not in allowed)
    assert missing == [], f"add these APIs to USED_APIS in iam_policy.py: {missing}"


def test_policy_lists_nothing_the_code_does_not_call():
    declared = {api for apis in USED_APIS.values() for api in apis}
    assert declared == called_apis()


def test_policy_includes_the_documented_integration_actions():
    assert DOCUMENTED_ACTIONS - policy_actions(iam_policy()) == set()


def test_sso_admin_actions_use_the_sso_prefix():
    assert iam_action("sso-admin", "ListInstances") == "sso:ListInstances"
    assert iam_action("identitystore", "ListUsers") == "identitystore:ListUsers"

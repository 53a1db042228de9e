"""The call wrapper against botocore's Stubber: retries, error classes, pagination quirks."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber
from prometheus_client import REGISTRY

from models.errors import (
    AwsAccessDenied,
    AwsConflict,
    AwsError,
    AwsNotFound,
    AwsThrottled,
)
from workers.adapters.aws.call import Backoff, call, paginate

FAST = Backoff(max_attempts=4, base=0.001, cap=0.005)
INSTANCE = "arn:aws:sso:::instance/ssoins-0000000000000000"
STORE = "d-0000000000"


def client(service: str):
    return boto3.client(service, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


REQ_1 = "11111111-1111-4111-8111-111111111111"
REQ_2 = "22222222-2222-4222-8222-222222222222"


def user_id(n: int) -> str:
    return f"90676d{n:04d}-0000-4000-8000-000000000000"


def creation_answer(request_id: str = REQ_1) -> dict:
    return {"AccountAssignmentCreationStatus": {"RequestId": request_id,
                                                "Status": "IN_PROGRESS"}}


def create_params() -> dict:
    return {"InstanceArn": INSTANCE, "TargetId": "111122223333", "TargetType": "AWS_ACCOUNT",
            "PermissionSetArn": INSTANCE + "/ps-1", "PrincipalType": "USER",
            "PrincipalId": "user-1"}


def test_throttling_is_retried_then_succeeds_and_counted():
    sso = client("sso-admin")
    before = metric("grantledger_aws_throttles_total", api="CreateAccountAssignment")
    with Stubber(sso) as stub:
        stub.add_client_error("create_account_assignment", "ThrottlingException", "Rate exceeded")
        stub.add_client_error("create_account_assignment", "ThrottlingException", "Rate exceeded")
        stub.add_response("create_account_assignment", creation_answer())
        answer = call(sso, "CreateAccountAssignment", backoff=FAST, **create_params())
        stub.assert_no_pending_responses()
    assert answer["AccountAssignmentCreationStatus"]["RequestId"] == REQ_1
    after = metric("grantledger_aws_throttles_total", api="CreateAccountAssignment")
    assert after - before == 2


def test_throttling_gives_up_after_max_attempts():
    orgs = client("organizations")
    with Stubber(orgs) as stub:
        for _ in range(FAST.max_attempts):
            stub.add_client_error("list_accounts", "TooManyRequestsException", "slow down")
        with pytest.raises(AwsThrottled, match="gave up after 4 attempts") as caught:
            call(orgs, "ListAccounts", backoff=FAST)
    assert caught.value.code == "TooManyRequestsException"


def test_conflict_is_retried():
    sso = client("sso-admin")
    with Stubber(sso) as stub:
        stub.add_client_error("create_account_assignment", "ConflictException", "in flight")
        stub.add_response("create_account_assignment", creation_answer(REQ_2))
        answer = call(sso, "CreateAccountAssignment", backoff=FAST, **create_params())
    assert answer["AccountAssignmentCreationStatus"]["RequestId"] == REQ_2


def test_conflict_that_persists_is_an_aws_conflict():
    sso = client("sso-admin")
    with Stubber(sso) as stub:
        for _ in range(FAST.max_attempts):
            stub.add_client_error("delete_account_assignment", "ConflictException", "busy")
        with pytest.raises(AwsConflict):
            call(sso, "DeleteAccountAssignment", backoff=FAST, **create_params())


@pytest.mark.parametrize(("service", "method", "api", "code", "action"), [
    ("sso-admin", "create_account_assignment", "CreateAccountAssignment",
     "AccessDeniedException", "sso:CreateAccountAssignment"),
    ("identitystore", "list_users", "ListUsers", "AccessDeniedException",
     "identitystore:ListUsers"),
    ("organizations", "list_accounts", "ListAccounts", "AccessDeniedException",
     "organizations:ListAccounts"),
    ("iam", "list_roles", "ListRoles", "AccessDenied", "iam:ListRoles"),
])
def test_access_denied_names_the_missing_iam_action(service, method, api, code, action):
    aws = client(service)
    params = {"sso-admin": create_params(), "identitystore": {"IdentityStoreId": STORE}}
    with Stubber(aws) as stub:
        stub.add_client_error(method, code, "User: arn:aws:sts::1:assumed-role/x is not "
                              "authorized", http_status_code=403)
        with pytest.raises(AwsAccessDenied) as caught:
            call(aws, api, backoff=FAST, **params.get(service, {}))
    assert caught.value.action == action
    assert action in str(caught.value) and action in caught.value.hint


def test_not_found_and_validation_keep_aws_message():
    sso = client("sso-admin")
    with Stubber(sso) as stub:
        stub.add_client_error("describe_permission_set", "ResourceNotFoundException",
                              "Could not find PermissionSet", http_status_code=400)
        stub.add_client_error("describe_permission_set", "ValidationException",
                              "1 validation error detected", http_status_code=400)
        with pytest.raises(AwsNotFound, match="Could not find PermissionSet"):
            call(sso, "DescribePermissionSet", backoff=FAST, InstanceArn=INSTANCE,
                 PermissionSetArn=INSTANCE + "/ps-x")
        with pytest.raises(AwsError, match="ValidationException: 1 validation error") as caught:
            call(sso, "DescribePermissionSet", backoff=FAST, InstanceArn=INSTANCE,
                 PermissionSetArn=INSTANCE + "/ps-x")
    assert type(caught.value) is AwsError  # not retried, not a subclass


def users_page(numbers: list[int], token: str | None) -> dict:
    page = {"Users": [{"UserId": user_id(n), "IdentityStoreId": STORE, "UserName": f"u{n}",
                       "UserArn": f"arn:aws:identitystore:::user/{STORE}-{user_id(n)}",
                       "Revision": "1"} for n in numbers]}
    return page | ({"NextToken": token} if token else {})


def test_paginate_stops_on_a_repeated_token_and_dedupes_rows():
    ids = client("identitystore")
    with Stubber(ids) as stub:
        stub.add_response("list_users", users_page([1, 2], "t1"))
        stub.add_response("list_users", users_page([2, 3], "t2"),
                          {"IdentityStoreId": STORE, "NextToken": "t1"})
        # a buggy server hands out t1 again: reading on would loop forever
        stub.add_response("list_users", users_page([3, 4], "t1"),
                          {"IdentityStoreId": STORE, "NextToken": "t2"})
        rows = paginate(ids, "ListUsers", result_key="Users", key=lambda u: u["UserId"],
                        backoff=FAST, IdentityStoreId=STORE)
        stub.assert_no_pending_responses()
    assert [row["UserName"] for row in rows] == ["u1", "u2", "u3", "u4"]


def test_paginate_reads_to_the_last_page_and_dedupes_plain_values():
    sso = client("sso-admin")
    ps_a, ps_b = INSTANCE + "/ps-aaaaaaaaaaaaaaaa", INSTANCE + "/ps-bbbbbbbbbbbbbbbb"
    with Stubber(sso) as stub:
        stub.add_response("list_permission_sets", {"PermissionSets": [ps_a], "NextToken": "n"})
        stub.add_response("list_permission_sets", {"PermissionSets": [ps_a, ps_b]})
        arns = paginate(sso, "ListPermissionSets", result_key="PermissionSets", backoff=FAST,
                        InstanceArn=INSTANCE)
        stub.assert_no_pending_responses()
    assert arns == [ps_a, ps_b]


def test_limiter_is_asked_once_per_attempt_by_family():
    asked: list[str] = []

    class CountingGate:
        def acquire(self, family: str, *, timeout: float) -> None:
            asked.append(family)

    sso = client("sso-admin")
    with Stubber(sso) as stub:
        stub.add_client_error("create_account_assignment", "ThrottlingException", "slow")
        stub.add_response("create_account_assignment", creation_answer())
        call(sso, "CreateAccountAssignment", limiter=CountingGate(), backoff=FAST,
             **create_params())
    assert asked == ["sso-admin", "sso-admin"]


def test_backoff_is_full_jitter_exponential_and_capped():
    backoff = Backoff(base=0.5, cap=4.0)
    assert [backoff.delay(n, rng=lambda: 1.0) for n in (1, 2, 3, 4, 5)] == [0.5, 1, 2, 4, 4]
    assert backoff.delay(3, rng=lambda: 0.0) == 0.0

"""The pure transforms from AWS shapes to adapter records."""

from __future__ import annotations

import pytest

from models.errors import AwsNotFound, ConfigError
from models.ports.identity_center import FAILED
from workers.adapters.aws.boto_adapter import (
    account_record,
    assignment_record,
    member_user_id,
    operation_status,
    pick_instance,
    user_record,
)

INSTANCES = [{"InstanceArn": "arn:a", "IdentityStoreId": "d-a"},
             {"InstanceArn": "arn:b", "IdentityStoreId": "d-b"}]


def test_pick_instance_by_configured_arn():
    assert pick_instance(INSTANCES, instance_arn="arn:b").identity_store_id == "d-b"


def test_pick_instance_refuses_to_guess_between_several():
    with pytest.raises(ConfigError, match="2 Identity Center instances") as caught:
        pick_instance(INSTANCES, instance_arn=None)
    assert "GRANTLEDGER_INSTANCE_ARN" in caught.value.hint


def test_pick_instance_when_none_matches():
    with pytest.raises(AwsNotFound, match="no arn:c"):
        pick_instance(INSTANCES, instance_arn="arn:c")


def test_user_record_takes_the_primary_email_and_first_external_id():
    user = user_record({
        "UserId": "u-1", "UserName": "ada", "Name": {"GivenName": "Ada"},
        "Emails": [{"Value": "old@example.com"}, {"Value": "ada@example.com", "Primary": True}],
        "ExternalIds": [{"Issuer": "grantledger", "Id": "gl-1"}],
    })
    assert (user.email, user.external_id, user.given_name, user.family_name) == (
        "ada@example.com", "gl-1", "Ada", None)


def test_user_record_with_only_the_required_fields():
    user = user_record({"UserId": "u-2", "UserName": "bob"})
    assert (user.email, user.external_id, user.display_name) == (None, None, None)


def test_account_record_accepts_state_or_status():
    assert account_record({"Id": "111122223333", "Name": "a", "State": "SUSPENDED"}).status \
        == "SUSPENDED"
    assert account_record({"Id": "111122223333", "Name": "a", "Status": "ACTIVE"}).status \
        == "ACTIVE"


def test_failed_operation_keeps_the_reason():
    status = operation_status({"RequestId": "r-1", "Status": FAILED,
                               "FailureReason": "Principal does not exist"})
    assert (status.settled, status.failure_reason) == (True, "Principal does not exist")
    assert not operation_status({"RequestId": "r-2", "Status": "IN_PROGRESS"}).settled


def test_assignment_record_key_and_group_members():
    record = assignment_record({"PrincipalType": "GROUP", "PrincipalId": "g-1",
                                "AccountId": "111122223333", "PermissionSetArn": "ps"})
    assert record.key == ("GROUP", "g-1", "111122223333", "ps")
    assert member_user_id({"MemberId": {"UserId": "u-9"}}) == "u-9"
    assert member_user_id({"MemberId": {}}) is None

"""The sandbox SCIM server's pure rules: AWS filters, group PATCH limits, user checks, mapping."""

from __future__ import annotations

import pytest
from moto.identitystore.models import Name as StoreName
from moto.identitystore.models import User as StoreUser
from scim2_models import (
    Context,
    Email,
    Group,
    InvalidFilterException,
    InvalidValueException,
    Meta,
    PatchOp,
    ScimFilter,
    ScimPolicy,
)

from workers.sandbox.scim.app import api_name
from workers.sandbox.scim.dialect import (
    AwsName,
    AwsUser,
    check_user,
    member_changes,
    path_attribute,
)
from workers.sandbox.scim.mapping import user_fields, user_resource
from workers.sandbox.scim.storage import filter_terms

LENIENT = ScimPolicy(remove_value_as_filter=ScimPolicy.RemoveValue.apply)


def group_patch(*operations: dict) -> PatchOp:
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": list(operations)}
    with LENIENT:
        return PatchOp[Group].model_validate(body, scim_ctx=Context.RESOURCE_PATCH_REQUEST)


def test_filter_terms_accept_eq_joined_by_and() -> None:
    expression = ScimFilter('id eq "g1" and members.value eq "u1"')
    assert filter_terms(expression, "Group") == {"id": "g1", "members": "u1"}
    assert filter_terms(ScimFilter('userName eq "Al"'), "User") == {"username": "Al"}
    assert filter_terms(None, "User") == {}


@pytest.mark.parametrize("expression,kind", [
    ('userName ne "a"', "User"), ('userName eq "a" or id eq "b"', "User"),
    ('title eq "x"', "User"), ('userName eq "a"', "Group"), ("userName pr", "User"),
])
def test_filter_terms_refuse_the_rest(expression: str, kind: str) -> None:
    with pytest.raises(InvalidFilterException):
        filter_terms(ScimFilter(expression), kind)


def test_path_attribute_names_the_top_attribute() -> None:
    assert path_attribute('members[value eq "x"]') == "members"
    assert path_attribute("urn:ietf:params:scim:schemas:core:2.0:Group:displayName") == \
        "displayname"
    assert path_attribute("name.givenName") == "name"


def test_member_changes_count_every_form() -> None:
    patch_op = group_patch(
        {"op": "add", "path": "members", "value": [{"value": "a"}, {"value": "b"}]},
        {"op": "remove", "path": 'members[value eq "c"]'},
        {"op": "remove", "path": "members", "value": [{"value": "d"}]},
        {"op": "add", "value": {"members": [{"value": "e"}]}},
        {"op": "replace", "path": "displayName", "value": "x"},
    )
    assert member_changes(patch_op) == 5


@pytest.mark.parametrize("operation,error", [
    ({"op": "replace", "path": "members", "value": []}, InvalidValueException),
    ({"op": "remove", "path": "members"}, InvalidValueException),
    ({"op": "replace", "value": {"displayName": "a", "externalId": "b"}}, InvalidValueException),
])
def test_member_changes_refuse_what_aws_refuses(operation: dict, error: type) -> None:
    with pytest.raises(error):
        member_changes(group_patch(operation))


def test_check_user_wants_names_and_one_email() -> None:
    user = AwsUser(user_name="al", display_name="Al", name=AwsName(given_name="A",
                                                                   family_name="L"))
    check_user(user)
    with pytest.raises(InvalidValueException, match="name.familyName"):
        check_user(user.model_copy(update={"name": AwsName(given_name="A")}))
    emails = [Email(value="a@example.com"), Email(value="b@example.com")]
    two = user.model_copy(update={"emails": emails})
    with pytest.raises(InvalidValueException, match="emails"):
        check_user(two)


def test_user_round_trips_through_the_identity_store_shape() -> None:
    user = AwsUser(user_name="al", display_name="Al", title="Eng",
                   name=AwsName(given_name="A", family_name="L"),
                   emails=[Email(value="a@example.com", type="work", primary=True)])
    fields = user_fields(user)
    assert fields["Name"] == {"GivenName": "A", "FamilyName": "L"}
    assert fields["Emails"] == [{"Value": "a@example.com", "Type": "work", "Primary": True}]
    record = StoreUser(UserId="u1", IdentityStoreId="d-1", UserName=fields["UserName"],
                       Name=StoreName.from_dict(fields["Name"]),
                       **{k: v for k, v in fields.items() if k not in ("UserName", "Name")})
    back = user_resource(record, "grantledger:1", False, Meta(resource_type="User"))
    assert (back.id, back.user_name, back.title, back.active) == ("u1", "al", "Eng", False)
    assert (back.name.family_name, back.emails[0].value) == ("L", "a@example.com")


def test_api_names_follow_aws() -> None:
    assert [api_name("POST", "/Users"), api_name("GET", "/Users"),
            api_name("GET", "/Groups/g1"), api_name("PATCH", "/Groups/g1"),
            api_name("GET", "/ServiceProviderConfig")] == [
        "CreateUser", "ListUsers", "GetGroup", "PatchGroup", "ServiceProviderConfig"]

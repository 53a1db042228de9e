"""Domain types: durations, catalog identities, resource models and their validation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from models.domain import (
    AccessListResource,
    AccessRequest,
    AccessRequestSpec,
    Account,
    AssignmentKey,
    AssignmentRule,
    ListMember,
    PrincipalType,
    RequestRule,
    RequestState,
    Resource,
    RoleResource,
    UserResource,
    system_role_name,
)
from models.durations import format_duration, parse_duration
from tests.unit.test_domain_builders import assignment

# --- durations -------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("90s", timedelta(seconds=90)), ("15m", timedelta(minutes=15)), ("1h", timedelta(hours=1)),
    ("8h", timedelta(hours=8)), ("1d", timedelta(days=1)), ("90d", timedelta(days=90)),
    ("1h30m", timedelta(minutes=90)), ("1d2h3m4s", timedelta(days=1, seconds=7384)),
])
def test_durations_parse_the_short_form(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "8", "8 hours", "1.5h", "h", "30m1h", "-1h", "0s", "1w"])
def test_durations_refuse_anything_else_with_examples(text: str) -> None:
    with pytest.raises(ValueError, match=r"invalid duration .*(e\.g\. 90s|longer than zero)"):
        parse_duration(text)


@given(st.integers(min_value=1, max_value=10 * 365 * 86400))
def test_durations_format_back_to_what_parses(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value


def test_durations_serialise_in_the_short_form() -> None:
    rule = RequestRule(max_duration="1h30m")
    assert rule.model_dump(mode="json")["max_duration"] == "1h30m"
    assert RequestRule(max_duration=timedelta(days=90)).model_dump(mode="json")[
        "max_duration"] == "90d"


# --- catalog ---------------------------------------------------------------------------------


def test_assignment_id_and_system_role_name() -> None:
    admin_on_prod = assignment("Production", "AdministratorAccess")
    assert admin_on_prod.id == "111111111111/AdministratorAccess"
    assert admin_on_prod.system_role_name == "AdministratorAccess-on-Production-111111111111"
    assert system_role_name("ReadOnlyAccess", "Staging", "222222222222") == \
        "ReadOnlyAccess-on-Staging-222222222222"


@pytest.mark.parametrize("account_id", ["11111111111", "1111111111111", "abcdefghijkl", ""])
def test_account_ids_are_twelve_digits(account_id: str) -> None:
    with pytest.raises(ValidationError):
        Account(id=account_id, name="x")


def test_assignment_key_is_a_plain_tuple_in_the_shared_order() -> None:
    key = AssignmentKey(PrincipalType.USER, "u-1", "111111111111", "arn:ps")
    assert key == ("USER", "u-1", "111111111111", "arn:ps")
    assert key.permission_set_arn == "arn:ps"


def test_catalog_models_are_frozen() -> None:
    account = Account(id="111111111111", name="Production")
    with pytest.raises(ValidationError):
        account.name = "Prod"  # type: ignore[misc]


# --- resources -------------------------------------------------------------------------------


def user_doc(**spec: object) -> dict:
    return {"kind": "user", "metadata": {"name": "alice"},
            "spec": {"email": "a@example.com", "given_name": "A", "family_name": "B", **spec}}


def test_unknown_fields_are_errors_at_every_level() -> None:
    with pytest.raises(ValidationError, match="extra_forbidden|Extra inputs"):
        UserResource.model_validate(user_doc(colour="blue"))
    with pytest.raises(ValidationError, match="Extra inputs"):
        UserResource.model_validate({**user_doc(), "status": {}})


def test_the_resource_union_picks_the_model_by_kind() -> None:
    adapter = TypeAdapter(Resource)
    assert isinstance(adapter.validate_python(user_doc()), UserResource)
    role = adapter.validate_python({"kind": "role", "metadata": {"name": "r"}})
    assert isinstance(role, RoleResource) and role.version == "v7"


def test_roles_must_be_version_v7() -> None:
    with pytest.raises(ValidationError, match="'v7'"):
        RoleResource.model_validate({"kind": "role", "version": "v6", "metadata": {"name": "r"}})


@pytest.mark.parametrize("name", ["", " alice", "alice ", "a\nb", "x" * 129])
def test_names_refuse_blanks_and_control_characters(name: str) -> None:
    with pytest.raises(ValidationError):
        UserResource.model_validate({**user_doc(), "metadata": {"name": name}})


def test_system_role_names_with_blanks_in_the_account_name_are_valid() -> None:
    name = system_role_name("ReadOnlyAccess", "Shared Services", "444444444444")
    assert RoleResource.model_validate({"kind": "role", "metadata": {"name": name}}).name == name


def test_request_rule_defaults_and_threshold_alias() -> None:
    rule = RequestRule()
    assert (rule.max_duration, rule.approvals, rule.break_glass) == (timedelta(hours=8), 1, False)
    assert rule.break_glass_max_duration == timedelta(hours=1)
    assert RequestRule.model_validate({"thresholds": 2}).approvals == 2
    with pytest.raises(ValidationError):
        RequestRule(approvals=0)


def test_unquoted_account_ids_are_accepted_only_when_no_digit_can_be_lost() -> None:
    assert AssignmentRule(account=111111111111, permission_set="x").account == "111111111111"
    with pytest.raises(ValidationError, match="quote account ids"):
        AssignmentRule(account=1227133513, permission_set="x")  # YAML's reading of 011111111111


def test_invalid_regular_expressions_are_refused() -> None:
    with pytest.raises(ValidationError, match="invalid regular expression"):
        AssignmentRule(account="^(prod$", permission_set="*")


def test_member_expiry_is_read_as_utc_and_ends_access_at_that_instant() -> None:
    member = ListMember(name="alice", expires=date(2027, 1, 31))
    assert member.expires == datetime(2027, 1, 31, tzinfo=UTC)
    naive = ListMember(name="alice", expires=datetime(2027, 1, 31, 12))
    assert naive.expires.tzinfo is UTC
    assert member.active_at(datetime(2027, 1, 30, 23, 59, tzinfo=UTC))
    assert not member.active_at(datetime(2027, 1, 31, tzinfo=UTC))
    assert ListMember(name="bob").active_at(datetime(9999, 1, 1, tzinfo=UTC))


def test_a_list_member_may_not_appear_twice() -> None:
    with pytest.raises(ValidationError, match="listed twice"):
        AccessListResource.model_validate({
            "kind": "access_list", "metadata": {"name": "l"},
            "spec": {"title": "L", "members": [{"name": "a"}, {"name": "a", "kind": "user"}]},
        })


def test_access_requests_need_something_and_well_formed_resource_ids() -> None:
    spec = AccessRequestSpec(user="alice", resources=["111111111111/ReadOnlyAccess"],
                             reason="incident 42", duration="2h")
    assert spec.duration == timedelta(hours=2)
    with pytest.raises(ValidationError, match="at least one role or resource"):
        AccessRequestSpec(user="alice", reason="why not")
    with pytest.raises(ValidationError):
        AccessRequestSpec(user="alice", resources=["Production/ReadOnlyAccess"], reason="r")


def test_access_request_states_change_with_validation() -> None:
    request = AccessRequest(id="r-1", user="alice", roles=["developer"], reason="r",
                            created_at=datetime(2026, 1, 1))
    assert request.state is RequestState.PENDING and request.created_at.tzinfo is UTC
    request.state = RequestState.APPROVED
    assert request.state == "APPROVED"
    with pytest.raises(ValidationError):
        request.state = "MAYBE"  # type: ignore[assignment]


def test_absurdly_long_duration_is_a_clear_error_not_an_overflow() -> None:
    from models.durations import parse_duration

    with pytest.raises(ValueError, match="longer than"):
        parse_duration("99999999999d")

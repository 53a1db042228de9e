"""The SCIM adapter's pure parts: ownership, request bodies, response parsing, backoff, breaker."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from models.errors import ConfigError, ScimCircuitOpen
from workers.adapters.scim.breaker import CircuitBreaker, backoff_delay, parse_retry_after
from workers.adapters.scim.directory import (
    eq_filter,
    is_owned,
    mark_owned,
    member_patches,
    user_changes,
    user_from_scim,
    user_payload,
)
from workers.adapters.scim.token import token_age_days, token_warning
from workers.settings import Settings


def test_ownership_marker_is_added_once_and_recognised() -> None:
    assert mark_owned("user-1") == "grantledger:user-1"
    assert mark_owned("grantledger:user-1") == "grantledger:user-1"
    assert is_owned("grantledger:x")
    assert not any(is_owned(v) for v in (None, "", "okta:grantledger:x", "GRANTLEDGER:x"))


def test_members_are_deduplicated_and_chunked_by_100() -> None:
    ids = [f"u{i}" for i in range(250)] + ["u0", "u1"]
    adds = member_patches("add", ids)
    assert [len(p["Operations"][0]["value"]) for p in adds] == [100, 100, 50]
    removes = member_patches("remove", ids)
    assert [len(p["Operations"]) for p in removes] == [100, 100, 50]
    assert removes[0]["Operations"][0] == {"op": "remove", "path": 'members[value eq "u0"]'}
    assert member_patches("add", []) == []


def test_filter_values_are_quoted_as_json_strings() -> None:
    assert eq_filter("userName", 'a"b\\c') == 'userName eq "a\\"b\\\\c"'


def test_user_payload_carries_what_aws_requires() -> None:
    payload = user_payload(user_name="al", display_name="Al", given_name="A", family_name="L",
                           email="al@example.com", external_id="grantledger:1")
    assert payload["name"] == {"givenName": "A", "familyName": "L"}
    assert payload["emails"] == [{"value": "al@example.com", "type": "work", "primary": True}]
    no_email = user_payload(user_name="al", display_name="Al", given_name="A",
                            family_name="L", email=None, external_id="grantledger:1")
    assert "emails" not in no_email


def test_user_changes_replace_only_given_attributes() -> None:
    operations = user_changes(user_name=None, display_name="New", given_name=None,
                              family_name="F", email=None)
    assert operations == [{"op": "replace", "path": "displayName", "value": "New"},
                          {"op": "replace", "path": "name.familyName", "value": "F"}]


def test_user_from_scim_prefers_the_primary_email() -> None:
    user = user_from_scim({"id": "1", "userName": "al", "active": False,
                           "emails": [{"value": "b@x"}, {"value": "p@x", "primary": True}]})
    assert (user.email, user.active, user.owned) == ("p@x", False, False)


def test_backoff_grows_with_jitter_under_the_cap() -> None:
    low = [backoff_delay(n, base=0.5, cap=8.0, jitter=0.0) for n in range(1, 7)]
    high = [backoff_delay(n, base=0.5, cap=8.0, jitter=0.999) for n in range(1, 7)]
    assert low == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0]
    assert all(lo < hi <= 8.0 for lo, hi in zip(low, high, strict=True))
    assert backoff_delay(1, base=0.5, cap=8.0, jitter=0.0, retry_after=3) == 3
    assert backoff_delay(1, base=0.5, cap=8.0, jitter=0.0, retry_after=60) == 8.0
    assert (parse_retry_after("2"), parse_retry_after("soon"), parse_retry_after(None)) == (
        2.0, None, None)


def test_breaker_opens_at_threshold_and_closes_on_reset() -> None:
    breaker = CircuitBreaker(3)
    assert not breaker.record_auth_failure(401)
    breaker.record_success()  # a working call in between starts the count again
    opened = [breaker.record_auth_failure(403) for _ in range(3)]
    assert opened == [False, False, True]
    with pytest.raises(ScimCircuitOpen):
        breaker.check()
    breaker.record_success()  # an open breaker stays open until reset
    assert breaker.is_open
    breaker.reset()
    breaker.check()


def test_token_age_and_warning() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert token_age_days(Settings(), now=now) is None
    young = Settings(scim_token_created_at="2025-06-01")
    old = Settings(scim_token_created_at="2025-01-15T00:00:00+00:00")
    assert token_age_days(young, now=now) == pytest.approx(214)
    assert token_warning(young, now=now) is None
    warning = token_warning(old, now=now)
    assert warning is not None and "351 days old" in warning and "14 days" in warning
    with pytest.raises(ConfigError):
        token_age_days(Settings(scim_token_created_at="last spring"), now=now)

"""Names the import gives: access lists from group display names, users from user names."""

from __future__ import annotations

import pytest

from tasks.importing.names import is_valid_name, list_name_for, unique_name, user_name_for


@pytest.mark.parametrize(("display_name", "expected"), [
    ("Platform Admins", "platform-admins"), ("Ops & SRE (EU)", "ops-sre-eu"),
    ("Dév Öps", "dév-öps"), ("team.data_eng", "team.data_eng"), ("  --  ", "group"),
    ("x" * 300, "x" * 120),
])
def test_list_names_are_command_line_friendly(display_name: str, expected: str) -> None:
    assert list_name_for(display_name) == expected
    assert is_valid_name(expected)


@pytest.mark.parametrize(("user_name", "expected"), [
    ("alice", "alice"), ("bob@example.com", "bob@example.com"),
    ("carol\x07", "carol"), ("\x01\x02", "u-123"),
])
def test_user_names_stay_what_people_know_when_valid(user_name: str, expected: str) -> None:
    assert user_name_for(user_name, user_id="u-123") == expected


def test_unique_names_count_up_past_taken_ones() -> None:
    assert unique_name("dev", set()) == "dev"
    assert unique_name("dev", {"dev", "dev-2"}) == "dev-3"
    long = "y" * 128
    assert len(unique_name(long, {long})) <= 128

"""What the poll rounds keep of their status listings (written on news or once a minute),
and how `grantledger status` shows it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tasks.provisioning.status_listing import LISTING_FIX, RECORD_EVERY, next_record
from workers.cli.commands_ops import polling_summary

T0 = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)
DENIED = "ListAccountAssignmentCreationStatus denied: the integration lacks sso:ListAccount" \
         "AssignmentCreationStatus"


def after(previous, seconds: float, *, answered=(), refused=None):
    return next_record(previous, at=T0 + timedelta(seconds=seconds), answered=answered,
                       refused=refused or {})


def test_the_first_round_is_recorded_then_at_most_once_a_minute():
    first = after(None, 0, answered=["create"])
    assert first == {"last_round_at": T0.isoformat(), "refused": {}}
    assert after(first, 0.4, answered=["create"]) is None
    assert after(first, RECORD_EVERY.total_seconds() - 1, answered=["create"]) is None
    assert after(first, RECORD_EVERY.total_seconds(), answered=["create"]) == {
        "last_round_at": (T0 + RECORD_EVERY).isoformat(), "refused": {}}


def test_a_refusal_and_its_end_are_recorded_at_once():
    answered = after(None, 0, answered=["create", "delete"])
    refused = after(answered, 0.4, answered=["delete"], refused={"create": DENIED})
    assert refused == {"last_round_at": (T0 + timedelta(seconds=0.4)).isoformat(),
                       "refused": {"create": DENIED}}
    assert after(refused, 0.8, refused={"create": DENIED}) is None  # still refused: no news
    assert after(refused, 1.2, answered=["create"])["refused"] == {}


def test_a_listing_the_round_did_not_make_keeps_what_was_known():
    refused = after(None, 0, refused={"create": DENIED})
    # Only deletes were due, or the create listing was throttled: nothing new about creates.
    assert after(refused, 0.4, answered=["delete"]) is None
    assert after(refused, 61)["refused"] == {"create": DENIED}


def test_a_document_of_another_shape_reads_as_never_recorded():
    assert after({"unexpected": True}, 0) == {"last_round_at": T0.isoformat(), "refused": {}}
    assert after("garbage", 0) is not None


def test_status_says_the_mode_the_last_round_and_a_refusal():
    assert polling_summary({"mode": "describe"}) == \
        "describe (each operation polled with Describe)"
    assert polling_summary({"mode": "list", "last_round_at": None, "listing_refused": False,
                            "refused": {}}) == "list (no round recorded yet)"
    assert polling_summary({"mode": "list", "last_round_at": T0, "listing_refused": False,
                            "refused": {}}) == "list (last round 2025-01-06 12:00:00 UTC)"
    refused = polling_summary({"mode": "list", "last_round_at": T0, "listing_refused": True,
                               "refused": {"create": DENIED}, "fix": LISTING_FIX})
    assert refused == ("list: create listing REFUSED, Describe fallback in force "
                       "(last round 2025-01-06 12:00:00 UTC)")

"""The ledger's pure rules: state machine tables, transition values, redaction, time types."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from models.errors import LedgerError
from models.ledger import grants, operations
from models.ledger.audit import REDACTED, redact
from models.ledger.base import UtcDateTime, db_now
from models.ledger.enums import GrantState, OperationState
from models.ledger.tables import new_request_id

G, Op = GrantState, OperationState


def test_grant_lifecycle_paths_are_legal() -> None:
    happy = [G.PENDING, G.PROVISIONING, G.ACTIVE, G.REVOKING, G.REVOKED]
    for expected, to in itertools.pairwise(happy):
        grants.check_transition(expected, to)
    for expected, to in [(G.PENDING, G.REVOKED), (G.FAILED, G.PROVISIONING),
                         (G.FAILED, G.REVOKING), (G.REVOKING, G.FAILED)]:
        grants.check_transition(expected, to)


@pytest.mark.parametrize(("expected", "to"), [
    pair for pair in itertools.product(GrantState, GrantState)
    if pair not in grants.LEGAL_TRANSITIONS
])
def test_every_other_grant_move_is_illegal(expected: GrantState, to: GrantState) -> None:
    with pytest.raises(LedgerError, match=f"{expected} -> {to}"):
        grants.check_transition(expected, to)


def test_revoked_and_nothing_else_is_final() -> None:
    leaving = {expected for expected, _ in grants.LEGAL_TRANSITIONS}
    assert set(GrantState) - leaving == {G.REVOKED}


@pytest.mark.parametrize(("expected", "to"), [
    pair for pair in itertools.product(OperationState, OperationState)
    if pair not in operations.LEGAL_TRANSITIONS
])
def test_every_other_operation_move_is_illegal(
    expected: OperationState, to: OperationState,
) -> None:
    with pytest.raises(LedgerError, match="illegal operation transition"):
        operations.check_transition(expected, to)


def test_failure_records_where_it_happened_and_why() -> None:
    values = grants.transition_values(G.REVOKING, G.FAILED, "AccessDeniedException")
    assert values["state"] is G.FAILED
    assert values["failed_from"] is G.REVOKING
    assert values["failure_reason"] == "AccessDeniedException"


def test_leaving_failed_forgets_failed_from_and_revocation_clears_stuck() -> None:
    assert grants.transition_values(G.FAILED, G.REVOKING)["failed_from"] is None
    revoked = grants.transition_values(G.REVOKING, G.REVOKED)
    assert revoked["stuck"] is False and "revoked_at" in revoked
    assert "activated_at" not in revoked


def test_first_attempt_in_a_direction_counts_one() -> None:
    assert grants.transition_values(G.PENDING, G.PROVISIONING)["attempts"] == 1
    assert grants.transition_values(G.ACTIVE, G.REVOKING)["attempts"] == 1


def test_submission_needs_a_request_id() -> None:
    with pytest.raises(LedgerError, match="request id"):
        operations.transition_values(Op.QUEUED, Op.SUBMITTED)
    values = operations.transition_values(Op.QUEUED, Op.SUBMITTED, request_id="r-1")
    assert values["request_id"] == "r-1" and "finished_at" not in values


def test_failed_operation_keeps_reason() -> None:
    values = operations.transition_values(Op.SUBMITTED, Op.FAILED, reason="boom")
    assert values["failure_reason"] == "boom" and values["next_poll_at"] is None


def test_redact_replaces_secret_values_at_any_depth() -> None:
    document = {"label": "ci", "api_token": "t", "nested": [{"Password": "p", "user": "u"}],
                "scim": {"bearer_token": "b", "url": "https://x"}}
    assert redact(document) == {
        "label": "ci", "api_token": REDACTED, "nested": [{"Password": REDACTED, "user": "u"}],
        "scim": {"bearer_token": REDACTED, "url": "https://x"},
    }
    assert redact(None) is None and redact("plain") == "plain"


def test_utc_datetime_refuses_naive_and_normalises_to_utc() -> None:
    column = UtcDateTime()
    with pytest.raises(ValueError, match="naive"):
        column.process_bind_param(datetime(2030, 1, 1), postgresql.dialect())
    paris = datetime(2030, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=1)))
    stored = column.process_bind_param(paris, sqlite.dialect())
    assert stored == datetime(2030, 1, 1, 11, 0) and stored.tzinfo is None
    loaded = column.process_result_value(datetime(2030, 1, 1, 11, 0), sqlite.dialect())
    assert loaded == paris and loaded.tzinfo is UTC


def test_database_clock_sql_per_dialect() -> None:
    assert str(db_now().compile(dialect=postgresql.dialect())) == "statement_timestamp()"
    shifted = str(db_now(30).compile(dialect=postgresql.dialect()))
    assert "statement_timestamp() +" in shifted and "interval '1 second'" in shifted
    lite = str(db_now(-5).compile(dialect=sqlite.dialect()))
    assert lite.startswith("strftime('%Y-%m-%d %H:%M:%f000', 'now'") and "seconds" in lite


def test_request_ids_are_short_and_random() -> None:
    ids = {new_request_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"req-[0-9a-f]{8}", request_id) for request_id in ids)

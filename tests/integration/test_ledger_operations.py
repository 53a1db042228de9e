"""Operations: idempotent recording, the QUEUED -> SUBMITTED -> done machine, due polls."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models.domain import PrincipalType
from models.errors import LedgerError
from models.ledger.base import database_time
from models.ledger.db import transaction
from models.ledger.enums import OperationKind, OperationState
from models.ledger.kv import read_state, write_state
from models.ledger.operations import (
    claim_due_polls,
    get_or_create_operation,
    record_retry,
    reschedule_poll,
    transition,
)
from models.ledger.tables import Operation
from tests.integration.ledger_support import Catalog, run_together

pytest_plugins = ["tests.integration.ledger_fixtures"]

Op = OperationState


def create_op(session: Session, catalog: Catalog, key: str = "create:1:1") -> Operation:
    operation, _ = get_or_create_operation(
        session, idempotency_key=key, kind=OperationKind.CREATE_ASSIGNMENT,
        principal_type=PrincipalType.USER, principal_id="u-1",
        account_id=catalog.account_id, permission_set_arn=catalog.permission_set_arn,
        payload={"target_type": "AWS_ACCOUNT"},
    )
    return operation


def test_same_idempotency_key_gives_the_same_operation(
    session: Session, catalog: Catalog,
) -> None:
    first, created = get_or_create_operation(
        session, idempotency_key="create:7:1", kind=OperationKind.CREATE_ASSIGNMENT,
        account_id=catalog.account_id,
    )
    again, created_again = get_or_create_operation(
        session, idempotency_key="create:7:1", kind=OperationKind.CREATE_ASSIGNMENT,
        account_id=catalog.account_id,
    )
    assert (created, created_again) == (True, False)
    assert again.id == first.id and first.state is Op.QUEUED and first.payload == {}


def test_submission_stores_request_id_and_schedules_the_first_poll(
    session: Session, catalog: Catalog,
) -> None:
    operation = create_op(session, catalog)
    before = database_time(session)
    assert transition(session, operation_id=operation.id, expected=Op.QUEUED, to=Op.SUBMITTED,
                      request_id="aws-req-1", poll_in_seconds=30)
    session.refresh(operation)
    assert operation.request_id == "aws-req-1" and operation.attempts == 1
    assert operation.submitted_at is not None and operation.submitted_at >= before
    assert operation.next_poll_at is not None
    assert 29 <= (operation.next_poll_at - operation.submitted_at).total_seconds() <= 31
    # A redelivered task cannot submit twice.
    assert not transition(session, operation_id=operation.id, expected=Op.QUEUED,
                          to=Op.SUBMITTED, request_id="aws-req-2")
    session.refresh(operation)
    assert operation.request_id == "aws-req-1"


def test_submission_without_request_id_is_refused(session: Session, catalog: Catalog) -> None:
    operation = create_op(session, catalog)
    with pytest.raises(LedgerError, match="request id"):
        transition(session, operation_id=operation.id, expected=Op.QUEUED, to=Op.SUBMITTED)


def test_finish_and_failure(session: Session, catalog: Catalog) -> None:
    done, failed = create_op(session, catalog, "a"), create_op(session, catalog, "b")
    for operation in (done, failed):
        assert transition(session, operation_id=operation.id, expected=Op.QUEUED,
                          to=Op.SUBMITTED, request_id=f"r-{operation.id}")
    assert transition(session, operation_id=done.id, expected=Op.SUBMITTED, to=Op.SUCCEEDED)
    assert transition(session, operation_id=failed.id, expected=Op.SUBMITTED, to=Op.FAILED,
                      reason="Principal u-1 does not exist")
    session.refresh(done)
    session.refresh(failed)
    assert done.state is Op.SUCCEEDED and done.finished_at is not None
    assert done.next_poll_at is None
    assert failed.failure_reason == "Principal u-1 does not exist"
    with pytest.raises(LedgerError, match="illegal operation transition"):
        transition(session, operation_id=done.id, expected=Op.SUCCEEDED, to=Op.FAILED)


def test_synchronous_call_finishes_from_queued(session: Session, catalog: Catalog) -> None:
    operation = create_op(session, catalog, "scim:user:alice")
    assert transition(session, operation_id=operation.id, expected=Op.QUEUED, to=Op.SUCCEEDED)
    session.refresh(operation)
    assert operation.attempts == 1 and operation.request_id is None


def test_retries_are_counted_while_queued(session: Session, catalog: Catalog) -> None:
    operation = create_op(session, catalog)
    assert record_retry(session, operation_id=operation.id, reason="ThrottlingException") == 1
    assert record_retry(session, operation_id=operation.id, reason="ConflictException") == 2
    session.refresh(operation)
    assert operation.failure_reason == "ConflictException"
    transition(session, operation_id=operation.id, expected=Op.QUEUED, to=Op.SUBMITTED,
               request_id="r")
    assert record_retry(session, operation_id=operation.id, reason="late") is None


def test_due_polls_follow_the_database_clock(session: Session, catalog: Catalog) -> None:
    due, later = create_op(session, catalog, "due"), create_op(session, catalog, "later")
    transition(session, operation_id=due.id, expected=Op.QUEUED, to=Op.SUBMITTED,
               request_id="r-due", poll_in_seconds=-1)
    transition(session, operation_id=later.id, expected=Op.QUEUED, to=Op.SUBMITTED,
               request_id="r-later", poll_in_seconds=3600)
    create_op(session, catalog, "queued")
    assert [op.id for op in claim_due_polls(session, limit=50)] == [due.id]
    assert reschedule_poll(session, operation_id=due.id, delay_seconds=3600)
    assert claim_due_polls(session, limit=50) == []
    session.refresh(due)
    assert due.poll_count == 1


def test_concurrent_deliveries_record_one_operation(
    sessions: sessionmaker[Session], committed: Catalog,
) -> None:
    key = f"create:race:{committed.account_id}"

    def deliver(_: int) -> int:
        with transaction(sessions) as session:
            return create_op(session, committed, key).id

    ids = run_together(10, deliver)
    assert len(set(ids)) == 1
    with transaction(sessions) as session:
        count = session.scalar(select(func.count()).select_from(Operation)
                               .where(Operation.idempotency_key == key))
    assert count == 1


def test_named_state_documents(session: Session) -> None:
    assert read_state(session, "sync.cursor", default={}) == {}
    write_state(session, "sync.cursor", {"page": 1})
    write_state(session, "sync.cursor", {"page": 2, "done": False})
    assert read_state(session, "sync.cursor") == {"page": 2, "done": False}

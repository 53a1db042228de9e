"""Fixtures for the access-request tests (helpers in ``requests_support``).

``rq_sessions`` gives the services a session factory whose every transaction is a SAVEPOINT
inside one outer transaction rolled back after the test (fast, isolated, real database;
nothing reaches the append-only audit table for good). Other tests' committed accounts are
hidden inside that transaction, so the catalog is exactly this world's.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from models.ledger.db import transaction
from tests.integration.requests_support import ROLES, World, add_catalog


@pytest.fixture
def rq_sessions(engine: Engine) -> Iterator[sessionmaker[Session]]:
    """Sessions whose commits are SAVEPOINTs of one transaction rolled back at the end."""
    with engine.connect() as connection:
        outer = connection.begin()
        sessions = sessionmaker(bind=connection, join_transaction_mode="create_savepoint",
                                expire_on_commit=False)
        try:
            yield sessions
        finally:
            outer.rollback()


@pytest.fixture
def world(rq_sessions: sessionmaker[Session]) -> World:
    """The catalog, the example roles, and alice (developer), bob and carol (reviewers),
    dave (developer + on-call break-glass), erin (staging reviewer)."""
    with transaction(rq_sessions) as session:
        add_catalog(session)
    built = World(rq_sessions)
    for name, spec in ROLES.items():
        built.add_role(name, spec)
    built.add_user("alice", ["developer"])
    built.add_user("bob", ["security-reviewer"])
    built.add_user("carol", ["security-reviewer"])
    built.add_user("dave", ["developer", "oncall-breakglass"])
    built.add_user("erin", ["staging-reviewer"])
    return built

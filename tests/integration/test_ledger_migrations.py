"""Migrations reach head from nothing, match the models exactly, and go back down cleanly."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from models.domain import MemberKind
from models.errors import LedgerError, SchemaOutOfDate
from models.ledger import migrate
from models.ledger.base import Base
from models.ledger.db import make_engine, transaction
from models.ledger.tables import Account, Membership

pytest_plugins = ["tests.integration.ledger_fixtures"]


@pytest.fixture
def empty_sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'fresh.db'}"


@pytest.fixture
def empty_postgresql_url(pg_url: str) -> Iterator[str]:
    """A second, empty database on the test server, dropped afterwards."""
    server = make_url(pg_url)
    admin_url = server.set(database="postgres").render_as_string(hide_password=False)
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"{server.database}_fresh"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield server.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def empty_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"empty_{request.param}_url")


@pytest.fixture
def fresh_engine(empty_url: str) -> Iterator[Engine]:
    engine = make_engine(empty_url)
    yield engine
    engine.dispose()


def schema_diff(engine: Engine) -> list:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)


def test_migrated_schema_matches_the_models(ledger_url: str, engine: Engine) -> None:
    assert migrate.is_at_head(ledger_url)
    assert migrate.current(ledger_url) == migrate.head()
    assert schema_diff(engine) == []


def test_empty_database_goes_to_head_and_back(empty_url: str, fresh_engine: Engine) -> None:
    assert migrate.current(empty_url) is None
    assert not migrate.is_at_head(empty_url)
    with pytest.raises(SchemaOutOfDate, match=f"needs {migrate.head()}"):
        migrate.require_head(empty_url)
    migrate.upgrade(empty_url)
    migrate.require_head(empty_url)
    assert "grants" in inspect(fresh_engine).get_table_names()
    migrate.downgrade(empty_url, "base")
    assert set(inspect(fresh_engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(empty_url)
    assert schema_diff(fresh_engine) == []


def test_append_only_triggers_exist(engine: Engine) -> None:
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            names = connection.scalars(text(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_events'::regclass "
                "AND NOT tgisinternal")).all()
            assert set(names) == {"audit_events_no_change", "audit_events_no_truncate"}
        else:
            names = connection.scalars(text(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' "
                "AND tbl_name = 'audit_events'")).all()
            assert set(names) == {"audit_events_no_update", "audit_events_no_delete"}


def test_unreachable_database_is_a_ledger_error_without_the_password() -> None:
    url = "postgresql+psycopg://grantledger:hunter2@127.0.0.1:1/ledger"
    with pytest.raises(LedgerError) as caught:
        migrate.current(url)
    assert "127.0.0.1:1" in str(caught.value) and "hunter2" not in str(caught.value)
    assert "GRANTLEDGER_DATABASE_URL" in caught.value.hint


def test_sqlite_engine_enforces_foreign_keys_and_uses_wal(sqlite_ledger_url: str) -> None:
    engine = make_engine(sqlite_ledger_url)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    with pytest.raises(IntegrityError, match="FOREIGN KEY"), Session(engine) as session, \
            session.begin():
        session.add(Membership(list_name="no-such-list", member_name="alice",
                               member_kind=MemberKind.USER))
    engine.dispose()


def test_transaction_commits_or_rolls_back_as_one(sessions: sessionmaker[Session]) -> None:
    kept, dropped = "999999999991", "999999999992"
    with transaction(sessions) as session:
        session.add(Account(id=kept, name="kept"))
    with pytest.raises(RuntimeError), transaction(sessions) as session:
        session.add(Account(id=dropped, name="dropped"))
        session.flush()
        raise RuntimeError("boom")
    with transaction(sessions) as session:
        assert session.get(Account, kept) is not None
        assert session.get(Account, dropped) is None
        session.delete(session.get(Account, kept))

"""What every ledger table shares: the declarative base, column types, and the database clock.

Times are timezone-aware UTC in Python and come from the DATABASE clock when the ledger
decides something (``db_now()``), so that workers with skewed clocks agree on what is due.
On PostgreSQL that clock is ``statement_timestamp()``: unlike ``now()`` (frozen at the start
of the transaction) it moves between the statements of one transaction, so a grant that is
activated and later revoked in the same transaction still gets two distinct times. On SQLite
it is ``strftime('%Y-%m-%d %H:%M:%f', 'now')`` padded to the six-digit microseconds that
SQLAlchemy stores, so stored values and the clock compare correctly as text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Enum, Integer, MetaData, String, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, MappedColumn, Session, mapped_column
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import FunctionElement, literal
from sqlalchemy.types import Float, TypeDecorator

# Stable constraint names, so migrations can name what they drop on both dialects.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

# JSONB on PostgreSQL (indexable, compact), JSON text on SQLite. Values are replaced, never
# mutated in place: the ORM does not track changes inside a list or dict.
JsonDoc = JSON().with_variant(postgresql.JSONB(), "postgresql")


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on both dialects; naive datetimes are refused, not guessed."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the ledger stores aware UTC times")
        value = value.astimezone(UTC)
        # SQLite keeps text without an offset: store UTC wall time so text order is time order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def enum_type(enum_cls: type[StrEnum], name: str) -> Enum:
    """A VARCHAR + CHECK column for a StrEnum: stores the value, loads the member.

    Not a native PostgreSQL enum: adding a member is then a CHECK change, not an ALTER TYPE
    that cannot run inside a transaction.
    """
    return Enum(
        enum_cls, name=name, native_enum=False, create_constraint=True, length=24,
        values_callable=lambda members: [m.value for m in members], validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UtcDateTime(),
        str: String(255),
        dict[str, Any]: JsonDoc,
        list[str]: JsonDoc,
        Any: JsonDoc,
    }


class _DbNow(FunctionElement[datetime]):
    """The database clock, optionally shifted by a number of seconds (see module docstring)."""

    type = UtcDateTime()
    name = "db_now"
    inherit_cache = True


@compiles(_DbNow, "postgresql")
def _db_now_postgresql(element: _DbNow, compiler: SQLCompiler, **kw: Any) -> str:
    if not element.clauses.clauses:
        return "statement_timestamp()"
    offset = compiler.process(element.clauses, **kw)
    return f"(statement_timestamp() + {offset} * interval '1 second')"


@compiles(_DbNow, "sqlite")
def _db_now_sqlite(element: _DbNow, compiler: SQLCompiler, **kw: Any) -> str:
    if not element.clauses.clauses:
        return "strftime('%Y-%m-%d %H:%M:%f000', 'now')"
    offset = compiler.process(element.clauses, **kw)
    return f"strftime('%Y-%m-%d %H:%M:%f000', 'now', {offset} || ' seconds')"


def db_now(offset_seconds: float | None = None) -> _DbNow:
    """SQL for the database's current time, plus ``offset_seconds`` when given."""
    if offset_seconds is None:
        return _DbNow()
    return _DbNow(literal(float(offset_seconds), Float()))


def database_time(session: Session, offset_seconds: float | None = None) -> datetime:
    """Ask the database what time it is (aware UTC)."""
    return session.execute(select(db_now(offset_seconds))).scalar_one()


def timestamp_column(*, nullable: bool = False, on_update: bool = False) -> MappedColumn[Any]:
    """A column that the database fills from its own clock on insert (and on update)."""
    return mapped_column(
        UtcDateTime(), nullable=nullable, server_default=db_now(),
        onupdate=db_now() if on_update else None,
    )

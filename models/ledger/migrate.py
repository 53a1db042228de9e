"""Schema migrations (Alembic) as plain functions, for ``grantledger db upgrade|current`` and
``grantledger doctor``. The migration scripts ship inside the package (``models.migrations``),
so an installed grantledger can migrate its own database.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from models.errors import LedgerError, SchemaOutOfDate
from models.ledger.db import make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def _config(connection: Connection | None = None) -> Config:
    config = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Passed as an object, not as sqlalchemy.url: an ini value would mangle '%' in passwords.
    config.attributes["connection"] = connection
    return config


@contextmanager
def _connect(url: str, *, begin: bool) -> Iterator[Connection]:
    engine = make_engine(url)
    try:
        with engine.begin() if begin else engine.connect() as connection:
            yield connection
    except OperationalError as err:
        shown = make_url(url).render_as_string(hide_password=True)
        # psycopg adds a second line ("Is the server running...?") that the hint says better.
        reason = (str(err.orig).strip().splitlines() or ["unknown error"])[0]
        raise LedgerError(
            f"cannot reach the ledger database {shown}: {reason}",
            hint="check GRANTLEDGER_DATABASE_URL and that the database server is running",
        ) from err
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision``, in one transaction."""
    with _connect(url, begin=True) as connection:
        command.upgrade(_config(connection), revision)


def downgrade(url: str, revision: str) -> None:
    """Migrate the database at ``url`` down to ``revision`` (``"base"`` drops everything)."""
    with _connect(url, begin=True) as connection:
        command.downgrade(_config(connection), revision)


def current(url: str) -> str | None:
    """The revision the database is at, or None for a database never migrated."""
    with _connect(url, begin=False) as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head() -> str:
    """The newest revision this version of grantledger ships."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    if revision is None:
        raise LedgerError("no migrations found in the package", hint="reinstall grantledger")
    return revision


def sqlite_file_missing(url: str) -> bool:
    """True for a SQLite ledger whose file does not exist yet (connecting would create it)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return False
    return not Path(parsed.database).exists()


def is_at_head(url: str) -> bool:
    """True when the database schema matches this version of grantledger."""
    return current(url) == head()


def require_head(url: str) -> None:
    """Refuse to run against a database that is not migrated to head."""
    found, wanted = current(url), head()
    if found != wanted:
        raise SchemaOutOfDate(f"ledger schema is at {found or 'nothing'}, this grantledger "
                              f"needs {wanted}")

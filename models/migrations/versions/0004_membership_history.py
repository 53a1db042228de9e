"""Membership history: when each member joined and left each access list.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04

``memberships`` holds only the present (a removal deletes the row), so "who had access at
T" could not expand a group's grant to the people in it then. Triggers on ``memberships``
write every join, expiry change and removal here, whichever code path (service, apply,
import, expiry, a cascade from a deleted list) made it, stamped by the database clock.
Existing memberships are copied in with their ``created_at``. Self-contained like 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "membership_history"
SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f000', 'now')"  # as models.ledger.base.db_now()
SAME = ("list_name = OLD.list_name AND member_name = OLD.member_name "
        "AND member_kind = OLD.member_kind AND removed_at IS NULL")

POSTGRES_FUNCTION = f"""
CREATE FUNCTION grantledger_membership_history() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO {TABLE} (list_name, member_name, member_kind, added_at, expires_at)
    VALUES (NEW.list_name, NEW.member_name, NEW.member_kind, statement_timestamp(),
            NEW.expires_at);
    RETURN NEW;
  ELSIF TG_OP = 'UPDATE' THEN
    UPDATE {TABLE} SET expires_at = NEW.expires_at WHERE {SAME};
    RETURN NEW;
  END IF;
  UPDATE {TABLE} SET removed_at = statement_timestamp() WHERE {SAME};
  RETURN OLD;
END $$ LANGUAGE plpgsql
"""
POSTGRES_TRIGGER = ("CREATE TRIGGER memberships_history AFTER INSERT OR UPDATE OR DELETE ON "
                    "memberships FOR EACH ROW EXECUTE FUNCTION grantledger_membership_history()")
SQLITE_TRIGGERS = {
    "memberships_history_insert": f"""
CREATE TRIGGER memberships_history_insert AFTER INSERT ON memberships BEGIN
  INSERT INTO {TABLE} (list_name, member_name, member_kind, added_at, expires_at)
  VALUES (NEW.list_name, NEW.member_name, NEW.member_kind, {SQLITE_NOW}, NEW.expires_at);
END""",
    "memberships_history_update": f"""
CREATE TRIGGER memberships_history_update AFTER UPDATE OF expires_at ON memberships BEGIN
  UPDATE {TABLE} SET expires_at = NEW.expires_at WHERE {SAME};
END""",
    "memberships_history_delete": f"""
CREATE TRIGGER memberships_history_delete AFTER DELETE ON memberships BEGIN
  UPDATE {TABLE} SET removed_at = {SQLITE_NOW} WHERE {SAME};
END""",
}


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("list_name", sa.String(length=255), nullable=False),
        sa.Column("member_name", sa.String(length=255), nullable=False),
        sa.Column("member_kind", sa.String(length=24), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_membership_history")),
    )
    op.create_index(op.f("ix_membership_history_list_name"), TABLE, ["list_name"])
    op.create_index(op.f("ix_membership_history_member_name"), TABLE, ["member_name"])
    op.execute(f"INSERT INTO {TABLE} (list_name, member_name, member_kind, added_at, "
               "expires_at) SELECT list_name, member_name, member_kind, created_at, "
               "expires_at FROM memberships")
    if op.get_context().dialect.name == "postgresql":
        op.execute(POSTGRES_FUNCTION)
        op.execute(POSTGRES_TRIGGER)
    else:
        for statement in SQLITE_TRIGGERS.values():
            op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS memberships_history ON memberships")
        op.execute("DROP FUNCTION IF EXISTS grantledger_membership_history()")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_index(op.f("ix_membership_history_member_name"), table_name=TABLE)
    op.drop_index(op.f("ix_membership_history_list_name"), table_name=TABLE)
    op.drop_table(TABLE)

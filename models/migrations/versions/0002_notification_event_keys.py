"""Notification outbox: a unique event key, per-channel progress, and the delivery outcome.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

``event_key`` (unique) makes queueing idempotent: the same event (``grant.expiring`` for one
grant and one expiry, ``request.approved`` for one request) is never queued twice, whoever
records it and however often a sweep runs. ``channels_done`` lists the channels that already
accepted a row, so a retry after a partial failure does not resend to the others.
``outcome`` says what happened on delivery (receivers' answers, or "no channel configured").
Self-contained like 0001: imports nothing from the application.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "notifications_outbox"
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    # Added nullable, filled, then tightened: rows queued before this revision get a key that
    # cannot collide with a real event key (those always start with the event name).
    with op.batch_alter_table(TABLE) as batch:
        batch.add_column(sa.Column("event_key", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("channels_done", JSON_DOC, nullable=True))
        batch.add_column(sa.Column("outcome", sa.Text(), nullable=True))
    outbox = sa.table(TABLE, sa.column("id", sa.BigInteger()),
                      sa.column("event_key", sa.String()), sa.column("channels_done", JSON_DOC))
    op.execute(outbox.update().values(
        event_key=sa.literal("legacy:") + sa.cast(outbox.c.id, sa.String()), channels_done=[],
    ))
    with op.batch_alter_table(TABLE) as batch:
        batch.alter_column("event_key", existing_type=sa.String(length=255), nullable=False)
        batch.alter_column("channels_done", existing_type=JSON_DOC, nullable=False)
        batch.create_unique_constraint(op.f("uq_notifications_outbox_event_key"), ["event_key"])


def downgrade() -> None:
    with op.batch_alter_table(TABLE) as batch:
        batch.drop_constraint(op.f("uq_notifications_outbox_event_key"), type_="unique")
        batch.drop_column("outcome")
        batch.drop_column("channels_done")
        batch.drop_column("event_key")

"""Immutable user ids: tokens, requests and reviews refer to the person, not the name.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04

A user name is reusable (delete ``jsmith``, apply a new ``jsmith``); an id (``usr-`` + 16 hex
digits) is generated once and never reused, so a token or a request of the old person can
never resolve to the new one. Existing rows are carried over by name: each user gets an id,
and tokens, requests and reviews of a user that still exists point at it; rows of users
already gone keep a null id and so resolve to nobody. Self-contained: imports nothing from
the application. A pending extension (``extension_seconds``, ``extension_approvers``) waits
on the access request for as many approvals as the request needed.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(length=40)
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
# (table, id column, name column) of every row that refers to a person.
REFERENCES = (("api_tokens", "user_id", "user_name"),
              ("access_requests", "user_id", "user_name"),
              ("request_reviews", "reviewer_id", "reviewer"))


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("id", ID, nullable=True))
    users = sa.table("users", sa.column("name", sa.String()), sa.column("id", ID))
    bind = op.get_bind()
    for (name,) in bind.execute(sa.select(users.c.name)).all():
        bind.execute(users.update().where(users.c.name == name)
                     .values(id=f"usr-{secrets.token_hex(8)}"))
    with op.batch_alter_table("users") as batch:
        batch.alter_column("id", existing_type=ID, nullable=False)
        batch.create_unique_constraint(op.f("uq_users_id"), ["id"])
    with op.batch_alter_table("access_requests") as batch:
        batch.add_column(sa.Column("extension_seconds", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("extension_approvers", JSON_DOC, nullable=True))
    requests = sa.table("access_requests", sa.column("extension_approvers", JSON_DOC))
    op.execute(requests.update().values(extension_approvers=[]))
    with op.batch_alter_table("access_requests") as batch:
        batch.alter_column("extension_approvers", existing_type=JSON_DOC, nullable=False)
    for table, id_column, name_column in REFERENCES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column(id_column, ID, nullable=True))
            batch.create_index(op.f(f"ix_{table}_{id_column}"), [id_column])
        rows = sa.table(table, sa.column(id_column, ID), sa.column(name_column, sa.String()))
        by_name = (sa.select(users.c.id).where(users.c.name == rows.c[name_column])
                   .scalar_subquery())
        op.execute(rows.update().values({id_column: by_name}))


def downgrade() -> None:
    for table, id_column, _ in reversed(REFERENCES):
        with op.batch_alter_table(table) as batch:
            batch.drop_index(op.f(f"ix_{table}_{id_column}"))
            batch.drop_column(id_column)
    with op.batch_alter_table("access_requests") as batch:
        batch.drop_column("extension_approvers")
        batch.drop_column("extension_seconds")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint(op.f("uq_users_id"), type_="unique")
        batch.drop_column("id")

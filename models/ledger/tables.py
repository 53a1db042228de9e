"""Every ledger table, as SQLAlchemy 2 typed declarative models.

The schema itself is created by the Alembic migrations (``models.ledger.migrate.upgrade``),
which also add what models cannot express on both dialects: the append-only audit triggers.
Names (users, access lists, roles) are primary keys: YAML resources are addressed by name.
A user also has an immutable ``id`` (never reused): tokens, requests and reviews refer to it,
so a deleted name applied again for someone else inherits none of them.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.domain import MemberKind, PrincipalType, RequestState
from models.ledger.base import Base, BigId, JsonDoc, enum_type, timestamp_column
from models.ledger.enums import GrantState, OperationState, Origin, ReviewDecision, SourceKind

AccountId = String(12)
ARN = String(2048)

# Grant rows never go away; these states are the ones that still matter.
LIVE_GRANT = text("state != 'REVOKED'")


def new_request_id() -> str:
    """A short, unguessable access-request id such as ``req-3f9a1c2b``."""
    return f"req-{secrets.token_hex(4)}"


def new_user_id() -> str:
    """A user's immutable id such as ``usr-3f9a1c2b4d5e6f70``: generated once, never reused."""
    return f"usr-{secrets.token_hex(8)}"


UserId = String(40)


def _flag(default: bool = False) -> Any:
    return mapped_column(Boolean, default=default, server_default=true() if default else false())


# --- what exists in AWS ------------------------------------------------------------------


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(AccountId, primary_key=True)
    name: Mapped[str]
    ou_path: Mapped[str] = mapped_column(String(1024), default="", server_default="")
    present: Mapped[bool] = _flag(True)  # false once the account vanished from AWS
    last_seen_at: Mapped[datetime | None]

    __table_args__ = (CheckConstraint("length(id) = 12", name="twelve_digits"),)


class PermissionSet(Base):
    __tablename__ = "permission_sets"

    arn: Mapped[str] = mapped_column(ARN, primary_key=True)
    name: Mapped[str] = mapped_column(index=True)
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    present: Mapped[bool] = _flag(True)
    last_seen_at: Mapped[datetime | None]


# --- what people manage (YAML resources, imports) ----------------------------------------


class User(Base):
    __tablename__ = "users"

    name: Mapped[str] = mapped_column(primary_key=True)
    id: Mapped[str] = mapped_column(UserId, unique=True, default=new_user_id)
    email: Mapped[str | None]
    given_name: Mapped[str | None]
    family_name: Mapped[str | None]
    roles: Mapped[list[str]] = mapped_column(default=list)
    traits: Mapped[dict[str, Any]] = mapped_column(default=dict)
    principal_id: Mapped[str | None] = mapped_column(unique=True)  # Identity Center UserId
    scim_external_id: Mapped[str | None]
    suspended: Mapped[bool] = _flag()
    suspended_reason: Mapped[str | None] = mapped_column(Text)
    origin: Mapped[Origin] = mapped_column(enum_type(Origin, "origin"), default=Origin.RESOURCE)
    created_at: Mapped[datetime] = timestamp_column()
    updated_at: Mapped[datetime] = timestamp_column(on_update=True)


class Role(Base):
    __tablename__ = "roles"

    name: Mapped[str] = mapped_column(primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    origin: Mapped[Origin] = mapped_column(enum_type(Origin, "origin"), default=Origin.RESOURCE)
    # Set for system roles only: the one assignment the role stands for.
    system_account_id: Mapped[str | None] = mapped_column(AccountId)
    system_permission_set_arn: Mapped[str | None] = mapped_column(ARN)
    spec_hash: Mapped[str | None] = mapped_column(String(64))  # sha256: detects edits
    created_at: Mapped[datetime] = timestamp_column()
    updated_at: Mapped[datetime] = timestamp_column(on_update=True)


class AccessList(Base):
    __tablename__ = "access_lists"

    name: Mapped[str] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(default="", server_default="")
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    owners: Mapped[list[str]] = mapped_column(default=list)
    granted_roles: Mapped[list[str]] = mapped_column(default=list)
    recurrence_seconds: Mapped[int | None]
    next_review_at: Mapped[datetime | None]
    group_id: Mapped[str | None] = mapped_column(unique=True)  # Identity Center GroupId
    origin: Mapped[Origin] = mapped_column(enum_type(Origin, "origin"), default=Origin.RESOURCE)
    created_at: Mapped[datetime] = timestamp_column()
    updated_at: Mapped[datetime] = timestamp_column(on_update=True)


class Membership(Base):
    __tablename__ = "memberships"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    list_name: Mapped[str] = mapped_column(ForeignKey("access_lists.name", ondelete="CASCADE"))
    member_name: Mapped[str] = mapped_column(index=True)
    member_kind: Mapped[MemberKind] = mapped_column(enum_type(MemberKind, "member_kind"))
    expires_at: Mapped[datetime | None]
    added_by: Mapped[str | None]
    created_at: Mapped[datetime] = timestamp_column()
    updated_at: Mapped[datetime] = timestamp_column(on_update=True)

    __table_args__ = (UniqueConstraint("list_name", "member_name", "member_kind"),)


class MembershipHistory(Base):
    """Every join and leave of every access list, written by triggers on ``memberships``
    (migration 0004): who was in which list at any moment."""

    __tablename__ = "membership_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    list_name: Mapped[str] = mapped_column(index=True)
    member_name: Mapped[str] = mapped_column(index=True)
    member_kind: Mapped[str] = mapped_column(String(24))  # a MemberKind value
    added_at: Mapped[datetime]
    removed_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]


class AccessRequest(Base):
    __tablename__ = "access_requests"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_request_id)
    user_name: Mapped[str] = mapped_column(index=True)  # the name when filed, for display
    user_id: Mapped[str | None] = mapped_column(UserId, index=True)  # null: filed before 0003
    roles: Mapped[list[str]] = mapped_column(default=list)
    resources: Mapped[list[str]] = mapped_column(default=list)  # "<account-id>/<ps-name>"
    reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    duration_seconds: Mapped[int]
    state: Mapped[RequestState] = mapped_column(
        enum_type(RequestState, "request_state"), default=RequestState.PENDING, index=True,
    )
    required_approvals: Mapped[int] = mapped_column(default=1, server_default="1")
    break_glass: Mapped[bool] = _flag()
    created_at: Mapped[datetime] = timestamp_column()
    decided_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    promoted_to: Mapped[str | None]  # the access list the request was promoted into
    # An extension waiting for approvals: how much longer, and who approved it (user ids).
    extension_seconds: Mapped[int | None]
    extension_approvers: Mapped[list[str]] = mapped_column(default=list)


class RequestReview(Base):
    __tablename__ = "request_reviews"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    request_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("access_requests.id", ondelete="CASCADE"),
    )
    reviewer: Mapped[str]
    reviewer_id: Mapped[str | None] = mapped_column(UserId, index=True)
    decision: Mapped[ReviewDecision] = mapped_column(enum_type(ReviewDecision, "decision"))
    reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_at: Mapped[datetime] = timestamp_column()

    __table_args__ = (UniqueConstraint("request_id", "reviewer"),)


# --- what the ledger records --------------------------------------------------------------


class Grant(Base):
    """One principal x account x permission set, for one source, with its lifecycle."""

    __tablename__ = "grants"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    principal_type: Mapped[PrincipalType] = mapped_column(
        enum_type(PrincipalType, "principal_type"),
    )
    principal_name: Mapped[str]  # our user name or access-list name
    principal_id: Mapped[str | None]  # AWS UserId / GroupId once known
    account_id: Mapped[str] = mapped_column(AccountId, ForeignKey("accounts.id"))
    permission_set_arn: Mapped[str] = mapped_column(ARN, ForeignKey("permission_sets.arn"))
    source_kind: Mapped[SourceKind] = mapped_column(enum_type(SourceKind, "source_kind"))
    source_id: Mapped[str]
    state: Mapped[GrantState] = mapped_column(
        enum_type(GrantState, "grant_state"), default=GrantState.PENDING,
    )
    # The state a FAILED grant failed in: PENDING/PROVISIONING = create, REVOKING = delete.
    failed_from: Mapped[GrantState | None] = mapped_column(enum_type(GrantState, "failed_from"))
    starts_at: Mapped[datetime] = timestamp_column()
    expires_at: Mapped[datetime | None]  # null: long-term
    activated_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    failure_reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")  # in this direction
    stuck: Mapped[bool] = _flag()  # a revocation that keeps failing: shown by `status`
    created_at: Mapped[datetime] = timestamp_column()
    updated_at: Mapped[datetime] = timestamp_column(on_update=True)

    __table_args__ = (
        Index(
            "uq_grants_live_key", "principal_type", "principal_name", "account_id",
            "permission_set_arn", "source_kind", "source_id",
            unique=True, postgresql_where=LIVE_GRANT, sqlite_where=LIVE_GRANT,
        ),
        Index("ix_grants_assignment", "account_id", "permission_set_arn", "principal_name"),
        Index("ix_grants_source", "source_kind", "source_id"),
        Index("ix_grants_due", "state", "expires_at"),
    )


class Operation(Base):
    """One state-changing call to AWS (or SCIM), recorded before it is made."""

    __tablename__ = "operations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))  # an OperationKind value
    principal_type: Mapped[PrincipalType | None] = mapped_column(
        enum_type(PrincipalType, "principal_type"),
    )
    principal_id: Mapped[str | None]
    account_id: Mapped[str | None] = mapped_column(AccountId)
    permission_set_arn: Mapped[str | None] = mapped_column(ARN)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    idempotency_key: Mapped[str] = mapped_column(String(512), unique=True)
    state: Mapped[OperationState] = mapped_column(
        enum_type(OperationState, "operation_state"), default=OperationState.QUEUED,
    )
    request_id: Mapped[str | None]  # AWS's RequestId of the async assignment operation
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    failure_reason: Mapped[str | None] = mapped_column(Text)
    next_poll_at: Mapped[datetime | None]
    poll_count: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = timestamp_column()
    submitted_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    grant_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("grants.id", ondelete="SET NULL"), index=True,
    )

    __table_args__ = (Index("ix_operations_due_poll", "state", "next_poll_at"),)


class AuditEvent(Base):
    """Append-only (database triggers refuse UPDATE and DELETE)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = timestamp_column()
    actor: Mapped[str] = mapped_column(index=True)  # a user name, or "system:<process>"
    action: Mapped[str] = mapped_column(String(64))
    target_kind: Mapped[str] = mapped_column(String(32))
    target: Mapped[str]
    reason: Mapped[str | None] = mapped_column(Text)
    # What ties the event to its cause: an access request id or an AWS request id.
    request_id: Mapped[str | None]
    # Whose access and which account the event is about, so `audit --user/--account` is indexed.
    principal_name: Mapped[str | None] = mapped_column(index=True)
    account_id: Mapped[str | None] = mapped_column(AccountId, index=True)
    before: Mapped[Any | None] = mapped_column(JsonDoc)
    after: Mapped[Any | None] = mapped_column(JsonDoc)
    details: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)

    __table_args__ = (Index("ix_audit_events_at", "at"),)


class KvState(Base):
    """Small named documents: sync cursors, the last full-sync summary, leader leases."""

    __tablename__ = "kv_state"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[Any] = mapped_column(JsonDoc)
    updated_at: Mapped[datetime] = timestamp_column(on_update=True)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_name: Mapped[str | None] = mapped_column(index=True)  # the name when created
    user_id: Mapped[str | None] = mapped_column(UserId, index=True)  # the token acts as them
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex, never the token
    label: Mapped[str] = mapped_column(default="", server_default="")
    created_at: Mapped[datetime] = timestamp_column()
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class NotificationOutbox(Base):
    """Notifications written in the same transaction as the change, delivered afterwards."""

    __tablename__ = "notifications_outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # "<event>:<subject>[:<variant>]": the same event is never queued twice (models.ledger.outbox)
    event_key: Mapped[str] = mapped_column(String(255), unique=True)
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = timestamp_column()
    next_attempt_at: Mapped[datetime] = timestamp_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    delivered_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    channels_done: Mapped[list[str]] = mapped_column(default=list)  # accepted it already
    outcome: Mapped[str | None] = mapped_column(Text)  # receivers' answers once delivered

    __table_args__ = (Index("ix_notifications_outbox_due", "delivered_at", "next_attempt_at"),)

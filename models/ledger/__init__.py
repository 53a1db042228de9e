"""The ledger: every grant, operation and decision, in PostgreSQL (or SQLite when embedded).

Modules: ``tables`` (the schema), ``db`` (engines, sessions, transaction boundary),
``migrate`` (Alembic), ``grants`` and ``operations`` (state machines, idempotent upserts,
due-work claims), ``audit`` (append-only trail, point-in-time holders), ``kv`` (named
documents). Service code imports the functions from those modules; the tables and the
enums are re-exported here.
"""

from models.ledger.base import database_time, db_now
from models.ledger.enums import (
    GrantState,
    OperationKind,
    OperationState,
    Origin,
    ReviewDecision,
    SourceKind,
)
from models.ledger.tables import (
    AccessList,
    AccessRequest,
    Account,
    ApiToken,
    AuditEvent,
    Grant,
    KvState,
    Membership,
    NotificationOutbox,
    Operation,
    PermissionSet,
    RequestReview,
    Role,
    User,
)

__all__ = [
    "AccessList", "AccessRequest", "Account", "ApiToken", "AuditEvent", "Grant", "GrantState",
    "KvState", "Membership", "NotificationOutbox", "Operation", "OperationKind",
    "OperationState", "Origin", "PermissionSet", "RequestReview", "ReviewDecision", "Role",
    "SourceKind", "User", "database_time", "db_now",
]

"""What `grantledger demo` shows: AWS activity per step, the operations log as it moves,
group memberships as Identity Center reports them, and the ledger's own times.

Pure functions turn counters, assignment sets and ledger rows into what a person reads;
the few readers below them take a session or a Sandbox and nothing else.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.ledger import tables
from models.ledger.enums import OperationKind, OperationState

AssignmentKey = tuple[str, str, str, str]  # (principal_type, principal_id, account, ps ARN)
CHANGING_CALLS = ("Create", "Delete", "Put", "Update", "Patch", "Provision")
AWS_STATUS = {OperationState.QUEUED.value: "recorded, not sent yet",
              OperationState.SUBMITTED.value: "AWS: IN_PROGRESS",
              OperationState.SUCCEEDED.value: "AWS: SUCCEEDED",
              OperationState.FAILED.value: "AWS: FAILED"}
VERBS = {OperationKind.CREATE_ASSIGNMENT.value: "create", OperationKind.DELETE_ASSIGNMENT.value:
         "delete"}


# --- AWS activity of one step (pure) -------------------------------------------------------


@dataclass(frozen=True)
class AwsDelta:
    """What one step did in AWS: calls by ``service:Operation``, assignments made and gone.

    ``outside`` are the calls the demo itself made through boto3 (looking at Identity
    Center, or changing it behind grantledger's back); ``calls`` are grantledger's own.
    """

    calls: Mapping[str, int]
    outside: Mapping[str, int]
    created: frozenset[AssignmentKey]
    deleted: frozenset[AssignmentKey]

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    @property
    def writes(self) -> int:
        """grantledger's calls that change something (creates, deletes, SCIM writes)."""
        return sum(n for name, n in self.calls.items() if is_write(name))


def is_write(call: str) -> bool:
    """True for a call that changes state (``sso-admin:CreateAccountAssignment``,
    ``scim:PatchGroup``), False for reads (List*, Describe*, Get*)."""
    return call.split(":", 1)[-1].startswith(CHANGING_CALLS)


def counter_delta(before: Mapping[str, int], after: Mapping[str, int]) -> Counter[str]:
    """Calls made between two counter snapshots (counters only grow)."""
    return Counter({name: after[name] - before.get(name, 0) for name in after
                    if after[name] > before.get(name, 0)})


def aws_delta(*, calls_before: Mapping[str, int], calls_after: Mapping[str, int],
              outside: Mapping[str, int], assignments_before: set[AssignmentKey],
              assignments_after: set[AssignmentKey],
              assignments_seen: set[AssignmentKey]) -> AwsDelta:
    """One step's AWS activity, with the demo's own boto3 calls told apart.

    ``assignments_seen``: every assignment seen while the step waited, so one that came
    and went within the step counts as created and deleted.
    """
    ours = counter_delta(calls_before, calls_after)
    ours.subtract(outside)
    return AwsDelta(calls=+ours, outside=dict(outside),
                    created=frozenset((assignments_seen | assignments_after)
                                      - assignments_before),
                    deleted=frozenset((assignments_before | assignments_seen)
                                      - assignments_after))


def describe_calls(calls: Mapping[str, int], *, limit: int = 5) -> str:
    """``"12 calls: sso-admin:ListAccountAssignments 8, ... (+2 more kinds)"``."""
    total = sum(calls.values())
    if not total:
        return "no calls"
    ranked = sorted(calls.items(), key=lambda item: (-item[1], item[0]))
    shown = ", ".join(f"{name} {count}" for name, count in ranked[:limit])
    more = f" (+{len(ranked) - limit} more kinds)" if len(ranked) > limit else ""
    return f"{total} call{'s' if total != 1 else ''}: {shown}{more}"


def describe_counts(counts: Mapping[str, int]) -> str:
    """A sync's non-zero counts, ``"foreign 1, foreign_new 1"``, or ``"nothing to do"``."""
    shown = [f"{name} {count}" for name, count in sorted(counts.items()) if count]
    return ", ".join(shown) or "nothing to do"


# --- names for ids (pure once read) ---------------------------------------------------------


@dataclass(frozen=True)
class Names:
    """Ledger names for AWS ids: principals, accounts, permission sets."""

    principals: Mapping[str, str]  # UserId / GroupId -> "user:alice" / "group:developers"
    accounts: Mapping[str, str]
    permission_sets: Mapping[str, str]

    def assignment(self, key: AssignmentKey) -> str:
        principal_type, principal_id, account_id, arn = key
        who = self.principals.get(principal_id, f"{principal_type.lower()}:{principal_id}")
        return (f"{who} -> {self.accounts.get(account_id, account_id)}"
                f"/{self.permission_sets.get(arn, arn)}")


def read_names(session: Session) -> Names:
    """Every name the demo shows for an id, read from the ledger."""
    users = session.execute(select(tables.User.principal_id, tables.User.name)
                            .where(tables.User.principal_id.is_not(None))).all()
    lists = session.execute(select(tables.AccessList.group_id, tables.AccessList.name)
                            .where(tables.AccessList.group_id.is_not(None))).all()
    return Names(
        principals={**{pid: f"user:{name}" for pid, name in users if pid},
                    **{gid: f"group:{name}" for gid, name in lists if gid}},
        accounts=dict(session.execute(select(tables.Account.id, tables.Account.name)).all()),
        permission_sets=dict(session.execute(
            select(tables.PermissionSet.arn, tables.PermissionSet.name)).all()))


# --- the operations log as it moves ---------------------------------------------------------


@dataclass(frozen=True)
class Transition:
    """An operation seen in a new state, ``at`` seconds into the demo."""

    at: float
    operation_id: int
    verb: str
    assignment: str
    state: str


def operation_states(session: Session, *, since_id: int) -> list[tuple[int, str, AssignmentKey,
                                                                         str]]:
    """(id, kind, assignment key, state) of the assignment operations after ``since_id``."""
    rows = session.execute(
        select(tables.Operation.id, tables.Operation.kind, tables.Operation.principal_type,
               tables.Operation.principal_id, tables.Operation.account_id,
               tables.Operation.permission_set_arn, tables.Operation.state)
        .where(tables.Operation.id > since_id,
               tables.Operation.kind.in_(tuple(VERBS))).order_by(tables.Operation.id)).all()
    return [(op_id, kind, (str(ptype), pid or "", account or "", arn or ""), str(state))
            for op_id, kind, ptype, pid, account, arn, state in rows]


def new_transitions(seen: Mapping[int, str], rows: Iterable[tuple[int, str, AssignmentKey, str]],
                    *, at: float, names: Names) -> list[Transition]:
    """The rows whose state differs from what was ``seen`` last."""
    return [Transition(at, op_id, VERBS[kind], names.assignment(key), state)
            for op_id, kind, key, state in rows if seen.get(op_id) != state]


def merged(earlier: list[Transition], later: Iterable[Transition]) -> list[Transition]:
    """``earlier`` then what ``later`` adds (two follows of the same operations)."""
    known = {(t.operation_id, t.state) for t in earlier}
    return earlier + [t for t in later if (t.operation_id, t.state) not in known]


def last_operation_id(session: Session) -> int:
    """The newest operation's id (0 for none): a step follows the ones after it."""
    return session.scalar(select(tables.Operation.id).order_by(tables.Operation.id.desc())
                          .limit(1)) or 0


def transitions_table(transitions: Iterable[Transition], *, since: float) -> Table:
    """The operations log as sampled, times relative to ``since``."""
    table = Table("at", "op", "", "assignment", "ledger state", "AWS status",
                  title="operations log (sampled from the ledger)", title_justify="left",
                  box=None, pad_edge=False)
    for t in transitions:
        table.add_row(f"+{t.at - since:5.2f}s", str(t.operation_id), t.verb, t.assignment,
                      t.state, AWS_STATUS.get(t.state, ""))
    return table


# --- Identity Center as boto3 sees it -------------------------------------------------------


def group_member_ids(sandbox: Any, group_id: str) -> set[str]:
    """UserIds in the group, from identitystore ListGroupMemberships (every page)."""
    store = sandbox.client("identitystore")
    pages = store.get_paginator("list_group_memberships").paginate(
        IdentityStoreId=sandbox.identity_store_id, GroupId=group_id)
    return {m["MemberId"]["UserId"] for page in pages for m in page["GroupMemberships"]}


def user_names(ids: Iterable[str], names: Names) -> list[str]:
    """Ledger user names of UserIds (an unknown id is shown as it is)."""
    return sorted(names.principals.get(i, i).removeprefix("user:") for i in ids)


# --- tables ---------------------------------------------------------------------------------


def rows_table(rows: Iterable[Mapping[str, Any]], columns: Iterable[str], *, title: str) -> Table:
    """A plain table of ``rows`` (mappings), one column per name in ``columns``."""
    columns = list(columns)
    table = Table(*columns, title=title, title_justify="left", box=None, pad_edge=False)
    for row in rows:
        table.add_row(*(_cell(row.get(column)) for column in columns))
    return table


def clock(moment: datetime) -> str:
    """``HH:MM:SS.mmm``: enough to compare the ledger's times within one demo."""
    return moment.strftime("%H:%M:%S.%f")[:-3]


def _cell(value: Any) -> str:
    if isinstance(value, datetime):
        return clock(value)
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    return "" if value is None else str(value)


def seconds_between(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()

"""Enrolment import and the scheduled refresh: Identity Center -> the ledger.

    preview(runtime=rt)                                   what an import would bring in
    run_import(runtime=rt, default_owners=["alice"], actor="bob")   enrol / re-import
    refresh(runtime=rt)                                   the scheduled run (every 15 min)

Each run is fetch (AWS only, ``tasks.importing.fetch``) -> transform (pure,
``tasks.importing.transform``) -> load + cleanup (ONE ledger transaction,
``tasks.importing.load`` / ``cleanup``): an AWS error or a refused write leaves the ledger
exactly as it was. One run at a time (``models.ledger.locks.IMPORT_LOCK``). Re-running
changes nothing.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.errors import GrantledgerError, InputError, LedgerError
from models.ledger import kv, migrate
from models.ledger.audit import record_many
from models.ledger.base import database_time
from models.ledger.db import transaction
from models.ledger.locks import IMPORT_LOCK, named_lock
from tasks.importing import cleanup, load
from tasks.importing.fetch import Progress, aws_requests_sent, fetch_inventory, no_progress
from tasks.importing.model import ImportPlan, Inventory, LedgerView
from tasks.importing.transform import check_default_owners, plan_import

if TYPE_CHECKING:
    from models.ports.runtime import Runtime

REFRESH_ACTOR = "system:import"
LOCK_WAIT_SECONDS = 600.0  # an explicit import waits this long for a running refresh
AUDITED_SKIPS = 50  # lines of "skipped" kept in the audit event


@dataclass(frozen=True)
class ImportSummary:
    """What one run found and changed. ``not_run`` says why a run did nothing."""

    enrolled: bool = False
    enrolled_now: bool = False
    found: dict[str, int] = field(default_factory=dict)
    new: dict[str, list[str]] = field(default_factory=dict)
    new_grants: int = 0
    vanished: dict[str, list[str]] = field(default_factory=dict)
    renamed_roles: dict[str, str] = field(default_factory=dict)
    failed_grants: int = 0
    drift_groups: list[dict[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    duration_seconds: float = 0.0
    aws_calls: int = 0
    not_run: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Preview:
    """What Identity Center holds and what an import would make of it (seed step 2)."""

    enrolled: bool
    accounts: list[dict[str, Any]]
    permission_sets: list[dict[str, Any]]
    groups: list[dict[str, Any]]
    users: list[dict[str, Any]]
    skipped: list[str]
    ledger: str = "at head"  # or "not created" / "not migrated": planned as a first import

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_import(*, runtime: Runtime, default_owners: list[str], actor: str,
               adopt_new_groups: bool = False, progress: Progress = no_progress
               ) -> ImportSummary:
    """Enrol (first run: default owners required) or re-import; idempotent."""
    owners = list(dict.fromkeys(default_owners))
    with runtime.sessions() as session:
        if not owners and not load.is_enrolled(session):
            raise owners_required()
    with named_lock(runtime.engine, IMPORT_LOCK, wait=LOCK_WAIT_SECONDS) as held:
        if not held:
            raise GrantledgerError("another import is still running",
                                   hint="wait for it to finish, then run the import again")
        return _run(runtime, actor=actor, owners=owners, adopt_new_groups=adopt_new_groups,
                    scheduled=False, progress=progress)


def refresh(*, runtime: Runtime, progress: Progress = no_progress) -> ImportSummary:
    """The scheduled run: new accounts and permission sets become known, vanished ones are
    retired, new groups are reported (never adopted). Skips if another import is running."""
    with named_lock(runtime.engine, IMPORT_LOCK) as held:
        if not held:
            return ImportSummary(not_run="another import is running")
        return _run(runtime, actor=REFRESH_ACTOR, owners=[], adopt_new_groups=False,
                    scheduled=True, progress=progress)


def preview(*, runtime: Runtime, progress: Progress = no_progress) -> Preview:
    """Fetch and plan without writing anything; no ledger yet (absent or never migrated)
    is planned as a first import, and no database is created or migrated."""
    inventory = fetch_inventory(runtime.identity_center, progress=progress)
    view, ledger = _view_if_migrated(runtime)
    plan = plan_import(inventory, view, adopt_new_groups=True)
    return replace(build_preview(inventory, view, plan), ledger=ledger)


def _view_if_migrated(runtime: Runtime) -> tuple[LedgerView, str]:
    url = runtime.settings.database_url
    if migrate.sqlite_file_missing(url):
        return LedgerView(), "not created"
    if migrate.current(url) is None:
        return LedgerView(), "not migrated"
    with runtime.sessions() as session:  # refuses a schema that is out of date
        return load.read_view(session), "at head"


def owners_required() -> InputError:
    return InputError(
        "the first import needs default owners for the imported access lists",
        hint="name at least one: grantledger import --default-owner USER "
             "(users are listed by: grantledger import --preview)",
    )


# --- one run -----------------------------------------------------------------------------


def _run(runtime: Runtime, *, actor: str, owners: list[str], adopt_new_groups: bool,
         scheduled: bool, progress: Progress) -> ImportSummary:
    started, calls_before = time.monotonic(), aws_requests_sent()
    inventory = fetch_inventory(runtime.identity_center, progress=progress)
    aws_calls = aws_requests_sent() - calls_before
    progress("ledger", 0, 1)
    try:
        with transaction(runtime.sessions) as session:
            summary = _apply(session, inventory, actor=actor, owners=owners,
                             adopt_new_groups=adopt_new_groups, scheduled=scheduled,
                             started=started, aws_calls=aws_calls)
    except IntegrityError as err:
        raise LedgerError(f"the ledger changed while importing, nothing was imported "
                          f"({err.orig})", hint="run the import again") from err
    progress("ledger", 1, 1)
    return summary


def _apply(session: Session, inventory: Inventory, *, actor: str, owners: list[str],
           adopt_new_groups: bool, scheduled: bool, started: float,
           aws_calls: int) -> ImportSummary:
    view = load.read_view(session)
    plan = _plan(inventory, view, owners=owners, adopt_new_groups=adopt_new_groups,
                 scheduled=scheduled)
    now = database_time(session)
    loaded = load.load_plan(session, plan, view=view, now=now, actor=actor)
    failed = cleanup.retire_vanished(session, plan, view=view, actor=actor)
    # Only an explicit import enrols; a refresh adopts nothing, so it has nothing to remember.
    enrolled_now = not scheduled and cleanup.remember_adoption(
        session, plan, view=view, actor=actor, default_owners=owners or view.default_owners,
        instance_arn=inventory.instance_arn)
    if view.enrolled or enrolled_now:
        cleanup.report_drift(session, plan, view=view, actor=actor)
    summary = summarize(inventory, plan, loaded, enrolled=view.enrolled or enrolled_now,
                        enrolled_now=enrolled_now, failed_grants=failed,
                        duration=time.monotonic() - started, aws_calls=aws_calls)
    _record_run(session, summary, actor=actor, instance_arn=inventory.instance_arn)
    return summary


def _plan(inventory: Inventory, view: LedgerView, *, owners: list[str], adopt_new_groups: bool,
          scheduled: bool) -> ImportPlan:
    if scheduled:
        return plan_import(inventory, view, catalog_only=not view.enrolled)
    if not view.enrolled and not owners:
        raise owners_required()
    check_default_owners(owners, inventory, view)
    return plan_import(inventory, view, default_owners=owners,
                       adopt_new_groups=adopt_new_groups)


def _record_run(session: Session, summary: ImportSummary, *, actor: str,
                instance_arn: str) -> None:
    details = summary.as_dict() | {"skipped": summary.skipped[:AUDITED_SKIPS]}
    record_many(session, [{"actor": actor, "action": "import.run",
                                  "target_kind": "identity_center", "target": instance_arn,
                                  "details": details}])
    kv.write_state(session, load.LAST_RUN_KEY, details)


# --- reporting ---------------------------------------------------------------------------


def summarize(inventory: Inventory, plan: ImportPlan, loaded: load.Loaded, *, enrolled: bool,
              enrolled_now: bool, failed_grants: int, duration: float,
              aws_calls: int) -> ImportSummary:
    """The run's summary: counts found in AWS, names of what is new, vanished or renamed."""
    accounts = {a.id: a for a in plan.accounts}
    sets = {p.arn: p for p in plan.permission_sets}
    return ImportSummary(
        enrolled=enrolled, enrolled_now=enrolled_now,
        found={"accounts": len(plan.accounts), "permission_sets": len(plan.permission_sets),
               "users": len(inventory.users), "groups": len(inventory.groups),
               "assignments": len(inventory.assignments)},
        new={"accounts": [f"{i} ({accounts[i].name})" for i in plan.new_accounts],
             "permission_sets": [sets[a].name for a in plan.new_permission_sets],
             "users": loaded.users, "access_lists": loaded.access_lists,
             "system_roles": loaded.system_roles},
        new_grants=loaded.grants,
        vanished={"accounts": list(plan.vanished_accounts),
                  "permission_sets": list(plan.vanished_permission_sets),
                  "groups": list(plan.vanished_groups)},
        renamed_roles=plan.renamed_roles, failed_grants=failed_grants,
        drift_groups=[{"group_id": g.group_id, "display_name": g.display_name}
                      for g in plan.drift_groups],
        skipped=list(plan.skipped), duration_seconds=round(duration, 3), aws_calls=aws_calls,
    )


def build_preview(inventory: Inventory, view: LedgerView, plan: ImportPlan) -> Preview:
    """Rows for the preview tables: accounts, permission sets, groups, users."""
    assignments = Counter(a.principal_id for a in inventory.assignments
                          if a.principal_type == "GROUP")
    known = {gid: name for name, gid in view.lists.items() if gid}
    proposed = {a.group_id: a.name for a in plan.access_lists}
    memberships = Counter(uid for ids in inventory.members.values() for uid in ids)
    return Preview(
        enrolled=view.enrolled,
        accounts=[{"id": a.id, "name": a.name, "ou_path": a.ou_path or "", "status": a.status}
                  for a in sorted(inventory.accounts, key=lambda a: a.id)],
        permission_sets=[{"name": p.name, "arn": p.arn, "description": p.description or ""}
                         for p in plan.permission_sets],
        groups=[{"display_name": g.display_name, "group_id": g.group_id,
                 "access_list": known.get(g.group_id) or proposed.get(g.group_id),
                 "status": _group_status(g.group_id, known, view),
                 "members": len(inventory.members.get(g.group_id, ())),
                 "assignments": assignments[g.group_id]}
                for g in sorted(inventory.groups, key=lambda g: g.display_name)],
        users=[{"user_name": u.user_name, "display_name": u.display_name, "email": u.email,
                "groups": memberships[u.user_id]}
               for u in sorted(inventory.users, key=lambda u: u.user_name)],
        skipped=list(plan.skipped),
    )


def _group_status(group_id: str, known: dict[str, str], view: LedgerView) -> str:
    if group_id in known or group_id in view.imported_groups:
        return "known"
    return "drift" if view.enrolled else "import"

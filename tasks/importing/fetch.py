"""Fetch: read Identity Center through the adapter, nothing else (no decisions, no ledger).

Order: accounts (with OU paths), permission sets; then at once users, groups, each group's
members (identitystore) and for each account the permission sets provisioned to it and, per
(account, permission set), who is assigned (sso-admin). That is AWS's only complete way to
list every assignment: there is no "list all assignments" API, and listing per principal
would cost a call per user.

The per-group and per-account listings run on a few threads: each AWS call waits ~50-200 ms
on the network, and the global limiter (not the thread count) is what keeps us within
AWS's 20 requests/s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from typing import Protocol, TypeVar

from prometheus_client import REGISTRY

from models.ports.identity_center import (
    AWS_CALLS_METRIC,
    AccountRecord,
    AssignmentRecord,
    IdentityCenter,
)
from tasks.importing.model import USABLE_ACCOUNT_STATES, Inventory

FETCH_THREADS = 4

Item = TypeVar("Item")
Result = TypeVar("Result")


class Progress(Protocol):
    """Told how far each fetch step is: ``(step, done, total)``; total 0 = unknown yet."""

    def __call__(self, step: str, done: int, total: int) -> None: ...


def no_progress(step: str, done: int, total: int) -> None:
    """The default: nobody is watching."""


def aws_requests_sent() -> int:
    """AWS requests this process has sent so far: the call wrapper's counter, read by its
    metric name from the registry so this module needs no adapter import."""
    return int(sum(sample.value for metric in REGISTRY.collect()
                   if metric.name == AWS_CALLS_METRIC for sample in metric.samples
                   if sample.name.endswith("_total")))


def fetch_inventory(center: IdentityCenter, *, progress: Progress = no_progress) -> Inventory:
    """Everything the import needs from Identity Center. The directory (identitystore) and
    the assignments (sso-admin) are read at the same time: each API has its own rate limit,
    so one waits for nothing while the other is read."""
    instance_arn = center.discover().instance_arn
    accounts = _step("accounts", progress, lambda: center.list_accounts(with_ou_path=True))
    permission_sets = _step("permission sets", progress, center.list_permission_sets)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="grantledger-import") as pool:
        assignments = pool.submit(fetch_assignments, center, accounts=accounts,
                                  progress=progress)
        users = _step("users", progress, center.list_users)
        groups = _step("groups", progress, center.list_groups)
        members = _concurrently("group memberships", progress, [g.group_id for g in groups],
                                center.list_group_memberships)
        found = assignments.result()
    return Inventory(
        instance_arn=instance_arn, accounts=tuple(accounts),
        permission_sets=tuple(permission_sets), users=tuple(users), groups=tuple(groups),
        members={group_id: tuple(dict.fromkeys(ids)) for group_id, ids in members.items()},
        assignments=found,
    )


def fetch_assignments(center: IdentityCenter, *, accounts: Iterable[AccountRecord],
                      progress: Progress = no_progress) -> tuple[AssignmentRecord, ...]:
    """Every assignment on every usable account, deduplicated by AWS's key."""
    usable = [a.id for a in accounts if a.status in USABLE_ACCOUNT_STATES]

    def on_account(account_id: str) -> list[AssignmentRecord]:
        return [assignment
                for arn in center.list_provisioned_permission_sets(account_id)
                for assignment in center.list_assignments(account_id=account_id,
                                                          permission_set_arn=arn)]

    by_account = _concurrently("assignments", progress, usable, on_account)
    unique = {a.key: a for account_id in usable for a in by_account[account_id]}
    return tuple(unique.values())


def _step(name: str, progress: Progress, fetch: Callable[[], Sequence[Result]]
          ) -> Sequence[Result]:
    progress(name, 0, 0)
    found = fetch()
    progress(name, len(found), len(found))
    return found


def _concurrently(name: str, progress: Progress, items: Sequence[Item],
                  fetch: Callable[[Item], Result]) -> dict[Item, Result]:
    """``fetch`` of every item on a few threads; the first failure cancels the rest."""
    progress(name, 0, len(items))
    results: dict[Item, Result] = {}
    with ThreadPoolExecutor(max_workers=FETCH_THREADS,
                            thread_name_prefix="grantledger-import") as pool:
        futures: dict[Future[Result], Item] = {pool.submit(fetch, item): item for item in items}
        try:
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                progress(name, len(results), len(items))
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return results

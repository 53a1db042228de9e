"""Helpers for the ledger tests (the fixtures are in ledger_fixtures)."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy.orm import Session

from models.ledger.base import database_time
from models.ledger.tables import Account, PermissionSet

T = TypeVar("T")


@dataclass(frozen=True)
class Catalog:
    account_id: str
    permission_set_arn: str


def new_catalog() -> Catalog:
    """A fresh account and permission set, unique to the caller."""
    account_id = str(secrets.randbelow(9 * 10**11) + 10**11)
    return Catalog(account_id, f"arn:aws:sso:::permissionSet/ssoins-test/ps-{secrets.token_hex(8)}")


def add_catalog(session: Session, catalog: Catalog) -> None:
    session.add(Account(id=catalog.account_id, name=f"acct-{catalog.account_id}"))
    session.add(PermissionSet(arn=catalog.permission_set_arn, name="AdministratorAccess"))
    session.flush()


def run_together(count: int, work: Callable[[int], T]) -> list[T]:
    """Run ``work(i)`` in ``count`` threads released at the same moment; their results."""
    barrier = threading.Barrier(count)

    def released(index: int) -> T:
        barrier.wait(timeout=10)
        return work(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(released, range(count)))


def next_tick(session: Session, after: datetime, *, deadline_s: float = 2.0) -> datetime:
    """Poll the database clock until it reads later than ``after``; that reading."""
    give_up = time.monotonic() + deadline_s
    while time.monotonic() < give_up:
        now = database_time(session)
        if now > after:
            return now
    raise AssertionError(f"database clock did not move past {after} in {deadline_s}s")


def dialect(session: Session) -> str:
    return session.get_bind().dialect.name

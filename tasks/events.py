"""Work to do next, and how it reaches the workers.

Plain functions of the sync engine never enqueue anything themselves: they return ``Next``
items ("submit operation 42", "poll it again in 2.4 s") and the thin Celery tasks (or a test
driver) pass them to ``enqueue`` once the transaction that recorded them has committed.

``desired_state_changed`` is what services call after their transaction commits (a member
added, a request approved, a role changed): it enqueues a targeted sync for the principals
concerned. Losing that message only delays the change until the next full sync.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from models.errors import ConfigError

log = logging.getLogger(__name__)

SYNC_FULL = "grantledger.sync.full"
SYNC_PRINCIPALS = "grantledger.sync.principals"
PROVISION_SUBMIT = "grantledger.provision.submit"
POLL_OPERATION = "grantledger.poll.operation"
POLL_ROUND = "grantledger.poll.round"
POLL_SWEEP = "grantledger.poll.sweep"
EXPIRY_SWEEP = "grantledger.expiry.sweep"
IMPORT_REFRESH = "grantledger.import.refresh"
NOTIFY_SWEEP = "grantledger.notify.sweep"


@dataclass(frozen=True)
class Next:
    """One task to enqueue: its registered name, arguments, and a delay in seconds."""

    task: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    countdown: float = 0.0


def submit(operation_id: int, *, countdown: float = 0.0) -> Next:
    return Next(PROVISION_SUBMIT, (operation_id,), countdown=countdown)


def poll(operation_id: int, *, countdown: float, polls: int | None = None) -> Next:
    """The status poll of an operation; ``polls``: how many polls it has had so far, so a
    duplicate delivery of an earlier poll does nothing (a poll chain never multiplies)."""
    args = (operation_id,) if polls is None else (operation_id, polls)
    return Next(POLL_OPERATION, args, countdown=countdown)


def poll_round(*, countdown: float = 0.0) -> Next:
    """A status poll round for every operation in flight (``tasks.provisioning.poll_round``)."""
    return Next(POLL_ROUND, countdown=countdown)


def sync_principals(*, users: Iterable[str] = (), lists: Iterable[str] = (),
                    reason: str = "") -> Next:
    return Next(SYNC_PRINCIPALS, kwargs={"users": sorted(set(users)),
                                         "lists": sorted(set(lists)), "reason": reason})


class Dispatcher(Protocol):
    """Sends one item of work to the broker."""

    def __call__(self, item: Next) -> None: ...


_dispatcher: Dispatcher | None = None


def use_dispatcher(send: Dispatcher | None) -> Dispatcher | None:
    """Install how ``enqueue`` sends work (``workers.runtime`` installs the Celery app's);
    returns the previous one. Tasks never import the broker's client themselves."""
    global _dispatcher
    previous, _dispatcher = _dispatcher, send
    return previous


def enqueue(work: Iterable[Next], *, app: Any = None) -> int:
    """Send each item to the broker (``app``: a Celery app, default the installed
    dispatcher); the number sent."""
    items = list(work)
    if not items:
        return 0
    send = _dispatcher if app is None else celery_dispatcher(app)
    if send is None:
        raise ConfigError("no broker dispatcher is installed",
                          hint="import workers.runtime (every entry point does) before "
                               "enqueueing work")
    for item in items:
        send(item)
    return len(items)


def celery_dispatcher(app: Any) -> Dispatcher:
    """A dispatcher that sends through a Celery app's ``send_task``."""
    def send(item: Next) -> None:
        app.send_task(item.task, args=list(item.args), kwargs=dict(item.kwargs),
                      countdown=item.countdown or None)
    return send


def desired_state_changed(*, users: Iterable[str] = (), lists: Iterable[str] = (),
                          reason: str) -> None:
    """Announce (after commit) that what these users / lists should hold has changed.

    Never raises: the change is already committed and the periodic full sync applies it
    anyway; a broker that is down is logged, not propagated to the caller.
    """
    users, lists = sorted(set(users)), sorted(set(lists))
    if not users and not lists:
        return
    try:
        enqueue([sync_principals(users=users, lists=lists, reason=reason)])
    except Exception as err:  # noqa: BLE001 - any broker failure; the full sync covers it
        log.warning("could not enqueue a targeted sync for users=%s lists=%s (%s): %s; "
                    "the next full sync applies the change", users, lists, reason, err)

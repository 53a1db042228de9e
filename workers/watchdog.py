"""The expiry watchdog: every worker makes sure expiry sweeps happen, beat or no beat.

Beat publishes an expiry sweep every ``expiry_interval``; each sweep, when it runs, holds the
limiter turn ``SWEPT_TURN`` for ``expiry_stale_intervals`` intervals. A thread in each
worker's main process looks once an interval: when the turn is free (no sweep ran for that
long: beat killed, its redbeat lock not yet free, Redis failed over under it), it takes the
turn, so one worker of all of them, and publishes a sweep itself. The sweep runs under the
same lock as beat's (``tasks.expiry.locked_sweep``), so never twice at once.

Runs in the main process and touches only Redis (no database connection there: the pool
processes are forked from it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from tasks import events
from tasks.events import Next, enqueue
from tasks.provisioning.expiry import SWEPT_TURN, stale_after
from workers.settings import Settings

log = logging.getLogger(__name__)


def check_once(*, limiter: Any, settings: Settings, publish: Callable[[list[Next]], Any]
               ) -> bool:
    """Publish a sweep if none ran for ``stale_after`` seconds and no other worker just
    did; whether this call published one."""
    if limiter.take_turn(SWEPT_TURN, period=stale_after(settings)) > 0:
        return False  # a sweep ran recently, or another worker's watchdog just asked for one
    publish([Next(events.EXPIRY_SWEEP)])
    log.warning("expiry watchdog: no expiry sweep for %.1fs (beat down?); published one",
                stale_after(settings))
    return True


class ExpiryWatchdog:
    """The watchdog thread of one worker: ``start()``, ``stop()``."""

    def __init__(self, settings: Settings, app: Any) -> None:
        self.settings, self.app = settings, app
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="expiry-watchdog", daemon=True)

    def start(self) -> ExpiryWatchdog:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        from workers.limiter import make_limiter

        limiter = make_limiter(self.settings)
        # The first look waits for the stale period: beat may simply be starting.
        pause = stale_after(self.settings)
        while not self._stop.wait(pause):
            pause = self.settings.expiry_interval
            try:
                check_once(limiter=limiter, settings=self.settings,
                           publish=lambda work: enqueue(work, app=self.app))
            except Exception as err:  # noqa: BLE001 - Redis away: look again next interval
                log.info("expiry watchdog: could not check (%s); next interval", err)

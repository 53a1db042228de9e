"""The stage `grantledger demo` plays on: the runtime, the embedded worker, the console, and
the few moves every step makes (wait for the worker while watching the operations log,
look at Identity Center from outside, check an expectation).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rich.console import Console
from sqlalchemy.orm import Session, sessionmaker

from models.errors import GrantledgerError
from workers.celery.embedded import EmbeddedWorker
from workers.demo.views import (
    AssignmentKey,
    Names,
    Transition,
    counter_delta,
    last_operation_id,
    new_transitions,
    operation_states,
    read_names,
)
from workers.runtime import Runtime

SETTLE_TIMEOUT = 30.0  # seconds a step may wait for its AWS work (settle delay ~1 s)
SAMPLE_EVERY = 0.05  # seconds between two looks at the operations log
T = TypeVar("T")


def expect(condition: object, message: str) -> None:
    """Stop the demo with ``message`` unless ``condition`` holds (the step runner adds which
    step it was and what to do)."""
    if not condition:
        raise GrantledgerError(message)


def present(value: T | None, message: str) -> T:
    """``value``, or stop the demo with ``message`` when it is missing."""
    if value is None:
        raise GrantledgerError(message)
    return value


@dataclass
class Stage:
    """What every step works with; ``requests`` carries request ids from step to step."""

    runtime: Runtime
    worker: EmbeddedWorker
    console: Console
    started: float = field(default_factory=time.monotonic)
    requests: dict[str, str] = field(default_factory=dict)
    outside: Counter[str] = field(default_factory=Counter)
    seen: set[AssignmentKey] = field(default_factory=set)  # assignments seen this step

    @property
    def sandbox(self) -> Any:
        return self.runtime.sandbox

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self.runtime.sessions

    def now(self) -> float:
        """Seconds since the demo started."""
        return time.monotonic() - self.started

    def names(self) -> Names:
        with self.sessions() as session:
            return read_names(session)

    def last_operation(self) -> int:
        with self.sessions() as session:
            return last_operation_id(session)

    @contextmanager
    def outside_grantledger(self) -> Iterator[Any]:
        """Calls made in this block are the demo's own boto3 calls, not grantledger's.

        Only used while the worker is idle, so the counters' difference is ours alone.
        """
        before = self.sandbox.calls()
        try:
            yield self.sandbox
        finally:
            self.outside.update(counter_delta(before, self.sandbox.calls()))

    def follow(self, what: str, *, since_operation: int,
               until: Callable[[], bool] | None = None,
               timeout: float = SETTLE_TIMEOUT) -> list[Transition]:
        """Wait until ``until()`` holds and the worker has nothing left to do, noting every
        state each assignment operation after ``since_operation`` is seen in."""
        names = self.names()
        seen: dict[int, str] = {}
        transitions: list[Transition] = []
        deadline = time.monotonic() + timeout
        while True:
            # Decide "done" before sampling, so the last sample sees every final state.
            done = (until is None or until()) and not any(self.worker.pending().values())
            with self.sessions() as session:
                rows = operation_states(session, since_id=since_operation)
            fresh = new_transitions(seen, rows, at=self.now(), names=names)
            transitions += fresh
            self.seen |= self.sandbox.assignments()
            seen.update((t.operation_id, t.state) for t in fresh)
            if done:
                return transitions
            expect(time.monotonic() < deadline,
                   f"{what}: not done after {timeout:g}s (pending: {self.worker.pending()})")
            time.sleep(SAMPLE_EVERY)


@dataclass(frozen=True)
class Step:
    """One step of the story: ``run`` tells it on the stage and returns a one-line outcome."""

    title: str
    run: Callable[[Stage], str]

"""``celery -A ops.drills.tenfold``: the project's Celery app, except that every task it
publishes (syncs, submits, polls, retries, beat's schedule) goes out ten times with one task
id: what lost acknowledgements, replayed messages or a doubled publish look like to workers.
"""

from __future__ import annotations

import uuid
from typing import Any

from celery import Celery

from workers.celery.app import celery_app

TIMES = 10


def tenfold(target: Celery, times: int = TIMES) -> Celery:
    """Make ``target.send_task`` publish each task ``times`` times (same id); returns it."""
    send = target.send_task

    def send_many(name: str, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        options["task_id"] = options.get("task_id") or str(uuid.uuid4())
        result = None
        for _ in range(times):
            result = send(name, args, kwargs, **options)
        return result

    target.send_task = send_many  # type: ignore[method-assign]
    return target


_app: Celery | None = None


def __getattr__(name: str) -> Any:
    # `celery -A ops.drills.tenfold` looks up `app`: only then is the project's app patched.
    # Patching at import made every later publish of a process that merely imported
    # ``tenfold`` (a test session running the drills) go out ten times.
    global _app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _app is None:
        _app = tenfold(celery_app)
    return _app

"""``celery -A ops.drills.tenfold``: the project's Celery app, except that every task it
publishes (syncs, submits, polls, retries, beat's schedule) goes out ten times with one task
id: what lost acknowledgements, replayed messages or a doubled publish look like to workers.
"""

from __future__ import annotations

import uuid
from typing import Any

from celery import Celery

from workers.celery_app import celery_app

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


app = tenfold(celery_app)

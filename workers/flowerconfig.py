"""Flower's configuration file (``--conf=workers/flowerconfig.py``; Flower executes it).

Flower 2.2 serves ``/metrics`` to anyone, although every other page wants the basic auth
(``FLOWER_BASIC_AUTH``, read from the environment, never the command line). Here its
handler is swapped for one that wants the same credentials before Flower builds its routes.
Why not a proxy or an option: ops/decisions/api.md.
"""

from __future__ import annotations

from flower import urls
from flower.views.monitor import Metrics
from tornado import web


class AuthenticatedMetrics(Metrics):
    """Flower's Prometheus page, behind the basic auth of the rest of Flower."""

    @web.authenticated
    async def get(self) -> None:
        await super().get()


def guarded(route: object) -> object:
    """The route, with Flower's Metrics handler swapped for the authenticated one."""
    if isinstance(route, tuple) and route[1] is Metrics:
        return (route[0], AuthenticatedMetrics, *route[2:])
    return route  # a tornado URLSpec or another page: left as it is


# Flower's app reads this very list when it is built, after the config file ran.
urls.handlers[:] = [guarded(route) for route in urls.handlers]
assert AuthenticatedMetrics in [route[1] for route in urls.handlers if isinstance(route, tuple)]

"""Prometheus metrics: ledger gauges computed on each scrape, plus the process's counters.

The gauges are read from the ledger when scraped (never kept in memory), so every API
process reports the same numbers and nothing drifts after a restart. The AWS call and
throttle counters are the ones ``workers.adapters.aws.call`` registers in the default registry: they
count what this process sent.

Gauges (all ``grantledger_``):
  grants{state}                      grants per state
  operations{state}                  operations per state
  expiry_lag_seconds                 how far the oldest overdue ACTIVE grant is past its
                                     expires_at, by the database clock (0: nothing overdue)
  stuck_revocations                  revocations that keep failing (see `grantledger status`)
  queue_depth{queue}                 messages waiting per Celery queue (Redis broker only)
  last_full_sync_age_seconds         since the last full sync was recorded (absent: never)
  scim_push_stopped                  1 while SCIM refuses our token (tasks/sync/scim_health.py)
  ledger_up                          1 when the ledger could be read for this scrape
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from models.errors import GrantledgerError
from models.ledger import tables
from models.ledger.enums import GrantState, OperationState
from models.ledger.kv import state_updated_at
from tasks.admin.status import ledger_status
from workers.status import queue_depths

LAST_FULL_SYNC_KEY = "last_full_sync"


@dataclass(frozen=True)
class LedgerGauges:
    """What the ledger says at one database time."""

    grants_by_state: dict[str, int]
    operations_by_state: dict[str, int]
    expiry_lag_seconds: float
    stuck_revocations: int
    last_full_sync_age_seconds: float | None
    scim_push_stopped: bool = False


def read_gauges(session: Session) -> LedgerGauges:
    """Read the gauges from the ledger (counts from ``ledger_status``, ages by its clock)."""
    status = ledger_status(session)
    now = status.database_time
    oldest_overdue = session.scalar(select(func.min(tables.Grant.expires_at)).where(
        tables.Grant.state == GrantState.ACTIVE, tables.Grant.expires_at <= now))
    synced_at = state_updated_at(session, LAST_FULL_SYNC_KEY)
    return LedgerGauges(
        grants_by_state=status.grants_by_state,
        operations_by_state=status.operations_by_state,
        expiry_lag_seconds=(now - oldest_overdue).total_seconds() if oldest_overdue else 0.0,
        stuck_revocations=status.stuck_revocations,
        last_full_sync_age_seconds=(now - synced_at).total_seconds() if synced_at else None,
        scim_push_stopped=status.scim_outage is not None,
    )


def ledger_families(gauges: LedgerGauges) -> list[Metric]:
    """The gauges as metric families; every state appears, zero when none are in it."""
    grants = GaugeMetricFamily("grantledger_grants", "Grants per state", labels=["state"])
    for grant_state in GrantState:
        grants.add_metric([grant_state.value],
                          gauges.grants_by_state.get(grant_state.value, 0))
    operations = GaugeMetricFamily("grantledger_operations", "Operations per state",
                                   labels=["state"])
    for operation_state in OperationState:
        operations.add_metric([operation_state.value],
                              gauges.operations_by_state.get(operation_state.value, 0))
    families: list[Metric] = [
        grants, operations,
        GaugeMetricFamily("grantledger_expiry_lag_seconds", "Seconds the oldest overdue ACTIVE "
                          "grant is past its expiry (database clock)",
                          value=gauges.expiry_lag_seconds),
        GaugeMetricFamily("grantledger_stuck_revocations", "Revocations that keep failing",
                          value=gauges.stuck_revocations),
        GaugeMetricFamily("grantledger_scim_push_stopped", "1 while SCIM refuses the token: "
                          "membership changes are not reaching Identity Center",
                          value=int(gauges.scim_push_stopped)),
    ]
    if gauges.last_full_sync_age_seconds is not None:
        families.append(GaugeMetricFamily(
            "grantledger_last_full_sync_age_seconds", "Seconds since the last full sync",
            value=gauges.last_full_sync_age_seconds))
    return families


def queue_family(depths: dict[str, int | None]) -> Metric:
    """Queue depth per queue; queues of unknown depth (in-process broker) are left out."""
    family = GaugeMetricFamily("grantledger_queue_depth", "Messages waiting per Celery queue",
                               labels=["queue"])
    for queue, depth in sorted(depths.items()):
        if depth is not None:
            family.add_metric([queue], depth)
    return family


class LedgerCollector(Collector):
    """Collects the gauges from one runtime's ledger and broker at scrape time."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        yield from self._ledger()
        yield from self._queues()

    def _ledger(self) -> Iterable[Metric]:
        try:
            with self.runtime.sessions() as session:
                gauges = read_gauges(session)
        except (GrantledgerError, SQLAlchemyError):  # a scrape reports the ledger down
            return [_up(0)]
        return [*ledger_families(gauges), _up(1)]

    def _queues(self) -> Iterable[Metric]:
        from redis import RedisError

        from workers.celery.app import QUEUES

        try:
            return [queue_family(queue_depths(self.runtime.settings, QUEUES))]
        except RedisError:  # an unreachable broker leaves the gauge out; /readyz says why
            return []


def _up(value: int) -> Metric:
    return GaugeMetricFamily("grantledger_ledger_up", "1 when the ledger was readable for "
                             "this scrape", value=value)


def ledger_registry(runtime: Any) -> CollectorRegistry:
    """A registry holding the ledger collector of ``runtime`` (one per API app)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(runtime))
    return registry


def render_metrics(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition: process counters (AWS calls) and the ledger gauges."""
    import workers.adapters.aws.call  # noqa: F401 - registers the AWS counters in REGISTRY

    return generate_latest(REGISTRY) + generate_latest(registry)

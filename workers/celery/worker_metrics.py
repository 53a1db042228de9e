"""A worker's Prometheus endpoint: the counters of its pool processes, summed.

A prefork worker runs every task in a child process, so the AWS call, throttle, error and
latency figures (``workers.adapters.aws.call``), the operations settled and the stuck
revocations (``tasks.provisioning.polling``) and the foreign-assignment gauge
(``tasks.sync.applier``) live in the children, where no scraper can reach them.
prometheus_client's multiprocess mode has each process write its values to files in one
directory (``PROMETHEUS_MULTIPROC_DIR``); the worker's main process serves their sum over
HTTP (``--metrics-port``). Counters of a child that died (kill -9, a restart of the pool)
stay in the sum, so they never go backwards while the worker runs.

prometheus_client chooses between in-memory and file-backed values when it is first
imported, so the directory must be set before any task module is loaded: ``grantledger
worker`` calls ``prepare`` before it starts Celery. With ``celery -A workers.celery.app
worker``, set ``PROMETHEUS_MULTIPROC_DIR`` (an empty directory) and
``GRANTLEDGER_WORKER_METRICS_PORT`` yourself; the ``worker_init`` hook then serves it.
The ledger's own gauges (grants and operations by state, expiry lag, ...) stay on the
API's ``/metrics``: they are read from the database, the same from every process.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from models.errors import ConfigError

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_served: dict[str, Any] = {}  # the server this process runs, if any (one per process)


def multiprocess_directory() -> Path | None:
    """The directory this process writes its metric values to, if multiprocess is on."""
    path = os.environ.get(MULTIPROC_ENV)
    return Path(path) if path else None


def prepare(directory: str | None = None) -> Path:
    """Turn multiprocess mode on for this process and the children it forks.

    ``directory``: where the values go (default: ``PROMETHEUS_MULTIPROC_DIR``, else a
    temporary directory removed at exit). Files left by an earlier run are removed, or
    their counts would be added to this run's.
    """
    if "prometheus_client" in sys.modules and multiprocess_directory() is None:
        raise ConfigError(
            "worker metrics: prometheus_client was imported before the metrics directory "
            "was set, so this process keeps its counters in memory",
            hint="call workers.celery.worker_metrics.prepare() before importing the task modules")
    chosen = directory or os.environ.get(MULTIPROC_ENV)
    path = Path(chosen) if chosen else Path(tempfile.mkdtemp(prefix="grantledger-metrics-"))
    if not chosen:
        atexit.register(shutil.rmtree, path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def serve(*, port: int, host: str) -> Any:
    """Serve the sum of every process's values on ``host:port``; the HTTP server.

    Raises ConfigError when the port cannot be bound (in use, or not allowed).
    """
    if "server" in _served:
        return _served["server"]
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    directory = multiprocess_directory()
    if directory is None:
        raise ConfigError(f"worker metrics: {MULTIPROC_ENV} is not set",
                          hint="call workers.celery.worker_metrics.prepare() first")
    registry = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(registry, path=str(directory))
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as err:
        raise ConfigError(
            f"worker metrics: cannot listen on {host}:{port} ({err.strerror or err})",
            hint="choose another --metrics-port (GRANTLEDGER_WORKER_METRICS_PORT), or 0 to "
                 "serve no worker metrics") from err
    _served["server"] = server
    log.info("worker metrics on http://%s:%d/metrics (directory %s)", host, port, directory)
    return server


def skip() -> None:
    """This process serves no worker metrics (``--metrics-port 0``), whatever the
    settings say."""
    _served.setdefault("server", None)


def serve_from_settings(settings: Any) -> Any | None:
    """The ``worker_init`` hook's part: serve when a port is set and multiprocess mode is on
    (``grantledger worker`` has served already, so that a port in use stops it at start:
    Celery only logs what a signal handler raises)."""
    port = settings.worker_metrics_port
    if not port or "server" in _served:
        return _served.get("server")
    if multiprocess_directory() is None:
        log.warning("GRANTLEDGER_WORKER_METRICS_PORT is set but %s is not: the pool "
                    "processes' counters cannot be collected; serving no worker metrics "
                    "(run `grantledger worker`, or set %s to an empty directory)",
                    MULTIPROC_ENV, MULTIPROC_ENV)
        return None
    return serve(port=port, host=settings.worker_metrics_host)

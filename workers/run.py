"""`grantledger run`: the single-node install, worker + beat + API from one command.

Two shapes, chosen by the broker (``plan_run``):

- **in-process** (``memory://``, the embedded default): the Celery worker and the beat loop
  run as threads of this process (``workers.embedded.EmbeddedWorker``), next to the API.
  The ledger is SQLite by default (migrated on first use); PostgreSQL works too.
- **Redis**: the worker and beat are child processes running `grantledger worker` and
  `grantledger beat` (a real prefork worker and the redbeat scheduler, exactly what the
  compose stack runs), supervised by this process, which serves the API. Children rather
  than threads: Celery's prefork pool and its signal handling want a main thread of their
  own, and a worker child killed by the kernel must not take the API down with it. If a
  child exits on its own, `run` stops everything and exits 1 (let the service manager
  restart the whole node).

With ``GRANTLEDGER_AWS_MODE=sandbox`` and no ``GRANTLEDGER_AWS_ENDPOINT_URL``, a sandbox
Identity Center is served from this process (the worker children reach it over HTTP).
The ledger is migrated to head first: on a single node, `run` is its own prestart step.
SIGTERM or Ctrl-C: the API stops taking requests, the worker finishes its task, the children
get SIGTERM (then SIGKILL after ``CHILD_GRACE`` seconds), and the process exits 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from models.errors import ConfigError
from workers.runtime import Runtime, set_runtime, with_inprocess_sandbox
from workers.settings import Settings

CHILD_GRACE = 30.0  # seconds a worker gets to finish its task after SIGTERM
WATCH_EVERY = 0.5
SANDBOX_SETTINGS = ("aws_endpoint_url", "scim_url", "instance_arn", "identity_store_id")


@dataclass(frozen=True)
class RunPlan:
    """What runs where: the worker in this process or as children, the sandbox here or not."""

    in_process_worker: bool
    in_process_sandbox: bool


def plan_run(settings: Settings) -> RunPlan:
    """The shape of this node, from the settings alone (pure)."""
    in_process = settings.broker_url.startswith("memory")
    if not in_process and not settings.uses_redis:
        raise ConfigError(f"GRANTLEDGER_BROKER_URL {settings.broker_url!r} is neither "
                          "memory:// nor redis:// nor sentinel://",
                          hint="unset it for the in-process worker, or point it at Redis")
    if not in_process and settings.database_url.startswith("sqlite"):
        raise ConfigError(
            "a SQLite ledger cannot be shared by separate worker processes (Redis broker)",
            hint="use PostgreSQL (GRANTLEDGER_DATABASE_URL=postgresql+psycopg://...), or "
                 "unset GRANTLEDGER_BROKER_URL for the in-process worker")
    return RunPlan(in_process_worker=in_process,
                   in_process_sandbox=settings.aws_mode == "sandbox"
                   and not settings.aws_endpoint_url)


def describe(plan: RunPlan, settings: Settings, *, api_url: str) -> list[str]:
    """What `run` tells people on startup (pure)."""
    ledger = settings.database_url.split("@")[-1]  # no credentials on screen
    lines = [f"API         {api_url} (docs: {api_url}/docs)",
             f"ledger      {ledger}",
             "worker      " + ("Celery worker and beat in this process (in-process broker)"
                              if plan.in_process_worker else
                              f"`grantledger worker` and `grantledger beat` as child "
                              f"processes on {settings.broker_url.split('@')[-1]}")]
    if plan.in_process_sandbox:
        lines.append(f"AWS         GRANTLEDGER_AWS_MODE=sandbox and no "
                     f"GRANTLEDGER_AWS_ENDPOINT_URL: a sandbox Identity Center serves from "
                     f"this process at {settings.aws_endpoint_url} (its state ends with it);"
                     " point the CLI at it with:")
        lines += [f"              export {line}" for line in sandbox_exports(settings)]
    else:
        lines.append(f"AWS         {settings.aws_mode}, {settings.aws_endpoint_url or 'AWS'}")
    if not settings.api_token:
        lines.append("API token   none set: no admin; per-user tokens from "
                     "`grantledger token create --user U` work")
    return lines


def sandbox_exports(settings: Settings) -> list[str]:
    """``NAME=value`` lines that point another process at this node's sandbox (pure)."""
    exports = [f"GRANTLEDGER_{name.upper()}={getattr(settings, name)}"
               for name in SANDBOX_SETTINGS if getattr(settings, name)]
    if settings.scim_token:
        exports.append(f"GRANTLEDGER_SCIM_TOKEN={settings.scim_token.get_secret_value()}")
    return exports


def child_environment(settings: Settings) -> dict[str, str]:
    """This process's environment, plus where the in-process sandbox listens."""
    return {**os.environ, **dict(line.split("=", 1) for line in sandbox_exports(settings))}


class Children:
    """`grantledger worker` and `grantledger beat` as supervised child processes."""

    def __init__(self, env: dict[str, str], *, concurrency: int, loglevel: str) -> None:
        cli = [sys.executable, "-m", "workers.cli.main"]
        self.commands = [cli + ["worker", "--concurrency", str(concurrency),
                                "--loglevel", loglevel], cli + ["beat", "--loglevel", loglevel]]
        self.env = env
        self.processes: list[subprocess.Popen[bytes]] = []
        self.died = threading.Event()
        self._stopping = threading.Event()

    def start(self) -> Children:
        # A process group of their own: Ctrl-C in a terminal reaches only `run`, which then
        # stops them in order (otherwise they would stop on their own and look crashed).
        self.processes = [subprocess.Popen(command, env=self.env, process_group=0)
                          for command in self.commands]
        threading.Thread(target=self._watch, name="grantledger-children", daemon=True).start()
        return self

    def _watch(self) -> None:
        while not self._stopping.wait(WATCH_EVERY):
            if any(p.poll() is not None for p in self.processes):
                self.died.set()
                return

    def stop(self) -> None:
        """SIGTERM every child still running, then SIGKILL what outlives the grace."""
        self._stopping.set()
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=CHILD_GRACE)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def prepare_runtime(settings: Settings, plan: RunPlan) -> Runtime:
    """The runtime of this node: the ledger migrated, a sandbox started if the plan says."""
    from models.ledger import migrate

    sandbox = None
    if plan.in_process_sandbox:
        settings, sandbox = with_inprocess_sandbox(settings)
    migrate.upgrade(settings.database_url)
    return Runtime(settings, sandbox=sandbox)


def serve(settings: Settings, *, host: str, port: int, concurrency: int,
          console: Console) -> int:
    """Run the node until SIGTERM / Ctrl-C (0) or until a worker child dies (1)."""
    import uvicorn

    from workers.api import create_app
    from workers.logs import configure

    plan = plan_run(settings)
    configure(settings)
    with ExitStack() as stack:
        runtime = prepare_runtime(settings, plan)
        stack.callback(runtime.close)
        server = uvicorn.Server(uvicorn.Config(
            create_app(runtime), host=host, port=port,
            log_level=runtime.settings.log_level.lower(), log_config=None))
        stack.enter_context(_stop_on_signals(server))
        died = stack.enter_context(_workers(runtime, plan, concurrency=concurrency))
        for line in describe(plan, runtime.settings, api_url=f"http://{host}:{port}"):
            console.print(line, highlight=False, soft_wrap=True)
        _stop_when(died, server)
        if not server.should_exit:
            server.run()
        if died.is_set():
            console.print("[red]the worker or beat process exited; stopping the node[/] "
                          "(its own output above says why)")
            return 1
    return 0


@contextmanager
def _workers(runtime: Runtime, plan: RunPlan, *, concurrency: int) -> Iterator[threading.Event]:
    """The worker and beat for this plan; yields an event set if they die on their own."""
    if plan.in_process_worker:
        from workers.embedded import EmbeddedWorker

        with EmbeddedWorker(runtime, beat=True):
            yield threading.Event()  # threads of this process: they live and die with it
        return
    set_runtime(runtime)
    children = Children(child_environment(runtime.settings), concurrency=concurrency,
                        loglevel=runtime.settings.log_level).start()
    try:
        yield children.died
    finally:
        children.stop()


def _stop_when(event: threading.Event, server: Any) -> None:
    def watch() -> None:
        event.wait()
        server.should_exit = True

    threading.Thread(target=watch, name="grantledger-stop", daemon=True).start()


@contextmanager
def _stop_on_signals(server: Any) -> Iterator[None]:
    """SIGTERM and SIGINT stop the API gracefully, even before uvicorn installs its own
    handlers; uvicorn re-raises the signal it caught after shutdown, and this handler
    turns that into the clean exit that follows, not a second interruption."""
    def stop(signum: int, frame: Any) -> None:
        server.should_exit = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

"""`grantledger run`: the single-node install, worker + beat + API from one command.

Two shapes, chosen by the broker (``plan_run``):

- **in-process** (``memory://``, the embedded default): the Celery worker and the beat loop
  run as threads of this process (``workers.celery.embedded.EmbeddedWorker``), next to the API.
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
get SIGTERM, and the process exits 0. All of it within ``GRANTLEDGER_RUN_STOP_TIMEOUT``
seconds of the signal (``StopDeadline``): what is still running then is killed (children
with SIGKILL) and named, and `run` exits 3 (``STOP_MISSED``).
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from models.errors import ConfigError
from workers.runtime import Runtime, set_runtime, with_inprocess_sandbox
from workers.settings import Settings

STOP_MISSED = 3  # exit code: something did not stop within GRANTLEDGER_RUN_STOP_TIMEOUT
KILL_MARGIN = 1.0  # seconds past the deadline before the backstop kills everything
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


class StopDeadline:
    """From the first stop request, ``seconds`` for everything in ``running`` to stop; then
    each is killed, the names printed, and the process exits ``STOP_MISSED``."""

    def __init__(self, seconds: float, console: Console) -> None:
        self.seconds, self.console = seconds, console
        self.running: dict[str, Callable[[], None]] = {}  # what is still up -> how to kill it
        self.missed: list[str] = []  # what a part had to kill itself (children)
        self.finished = threading.Event()
        self._at: float | None = None
        self._lock = threading.Lock()

    def begin(self) -> None:
        with self._lock:
            if self._at is not None:
                return
            self._at = time.monotonic() + self.seconds
        threading.Thread(target=self._watch, name="grantledger-stop-deadline",
                         daemon=True).start()

    def remaining(self) -> float:
        return self.seconds if self._at is None else max(0.0, self._at - time.monotonic())

    def report(self, names: list[str]) -> None:
        self.console.print(f"[red]did not stop within {self.seconds:g}s[/] "
                           f"(GRANTLEDGER_RUN_STOP_TIMEOUT), killed: {', '.join(names)}")

    def _watch(self) -> None:
        # The children are killed at the deadline by `Children.stop`; this is the backstop
        # for a part that hangs elsewhere, a moment later so that the orderly path wins.
        if self.finished.wait(self.seconds + KILL_MARGIN):
            return
        names = sorted({*self.running, *self.missed})
        for kill in list(self.running.values()):
            kill()
        self.report(names or ["(unknown)"])
        os._exit(STOP_MISSED)  # the main thread is the one stuck: no clean way out


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

    def name(self, process: subprocess.Popen[bytes]) -> str:
        return f"{self.commands[self.processes.index(process)][3]} (pid {process.pid})"

    def stop(self, deadline: StopDeadline) -> None:
        """SIGTERM every child still running; SIGKILL (their process group: the worker's pool
        too) what is still running at the deadline, recorded in ``deadline.missed``."""
        self._stopping.set()
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=deadline.remaining())
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                deadline.missed.append(self.name(process))
            deadline.running.pop(self.name(process), None)


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
    deadline = StopDeadline(settings.run_stop_timeout, console)
    with ExitStack() as stack:
        stack.callback(deadline.finished.set)
        runtime = prepare_runtime(settings, plan)
        stack.callback(runtime.close)
        server = uvicorn.Server(uvicorn.Config(
            create_app(runtime), host=host, port=port,
            log_level=runtime.settings.log_level.lower(), log_config=None,
            timeout_graceful_shutdown=max(1, int(settings.run_stop_timeout / 4))))
        stack.enter_context(_stop_on_signals(server, deadline))
        died = stack.enter_context(_workers(runtime, plan, concurrency=concurrency,
                                            deadline=deadline))
        for line in describe(plan, runtime.settings, api_url=f"http://{host}:{port}"):
            console.print(line, highlight=False, soft_wrap=True)
        _stop_when(died, server)
        deadline.running["API"] = _nothing
        if not server.should_exit:
            server.run()
        deadline.begin()
        deadline.running.pop("API")
        if died.is_set():
            console.print("[red]the worker or beat process exited; stopping the node[/] "
                          "(its own output above says why)")
            return 1
    if deadline.missed:
        deadline.report(deadline.missed)
        return STOP_MISSED
    return 0


def _nothing() -> None:
    """Killing a thread of this process: the exit that follows does it."""


@contextmanager
def _workers(runtime: Runtime, plan: RunPlan, *, concurrency: int,
             deadline: StopDeadline) -> Iterator[threading.Event]:
    """The worker and beat for this plan; yields an event set if they die on their own."""
    if plan.in_process_worker:
        from workers.celery.embedded import EmbeddedWorker

        deadline.running["worker and beat (threads of this process)"] = _nothing
        with EmbeddedWorker(runtime, beat=True):
            yield threading.Event()  # threads of this process: they live and die with it
        deadline.running.pop("worker and beat (threads of this process)")
        return
    set_runtime(runtime)
    children = Children(child_environment(runtime.settings), concurrency=concurrency,
                        loglevel=runtime.settings.log_level).start()
    for process in children.processes:
        deadline.running[children.name(process)] = functools.partial(
            os.killpg, process.pid, signal.SIGKILL)
    try:
        yield children.died
    finally:
        children.stop(deadline)


def _stop_when(event: threading.Event, server: Any) -> None:
    def watch() -> None:
        event.wait()
        server.should_exit = True

    threading.Thread(target=watch, name="grantledger-stop", daemon=True).start()


@contextmanager
def _stop_on_signals(server: Any, deadline: StopDeadline) -> Iterator[None]:
    """SIGTERM and SIGINT stop the API gracefully (and start the stop deadline), even before
    uvicorn installs its own handlers; uvicorn re-raises the signal it caught after
    shutdown, and this handler turns that into the clean exit that follows, not a second
    interruption."""
    def stop(signum: int, frame: Any) -> None:
        deadline.begin()
        server.should_exit = True

    uvicorn_stop = server.handle_exit  # what uvicorn installs while it serves

    def stop_serving(signum: int, frame: Any) -> None:
        deadline.begin()
        uvicorn_stop(signum, frame)

    server.handle_exit = stop_serving

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

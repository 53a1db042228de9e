"""What a user first runs: `demo` (the whole story in one process, nothing to set up) and
`run` (worker + beat + API in one process: the single-node install)."""

from __future__ import annotations

import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from workers.cli.app import app

if TYPE_CHECKING:
    from workers.demo.story import StepResult
    from workers.runtime import Runtime

DEMO_WIDTH = 140  # columns when stdout is not a terminal (a log, a test, a pipe)


@app.command("demo")
def demo_command(
    keep: Path | None = typer.Option(None, "--keep", metavar="DIR", file_okay=False,
                                     help="Keep the demo's SQLite ledger in DIR (created if "
                                          "missing; must not hold an earlier demo's)."),
    settle: float = typer.Option(1.0, "--settle", min=0.0, help="Seconds the sandbox keeps "
                                 "each assignment operation IN_PROGRESS, as AWS does."),
    portal: bool = typer.Option(False, "--portal", help="After the story, serve the web "
                                "portal on the demo's ledger (local sign-in as any demo "
                                "user) until Ctrl-C."),
    portal_port: int = typer.Option(8080, "--portal-port", help="The portal's port "
                                    "(on 127.0.0.1)."),
) -> None:
    """Watch grantledger work, with nothing to set up: a sandbox Identity Center, a SQLite
    ledger and the Celery worker, all in this process.

    Walks the whole story (preview, import, policy, an owner's change, requests approved,
    an expiry, a promotion, drift, a refused self-review) through the real services and
    tasks, checks every step and prints a timeline. Exit 0 when every step went as
    expected. Takes under a minute.

    Examples:
      grantledger demo
      grantledger demo --keep ./demo-ledger --settle 2
      grantledger demo --portal       (then open http://127.0.0.1:8080)
    """
    from workers.demo.story import use_inprocess_broker

    use_inprocess_broker()  # before the Celery app is imported
    from workers.demo.story import intro, run_demo, timeline_table

    console = Console()
    if not console.is_terminal:
        console = Console(width=DEMO_WIDTH)
    started = time.monotonic()
    place = nullcontext(str(keep)) if keep else tempfile.TemporaryDirectory(
        prefix="grantledger-demo-")
    def summary(results: list[StepResult]) -> None:
        console.print(timeline_table(results))
        console.print(f"[bold green]the story checks out:[/] {len(results)} steps in "
                      f"{time.monotonic() - started:.1f}s.")

    def serve(runtime: Runtime, results: list[StepResult]) -> None:
        summary(results)
        serve_portal(runtime, port=portal_port, console=console)

    with place as workdir:
        intro(console, workdir=Path(workdir), settle=settle)
        results = run_demo(workdir=Path(workdir), settle=settle, console=console,
                           then=serve if portal else None)
    if not portal:
        summary(results)
    console.print(f"the demo ledger was {f'kept in {keep}' if keep else 'removed'}.")


def serve_portal(runtime: Runtime, *, port: int, console: Console) -> None:
    """Serve the API and the portal on the demo's runtime until Ctrl-C."""
    import uvicorn

    from workers.api import create_app

    console.print(f"[bold]the portal:[/] http://127.0.0.1:{port}/ (embedded mode: sign in "
                  "as any demo user, e.g. alice or bob; Ctrl-C stops)")
    uvicorn.run(create_app(runtime), host="127.0.0.1", port=port, log_level="warning",
                log_config=None)


@app.command("run")
def run_command(
    host: str | None = typer.Option(None, help="API address (default: GRANTLEDGER_API_HOST, "
                                    "127.0.0.1)."),
    port: int | None = typer.Option(None, help="API port (default: GRANTLEDGER_API_PORT, "
                                    "8080)."),
    concurrency: int = typer.Option(2, "--concurrency", "-c", min=1, help="Worker processes "
                                    "(Redis broker only; the in-process worker runs one task "
                                    "at a time)."),
) -> None:
    """Run a whole single-node install: worker, beat and the HTTP API, until Ctrl-C / SIGTERM.

    With the embedded defaults (SQLite, in-process broker) the worker and beat are threads of
    this process; with GRANTLEDGER_BROKER_URL=redis://... they are `grantledger worker` and
    `grantledger beat` child processes (the ledger must then be PostgreSQL). With
    GRANTLEDGER_AWS_MODE=sandbox and no GRANTLEDGER_AWS_ENDPOINT_URL a sandbox Identity Center
    is served from this process. The ledger is migrated to head first. Exit 1 if the worker
    or beat process dies.

    Stopping (SIGTERM / Ctrl-C): the API finishes open requests, the worker its task, within
    GRANTLEDGER_RUN_STOP_TIMEOUT seconds (20) of the signal; whatever still runs then is
    killed and named, and `run` exits 3. Logs: routine lines (beat sending sweeps, tasks
    received and done) only with GRANTLEDGER_LOG_LEVEL=DEBUG.

    Examples:
      grantledger run --port 8080
      GRANTLEDGER_DATABASE_URL=postgresql+psycopg://... GRANTLEDGER_BROKER_URL=redis://... \\
        GRANTLEDGER_API_TOKEN=... grantledger run --host 0.0.0.0
    """
    from workers.cli.output import stderr
    from workers.run import serve
    from workers.settings import get_settings

    settings = get_settings().check_serving()
    code = serve(settings, host=host or settings.api_host,
                 port=settings.api_port if port is None else port, concurrency=concurrency,
                 console=stderr)
    raise typer.Exit(code)

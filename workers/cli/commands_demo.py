"""What a user first runs: `demo` (the whole story in one process, nothing to set up) and
`run` (worker + beat + API in one process: the single-node install)."""

from __future__ import annotations

import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import typer
from rich.console import Console

from workers.cli.app import app

DEMO_WIDTH = 140  # columns when stdout is not a terminal (a log, a test, a pipe)


@app.command("demo")
def demo_command(
    keep: Path | None = typer.Option(None, "--keep", metavar="DIR", file_okay=False,
                                     help="Keep the demo's SQLite ledger in DIR (created if "
                                          "missing; must not hold an earlier demo's)."),
    settle: float = typer.Option(1.0, "--settle", min=0.0, help="Seconds the sandbox keeps "
                                 "each assignment operation IN_PROGRESS, as AWS does."),
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
    """
    from workers.demo import use_inprocess_broker

    use_inprocess_broker()  # before the Celery app is imported
    from workers.demo import intro, run_demo, timeline_table

    console = Console()
    if not console.is_terminal:
        console = Console(width=DEMO_WIDTH)
    started = time.monotonic()
    place = nullcontext(str(keep)) if keep else tempfile.TemporaryDirectory(
        prefix="grantledger-demo-")
    with place as workdir:
        intro(console, workdir=Path(workdir), settle=settle)
        results = run_demo(workdir=Path(workdir), settle=settle, console=console)
    console.print(timeline_table(results))
    where = f"kept in {keep}" if keep else "removed"
    console.print(f"[bold green]the story checks out:[/] {len(results)} steps in "
                  f"{time.monotonic() - started:.1f}s; the demo ledger was {where}.")


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

"""`grantledger demo`: the seed's story, told by the real system in one process.

A SQLite ledger in a directory of its own, the in-process broker with the embedded Celery
worker and beat (``workers.celery.embedded``), and an in-process sandbox Identity Center seeded from
ops/examples/sandbox-small.yaml whose operations stay IN_PROGRESS for ``settle`` seconds, as
AWS's do. The nine steps (``workers.demo.steps``) go through the same services, tasks and
AWS calls a deployment uses. Each step checks what the story expects; the first surprise
stops the demo with an error naming the step (exit 1).

    results = run_demo(workdir=Path("/tmp/demo"), settle=1.0, console=Console())
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from models.errors import ConfigError, GrantledgerError, InputError
from workers.demo.stage import Stage, Step
from workers.demo.views import AwsDelta, aws_delta, describe_calls
from workers.runtime import REPO_ROOT, Runtime, with_inprocess_sandbox
from workers.settings import Settings, reset_settings_cache

LEDGER_FILE = "ledger.db"
# The memory transport names a host anyway; naming it spares a kombu warning per connection.
DEMO_BROKER = "memory://localhost/"
FAILED_HINT = ("this is a bug in grantledger or its sandbox: report it with the output "
               "above; rerun with --keep DIR to inspect the ledger (sqlite3 DIR/ledger.db)")


@dataclass(frozen=True)
class StepResult:
    """One step as the timeline shows it; times in seconds since the demo started."""

    number: int
    title: str
    started: float
    took: float
    outcome: str
    aws: AwsDelta


def examples_dir() -> Path:
    """ops/examples of the checkout, else of the working directory (the image's /app)."""
    for base in (REPO_ROOT, Path.cwd()):
        if (base / "ops" / "examples" / "demo").is_dir():
            return base / "ops" / "examples"
    raise ConfigError("cannot find ops/examples/demo (the demo's fixture and policy)",
                      hint="run the demo from a grantledger checkout, or install it with "
                           "`pip install -e .`")


def use_inprocess_broker() -> None:
    """Make this process's Celery app use the in-process broker, whatever the environment
    says: the demo is one process. Call before anything imports ``workers.celery.app``."""
    import sys

    os.environ["GRANTLEDGER_BROKER_URL"] = DEMO_BROKER
    reset_settings_cache()
    app = sys.modules.get("workers.celery.app")
    if app is not None and not str(app.celery_app.conf.broker_url).startswith("memory"):
        raise ConfigError("the Celery app was built for another broker before the demo began",
                          hint="unset GRANTLEDGER_BROKER_URL and run `grantledger demo` again")


def demo_settings(workdir: Path) -> Settings:
    """The environment's settings, with what the story depends on pinned."""
    return Settings(database_url=f"sqlite:///{workdir / LEDGER_FILE}", broker_url=DEMO_BROKER,
                    aws_mode="sandbox", aws_endpoint_url=None, drift_mode="report",
                    notify_webhook_url=None, notify_slack_url=None,
                    # `demo --portal`: local sign-in as any demo user; alice sees Audit and
                    # Status through the auditor role (ops/examples/demo/elevation.yaml)
                    oidc_issuer=None, oidc_client_id=None)


def check_workdir(workdir: Path) -> None:
    """The story starts from an empty ledger: refuse a directory holding an earlier one."""
    if (workdir / LEDGER_FILE).exists():
        raise InputError(f"{workdir / LEDGER_FILE} exists: the demo starts from a fresh ledger",
                         hint="pass --keep with a new or empty directory")
    workdir.mkdir(parents=True, exist_ok=True)


def run_demo(*, workdir: Path, settle: float, console: Console,
             then: Callable[[Runtime, list[StepResult]], None] | None = None
             ) -> list[StepResult]:
    """Tell the story; the results of every step, or a GrantledgerError naming the first
    step that did not go as expected. ``then`` runs after the story while the worker and the
    sandbox still do (``--portal`` serves the portal there)."""
    from workers.celery.embedded import EmbeddedWorker
    from workers.demo.steps import story

    check_workdir(workdir)
    examples = examples_dir()
    settings, sandbox = with_inprocess_sandbox(
        demo_settings(workdir), fixture=examples / "sandbox-small.yaml", settle_delay=settle)
    runtime = Runtime(settings, sandbox=sandbox)
    try:
        with EmbeddedWorker(runtime) as worker:
            stage = Stage(runtime, worker, console)
            results = [run_step(stage, number, step)
                       for number, step in enumerate(story(examples / "demo"), 1)]
            if then is not None:
                then(runtime, results)
            return results
    finally:
        runtime.close()


def run_step(stage: Stage, number: int, step: Step) -> StepResult:
    """Run one step between two looks at the sandbox, and show what it did in AWS."""
    stage.console.rule(f"[bold]{number}. {step.title}", align="left")
    calls, held = stage.sandbox.calls(), stage.sandbox.assignments()
    stage.outside.clear()
    stage.seen.clear()
    started = stage.now()
    try:
        outcome = step.run(stage)
    except GrantledgerError as err:
        raise GrantledgerError(f'demo step {number} "{step.title}" failed: {err.message}',
                               hint=err.hint or FAILED_HINT) from err
    aws = aws_delta(calls_before=calls, calls_after=stage.sandbox.calls(), outside=stage.outside,
                    assignments_before=held, assignments_after=stage.sandbox.assignments(),
                    assignments_seen=stage.seen)
    show_aws(stage, aws)
    took = stage.now() - started
    stage.console.print(f"[green]ok[/] {outcome} [dim](+{started:.1f}s, took {took:.1f}s)[/]")
    return StepResult(number, step.title, started, took, outcome, aws)


def show_aws(stage: Stage, aws: AwsDelta) -> None:
    """A step's calls (grantledger's, then the demo's own) and the assignments it moved."""
    names = stage.names()
    print_ = stage.console.print
    print_(f"  AWS, by grantledger: {describe_calls(aws.calls)}")
    if aws.outside:
        print_(f"  AWS, by the demo itself (boto3): {describe_calls(aws.outside)}")
    for label in sorted(map(names.assignment, aws.created)):
        print_(f"  [green]+ assignment[/] {label}")
    for label in sorted(map(names.assignment, aws.deleted)):
        print_(f"  [red]- assignment[/] {label}")


def timeline_rows(results: Iterable[StepResult]) -> list[dict[str, Any]]:
    """One row per step for the closing timeline (pure)."""
    return [{"step": f"{r.number}. {r.title}", "at": f"+{r.started:.1f}s",
             "took": f"{r.took:.1f}s", "aws calls": str(r.aws.total),
             "changes": str(r.aws.writes),
             "assignments": f"+{len(r.aws.created)} -{len(r.aws.deleted)}",
             "outcome": r.outcome} for r in results]


def timeline_table(results: Iterable[StepResult]) -> Table:
    """The closing timeline: one row per step."""
    rows = timeline_rows(results)
    columns = ("step", "at", "took", "aws calls", "changes", "assignments")
    table = Table(*columns, title="timeline (AWS calls made by grantledger; changes = "
                  "creates, deletes and SCIM writes)", title_justify="left")
    for row in rows:
        table.add_row(*(row[c] for c in columns))
    return table


def intro(console: Console, *, workdir: Path, settle: float) -> None:
    """What the demo is made of, before the story starts."""
    console.print(
        "[bold]grantledger demo[/]: everything in this one process, nothing installed.\n"
        f"  ledger      SQLite in {workdir}\n"
        "  worker      a Celery worker and beat on the in-process broker\n"
        "  AWS         a sandbox IAM Identity Center (ops/examples/sandbox-small.yaml); "
        f"assignment operations settle after {settle:g}s\n"
        "  the story   the seed's: preview, import, policy, owners, requests, expiry, "
        "promotion, drift, self-review")

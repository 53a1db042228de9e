"""`grantledger demo` as a user runs it: one subprocess, a fresh directory, no services.

The environment points GRANTLEDGER_DATABASE_URL and GRANTLEDGER_BROKER_URL at places that do
not exist: the demo must not use them (it brings its own ledger, broker and Identity Center).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.conftest import REPO

DEMO_LIMIT = 90.0  # seconds; the demo aims at well under a minute
STEP_TITLES = (
    "1. Preview Identity Center", "2. Import with a default owner", "3. Apply the demo roles",
    "4. An owner adds a member", "5. A role request and a resource request",
    "6. A 10-second request expires", "7. A request promoted to an access list",
    "8. Drift: an assignment made behind grantledger's back", "9. Self-review is refused",
)


def demo(*args: str, cwd: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GRANTLEDGER_")}
    environment |= {"GRANTLEDGER_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none",
                    "GRANTLEDGER_BROKER_URL": "redis://127.0.0.1:1/0", "PYTHONPATH": str(REPO),
                    "COLUMNS": "160", **env}
    started = time.monotonic()
    finished = subprocess.run([str(Path(sys.executable).with_name("grantledger")), "demo", *args],
                              cwd=cwd, env=environment, capture_output=True, text=True,
                              timeout=DEMO_LIMIT + 30)
    return finished, time.monotonic() - started


def test_the_demo_tells_the_whole_story_in_one_process(
        tmp_path: Path, record_property: Callable[[str, object], None]) -> None:
    ledger_dir = tmp_path / "kept"
    finished, took = demo("--keep", str(ledger_dir), cwd=tmp_path)
    record_property("demo_seconds", round(took, 1))
    out = finished.stdout
    assert finished.returncode == 0, f"{out[-3000:]}\n{finished.stderr[-3000:]}"
    for title in STEP_TITLES:
        assert title in out, f"step missing from the timeline: {title}"
    assert out.count("\nok ") == len(STEP_TITLES)
    assert "the story checks out: 9 steps" in out
    # what the story is about, as the timeline shows it
    assert "frank is a member of the Developers group" in out
    assert out.count("AWS: IN_PROGRESS") >= 3 and "AWS: SUCCEEDED" in out
    assert "user:frank -> Production/AdministratorAccess" in out
    assert "cannot review their own request" in out
    assert "Traceback" not in out + finished.stderr and "WARNING" not in out
    with sqlite3.connect(ledger_dir / "ledger.db") as ledger:
        states = dict(ledger.execute("SELECT state, count(*) FROM access_requests GROUP BY state"))
    assert states == {"APPROVED": 1, "EXPIRED": 1, "PROMOTED": 1, "PENDING": 1}


def test_a_step_that_goes_wrong_stops_the_demo_with_its_name(tmp_path: Path) -> None:
    # The demo policy nests the imported developers list one level deep; allowing no
    # nesting makes step 3's apply fail for real.
    finished, _ = demo(cwd=tmp_path, GRANTLEDGER_MAX_NESTING_DEPTH="1")
    assert finished.returncode == 1
    assert 'demo step 3 "Apply the demo roles and lists' in finished.stderr
    assert "nest deeper than 1" in finished.stderr
    assert "2. Import with a default owner" in finished.stdout
    assert "the story checks out" not in finished.stdout


def test_a_kept_directory_with_an_earlier_ledger_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ledger.db").write_bytes(b"")
    finished, _ = demo("--keep", str(tmp_path), cwd=tmp_path)
    assert finished.returncode == 2
    assert "starts from a fresh ledger" in finished.stderr

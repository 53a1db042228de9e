"""`grantledger api` as a child process on an embedded SQLite ledger, for the e2e tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.stack_support import free_port
from tests.waiting import eventually

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0  # a deadline, not a wait: a loaded CI machine starts slowly


@contextmanager
def running_api(tmp_path: Path, *, env: dict[str, str] | None = None,
                ready: str = "/healthz") -> Iterator[str]:
    """The base URL of a `grantledger api` serving ``tmp_path/ledger.db`` once ``ready``
    answers 200; the process is stopped afterwards."""
    with running_api_process(tmp_path, env=env, ready=ready) as (url, _):
        yield url


@contextmanager
def running_api_process(tmp_path: Path, *, env: dict[str, str] | None = None,
                        ready: str = "/healthz") -> Iterator[tuple[str, int]]:
    """``running_api``, with the process id (to measure it)."""
    port = free_port()
    values = {k: v for k, v in os.environ.items() if not k.startswith("GRANTLEDGER_")}
    values |= {"GRANTLEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
               "PYTHONPATH": str(REPO), **(env or {})}
    log = tmp_path / "api.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.cli.main", "api", "--port", str(port)],
        cwd=tmp_path, env=values, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        def answers() -> bool:
            assert process.poll() is None, log.read_text()
            try:
                return httpx.get(f"{url}{ready}", timeout=1.0).status_code == 200
            except httpx.TransportError:
                return False

        eventually(answers, what="grantledger api started", timeout=START_TIMEOUT,
                   tail=log.read_text)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

"""`grantledger api` as a process: the embedded install (SQLite, no admin token) serves the
probes at once and refuses anonymous /v1 calls."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.waiting import eventually

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRANTLEDGER_")}
    env |= {"GRANTLEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
            "PYTHONPATH": str(REPO)}
    log = tmp_path / "api.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.cli.main", "api", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        def answers() -> bool:
            assert process.poll() is None, log.read_text()
            try:
                httpx.get(f"{url}/healthz", timeout=1.0)
            except httpx.TransportError:
                return False
            return True

        eventually(answers, what="grantledger api started", timeout=START_TIMEOUT,
                   tail=log.read_text)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_embedded_api_serves_probes_and_refuses_anonymous_calls(served: str) -> None:
    assert httpx.get(f"{served}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{served}/readyz").status_code == 200  # SQLite migrated at start
    refused = httpx.get(f"{served}/v1/users")
    assert refused.status_code == 401
    assert "GRANTLEDGER_API_TOKEN" in refused.json()["hint"]
    assert "grantledger_ledger_up 1.0" in httpx.get(f"{served}/metrics").text

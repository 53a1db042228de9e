"""`grantledger api` as a process: the embedded install (SQLite, no admin token) serves the
probes at once and refuses anonymous /v1 calls."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.api_process import running_api


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    with running_api(tmp_path) as url:
        yield url


def test_embedded_api_serves_probes_and_refuses_anonymous_calls(served: str) -> None:
    assert httpx.get(f"{served}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{served}/readyz").status_code == 200  # SQLite migrated at start
    refused = httpx.get(f"{served}/v1/users")
    assert refused.status_code == 401
    assert "GRANTLEDGER_API_TOKEN" in refused.json()["hint"]
    assert "grantledger_ledger_up 1.0" in httpx.get(f"{served}/metrics").text

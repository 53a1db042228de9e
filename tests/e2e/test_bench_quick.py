"""The `--quick` variants of the scale benchmarks (issue 22: approval to access, a large
organisation, the API under load), each run as its own process the way RESULTS.md tells
people to run them. Asserted: each completes and prints its figures; never a timing (the
figures are for RESULTS.md, and this machine's load is not the product's)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ops.bench.common import RESULTS_DIR
from tests.conftest import service_missing

REPO = Path(__file__).resolve().parents[2]
# module, lines its report must print, its results file
QUICK = [
    ("bench_approval", ["overhead_s", "to_create_s", "settle_seen_s", "p99 overhead"],
     "approval"),
    ("bench_org", ["preview", "import", "no_change_sync", "churn_sync", "peak_rss_mib"], "org"),
    ("bench_api", ["my_grants", "requestable", "list_members", "create_request", "approve",
                   "ledger:"], "api"),
]


@pytest.fixture(scope="module")
def bench_services(pg_url: str) -> None:
    """PostgreSQL is the machine's (``pg_url`` proves it answers); each benchmark starts its
    own redis-server."""
    if shutil.which("redis-server") is None:
        service_missing("redis-server", FileNotFoundError("redis-server is not installed"))


@pytest.mark.slow
@pytest.mark.parametrize(("module", "printed", "results"), QUICK, ids=[q[0] for q in QUICK])
def test_quick_benchmark_completes_and_prints_its_figures(
        module: str, printed: list[str], results: str, bench_services: None):
    done = subprocess.run([sys.executable, "-m", f"ops.bench.{module}", "--quick"], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for figure in printed:
        assert figure in done.stdout, f"{module} --quick did not print {figure!r}"
    written = json.loads((RESULTS_DIR / f"{results}.json").read_text())
    assert written["quick"] is True
    assert written["command"] == f"python -m ops.bench.{module} --quick"

"""The fast subset of the fault drills (ops/drills), and the quick planner and flattening
scale benchmark. Each drill runs a real workload on real worker processes, beat, a private
redis-server, PostgreSQL and the sandbox, injects its fault, and passes when every invariant
holds after the system recovered by itself. Timed figures are reported, never asserted.

The full set: ``python -m ops.drills all`` (see ops/drills/README.md).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import pytest

from ops.drills.catalog import DRILLS
from ops.drills.runner import QUICK, Drill, run
from ops.drills.stack import stop_shared_sandbox
from tests.conftest import service_missing

FAST_SUBSET = [drill for drill in DRILLS if drill.ci]


@pytest.fixture(scope="module")
def drill_services(pg_url: str) -> Iterator[None]:
    """PostgreSQL is the machine's (``pg_url`` proves it answers); Redis is started per
    drill from the installed ``redis-server``."""
    if shutil.which("redis-server") is None:
        service_missing("redis-server", FileNotFoundError("redis-server is not installed"))
    yield
    stop_shared_sandbox()


def test_the_fast_subset_is_the_one_ci_runs():
    assert [d.name for d in FAST_SUBSET] == [
        "kill9-child-after-call", "redis-flushall", "duplicate-delivery",
        "workers-down-past-expiries"]


@pytest.mark.parametrize("drill", FAST_SUBSET, ids=lambda drill: drill.name)
def test_drill_invariants_hold_after_recovery(drill: Drill, drill_services: None,
                                             record_property: Callable[[str, object], None]):
    result = run(drill, scale=QUICK)
    record_property("drill", result.row())
    assert result.status == "PASS", "\n".join(
        [*map(str, result.violations), f"logs: {result.notes.get('logs')}"])
    assert result.notes["converged_after_s"] >= 0
    assert not result.violations


def test_quick_scale_benchmark_reports_growth(
        record_property: Callable[[str, object], None]):
    from ops.bench.bench_scale import QUICK_SIZES, flatten, planner

    plans, flats = planner(QUICK_SIZES), flatten(QUICK_SIZES)
    record_property("planner", [(r["grants"], r["plan_seconds"]) for r in plans])
    record_property("flatten", [(r["memberships"], r["flatten_s"]) for r in flats])
    assert [r["size_growth"] for r in plans[1:]] == [10.0]
    assert all(r["changes"] > 0 for r in plans)
    assert plans[0]["naive_seconds"] > 0 and "plan_seconds_growth" in plans[1]
    assert flats[1]["lists"] == 10 * flats[0]["lists"]

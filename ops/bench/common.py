"""What every benchmark shares: AWS's limits they measure against, the machine it ran on,
a printed table, the JSON file ``ops/bench/results/<name>.json``, best-of timing and
percentiles."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SSO_ADMIN_RATE = 20.0  # AWS's sso-admin requests/s, the ceiling every bound is taken from
OUTSTANDING_CREATES = 15  # AWS's cap on CreateAccountAssignment operations in flight


def machine() -> dict[str, Any]:
    """nproc, RAM, Python, platform and date: printed with every result."""
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {"nproc": os.cpu_count(), "ram_gib": round(pages / 2**30, 1),
            "python": platform.python_version(), "platform": platform.platform(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A fixed-width text table of ``columns`` of ``rows``."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    body = ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join([line, "-" * len(line), *body])


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return "-" if value is None else str(value)


def write_results(name: str, results: dict[str, Any], *, command: str) -> Path:
    """Write ``results`` (plus machine and command) to ``results/<name>.json``."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps({"benchmark": name, "command": command, "machine": machine(),
                                **results}, indent=2, default=str) + "\n")
    print(f"wrote {path}")
    return path


def command(module: str, *, quick: bool = False, extra: str = "") -> str:
    """The command line a result was produced by, for its JSON file."""
    return f"python -m ops.bench.{module}" + (" --quick" if quick else "") + extra


def best_of(repeat: int, run: Callable[[], Any]) -> tuple[float, Any]:
    """The best wall time of ``repeat`` runs of ``run``, in seconds, and its last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
    return best, result


def percentile(values: Sequence[float], share: float) -> float | None:
    """The ``share`` (0..1) percentile, nearest-rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def spread(values: Sequence[float]) -> dict[str, float | None]:
    """p50 / p99 / max / mean of ``values``, rounded to milliseconds."""
    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 3)
    return {"p50": rounded(percentile(values, 0.50)), "p99": rounded(percentile(values, 0.99)),
            "max": rounded(max(values) if values else None),
            "mean": rounded(statistics.fmean(values) if values else None)}


def call_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Calls made between two ``sandbox.calls()`` snapshots, by ``service:Operation``."""
    return {k: after[k] - before.get(k, 0) for k in sorted(after) if after[k] > before.get(k, 0)}


def by_service(calls: dict[str, int]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for name, count in calls.items():
        service = name.split(":", 1)[0]
        totals[service] = totals.get(service, 0) + count
    return totals

"""workers.celery.worker_metrics without a worker: the multiprocess directory and its guard, and a
port that cannot be bound (the endpoint with real pool processes: tests/e2e)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from models.errors import ConfigError
from workers.celery import worker_metrics

REPO = Path(__file__).resolve().parents[2]

# A fresh interpreter: prepare() must run before prometheus_client is first imported.
CHILD = """
import json, os, sys
from pathlib import Path
from workers.celery import worker_metrics
path = worker_metrics.prepare(sys.argv[1])
from tasks.provisioning.polling import SETTLED
SETTLED.labels(kind="create_assignment", outcome="SUCCEEDED").inc()
print(json.dumps({"env": os.environ["PROMETHEUS_MULTIPROC_DIR"], "path": str(path),
                  "files": sorted(p.name for p in Path(path).iterdir())}))
"""


def test_prepare_empties_the_directory_and_the_counters_write_to_it(tmp_path: Path):
    (tmp_path / "counter_999999.db").write_bytes(b"left by an earlier run")
    (tmp_path / "keep.txt").write_text("not a metrics file")
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["env"] == seen["path"] == str(tmp_path)
    assert "counter_999999.db" not in seen["files"]
    assert "keep.txt" in seen["files"]
    assert any(name.startswith("counter_") for name in seen["files"])


def test_prepare_refuses_once_prometheus_client_kept_counters_in_memory(monkeypatch, tmp_path):
    import prometheus_client  # noqa: F401 - this test process has imported it already

    monkeypatch.delenv(worker_metrics.MULTIPROC_ENV, raising=False)
    with pytest.raises(ConfigError, match="imported before the metrics directory"):
        worker_metrics.prepare(str(tmp_path))


def test_a_port_in_use_is_a_config_error_naming_it(monkeypatch, tmp_path):
    monkeypatch.setenv(worker_metrics.MULTIPROC_ENV, str(tmp_path))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}") as caught:
            worker_metrics.serve(port=port, host="127.0.0.1")
    assert "--metrics-port" in (caught.value.hint or "")


def test_no_port_or_no_directory_serves_nothing(monkeypatch):
    from workers.settings import Settings

    monkeypatch.delenv(worker_metrics.MULTIPROC_ENV, raising=False)
    assert worker_metrics.serve_from_settings(Settings()) is None
    assert worker_metrics.serve_from_settings(Settings(worker_metrics_port=1)) is None

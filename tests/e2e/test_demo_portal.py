"""`grantledger demo --portal`: after the story, the portal serves the demo's ledger with the
embedded mode's local sign-in, until the process is stopped."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.e2e.conftest import REPO
from tests.stack_support import free_port
from tests.waiting import eventually

DEADLINE = 150.0


def test_demo_portal_signs_in_a_demo_user_locally(tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "demo.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRANTLEDGER_")}
    with open(log, "wb") as out:
        demo = subprocess.Popen(
            [str(Path(sys.executable).with_name("grantledger")), "demo", "--portal",
             "--portal-port", str(port), "--settle", "0.2"],
            cwd=tmp_path, env=env | {"PYTHONPATH": str(REPO), "COLUMNS": "160"}, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        def serving() -> bool:
            assert demo.poll() is None, log.read_text()[-3000:]
            try:
                return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        eventually(serving, what="the demo's portal", timeout=DEADLINE,
                   tail=lambda: log.read_text()[-3000:])
        assert "the story checks out" in log.read_text()
        with httpx.Client(base_url=url) as browser:
            picker = browser.get("/auth/signin", params={"next": "/reviews"})
            assert "Embedded mode" in picker.text and 'value="bob"' in picker.text
            token = re.search(r'name="csrf_token" value="([^"]+)"', picker.text).group(1)
            signed = browser.post("/auth/local", data={"user": "bob", "csrf_token": token})
            assert signed.status_code == 303 and signed.headers["location"] == "/reviews"
            reviews = browser.get("/reviews")
            assert reviews.status_code == 200 and "bob" in reviews.text
            assert browser.get("/audit").status_code == 403  # bob holds no auditor role
        with httpx.Client(base_url=url) as browser:  # alice does, through the demo's policy
            picker = browser.get("/auth/signin", params={"next": "/audit"})
            token = re.search(r'name="csrf_token" value="([^"]+)"', picker.text).group(1)
            browser.post("/auth/local", data={"user": "alice", "csrf_token": token})
            assert browser.get("/audit").status_code == 200
            assert browser.get("/status").status_code == 200
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()

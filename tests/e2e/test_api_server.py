"""`grantledger api` as a process: the embedded install (SQLite, no admin token) serves the
probes at once and refuses anonymous /v1 calls."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.api_process import running_api_process

ADMIN_TOKEN = "a-long-enough-admin-token-" + "x" * 20
MiB = 1024 * 1024


def api_process(tmp_path: Path, **settings: str):
    """`grantledger api` over an embedded ledger with these settings: its URL and pid."""
    env = {f"GRANTLEDGER_{name.upper()}": value for name, value in settings.items()}
    return running_api_process(tmp_path, env=env)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    with api_process(tmp_path) as (url, _):
        yield url


@pytest.fixture
def served_with_admin(tmp_path: Path) -> Iterator[tuple[str, int]]:
    with api_process(tmp_path, api_token=ADMIN_TOKEN, max_body_bytes=str(MiB)) as server:
        yield server


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def chunks(total: int, *, size: int = MiB) -> Iterator[bytes]:
    """``total`` bytes of a JSON-looking body, streamed (the client never holds it all)."""
    block = b" " * size
    for _ in range(total // size):
        yield block


def post_stream(url: str, total: int, *, headers: dict[str, str] | None = None) -> int:
    """The status of a POST of ``total`` streamed bytes (chunked unless a length is given)."""
    with httpx.Client(timeout=60) as client:
        return client.post(url, content=chunks(total), headers=headers or {}).status_code


def test_embedded_api_serves_probes_and_refuses_anonymous_calls(served: str) -> None:
    assert httpx.get(f"{served}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{served}/readyz").status_code == 200  # SQLite migrated at start
    refused = httpx.get(f"{served}/v1/users")
    assert refused.status_code == 401
    assert "GRANTLEDGER_API_TOKEN" in refused.json()["hint"]
    assert "grantledger_ledger_up 1.0" in httpx.get(f"{served}/metrics").text


def test_an_anonymous_huge_upload_is_refused_before_it_is_read(
        served_with_admin: tuple[str, int]) -> None:
    url, pid = served_with_admin
    before = peak_rss_mib(pid)
    chunked = post_stream(f"{url}/v1/requests", 200 * MiB)
    declared = post_stream(f"{url}/v1/requests", 200 * MiB,
                           headers={"Content-Length": str(200 * MiB)})
    assert peak_rss_mib(pid) - before < 20, (before, peak_rss_mib(pid))
    assert (chunked, declared) == (401, 413)


def test_bodies_over_the_limit_are_413_for_the_admin_too(
        served_with_admin: tuple[str, int]) -> None:
    url, pid = served_with_admin
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    before = peak_rss_mib(pid)
    assert post_stream(f"{url}/v1/tokens", 50 * MiB, headers=admin) == 413  # chunked
    assert post_stream(f"{url}/v1/tokens", 2 * MiB,
                       headers=admin | {"Content-Length": str(2 * MiB)}) == 413
    yaml_body = admin | {"Content-Type": "application/yaml"}
    assert post_stream(f"{url}/v1/apply", 4 * MiB, headers=yaml_body) == 200  # under 5 MiB
    assert post_stream(f"{url}/v1/apply", 6 * MiB, headers=yaml_body) == 413
    assert peak_rss_mib(pid) - before < 40, (before, peak_rss_mib(pid))
    refused = httpx.post(f"{url}/v1/tokens", content=b" " * (MiB + 1), headers=admin)
    assert refused.status_code == 413 and "1 MiB" in refused.json()["error"]


def test_docs_need_no_internet(served: str) -> None:
    page = httpx.get(f"{served}/docs")
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert page.status_code == 200 and len(assets) == 3
    assert "cdn" not in page.text and "https://" not in page.text
    for asset in assets:
        assert asset.startswith("/docs/assets/"), asset
        assert httpx.get(f"{served}{asset}").status_code == 200, asset


def test_yaml_bombs_and_deep_nesting_are_located_422s(
        served_with_admin: tuple[str, int]) -> None:
    from tests.unit.test_resources import alias_bomb

    url, pid = served_with_admin
    yaml_body = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/yaml"}
    before = peak_rss_mib(pid)
    deep = "kind: user\nspec: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n"
    for body, line, text in ((alias_bomb(), 10, "aliases expand"), (deep, 2, "nested deeper")):
        answer = httpx.post(f"{url}/v1/apply", content=body, headers=yaml_body, timeout=10)
        assert answer.status_code == 422, answer.text
        [problem] = answer.json()["errors"]
        assert problem["line"] == line and text in problem["message"]
    assert peak_rss_mib(pid) - before < 20

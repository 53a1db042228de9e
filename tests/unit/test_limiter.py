"""The in-process limiter (embedded mode): rate windows, create slots, leases."""

from __future__ import annotations

import threading
import time

import pytest

from models.errors import AwsThrottled
from tests.waiting import eventually
from workers.limiter import make_limiter, rate_item
from workers.settings import Settings


def embedded(**overrides) -> Settings:
    return Settings(broker_url="memory://", **overrides)




@pytest.mark.parametrize(("rate", "text"), [
    (20.0, "20 per 1 second"), (2.5, "5 per 2 second"), (0.5, "1 per 2 second"),
])
def test_rates_become_moving_windows(rate, text):
    assert str(rate_item(rate)) == text


def test_spare_share_is_the_free_part_of_the_rate_window():
    limiter = make_limiter(embedded(sso_admin_rate=0.4))  # 2 per 5 s: no window passes here
    assert limiter.spare_share("sso-admin") == 1.0
    limiter.acquire("sso-admin", timeout=0.1)
    assert limiter.spare_share("sso-admin") == 0.5
    assert limiter.spare_share("organizations") == 1.0  # no configured rate


def test_memory_backend_in_embedded_mode():
    assert make_limiter(embedded()).backend == "memory"


def test_acquire_passes_the_rate_then_raises_throttled_on_timeout():
    limiter = make_limiter(embedded(sso_admin_rate=5))
    for _ in range(5):
        limiter.acquire("sso-admin", timeout=0.1)
    with pytest.raises(AwsThrottled, match="local rate limit for sso-admin"):
        limiter.acquire("sso-admin", timeout=0.1)
    assert limiter.usage()["rates"]["sso-admin"] == {
        "limit": "5 per 1 second", "used": 5, "remaining": 0}


def test_acquire_blocks_until_the_window_moves():
    limiter = make_limiter(embedded(identitystore_rate=4))
    started = time.monotonic()
    for _ in range(6):  # 4 at once, 2 more once the first second has passed
        limiter.acquire("identitystore", timeout=5)
    assert 0.9 <= time.monotonic() - started < 2.0


def test_unconfigured_family_is_not_limited():
    limiter = make_limiter(embedded(sso_admin_rate=1))
    for _ in range(50):
        limiter.acquire("organizations", timeout=0)
    assert "organizations" not in limiter.usage()["rates"]


def test_create_slots_cap_release_and_renewal():
    limiter = make_limiter(embedded(max_outstanding_creates=3))
    assert all(limiter.try_acquire_create_slot(f"op-{n}", ttl=60) for n in range(3))
    assert not limiter.try_acquire_create_slot("op-3", ttl=60)
    assert limiter.try_acquire_create_slot("op-0", ttl=60)  # renewing holds no new slot
    limiter.release_create_slot("op-1")
    assert limiter.try_acquire_create_slot("op-3", ttl=60)
    assert limiter.outstanding_creates() == 3


def test_create_slot_leases_expire():
    limiter = make_limiter(embedded(max_outstanding_creates=2))
    limiter.try_acquire_create_slot("killed-worker-1", ttl=0.2)
    limiter.try_acquire_create_slot("killed-worker-2", ttl=0.2)
    assert not limiter.try_acquire_create_slot("new", ttl=60)
    eventually(lambda: limiter.outstanding_creates() == 0, what="slots released",
               timeout=3.0, every=0.01)
    assert limiter.try_acquire_create_slot("new", ttl=60)


def test_create_cap_holds_across_threads():
    limiter = make_limiter(embedded(max_outstanding_creates=4))
    granted: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for k in range(20):
            if limiter.try_acquire_create_slot(f"t{n}-{k}", ttl=60):
                with lock:
                    granted.append(f"t{n}-{k}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 4 == limiter.outstanding_creates()


def test_memory_turns_one_holder_a_period():
    from workers.limiter import MemoryTurns

    turns = MemoryTurns()
    assert turns.take("round", 30) == 0.0
    assert 29 < turns.take("round", 30) <= 30
    assert turns.take("other", 30) == 0.0

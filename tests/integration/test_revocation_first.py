"""Revocation waits for no single process and for no create: the expiry sweep's one lock
and the workers' watchdog (``workers/watchdog.py``), and the limiter's priority for a
revocation's calls (``workers.limiter.revocation_priority``), on real Redis and PostgreSQL
and, for the priority, several real OS processes competing for the same permits."""

from __future__ import annotations

import multiprocessing
import time

import pytest
import redis

from models.ledger import migrate
from models.ledger.locks import SWEEP_LOCK
from tasks import events
from tasks.provisioning.expiry import SWEPT_TURN, locked_sweep
from tasks.sync.engine import single_flight
from tests.waiting import eventually
from workers.limiter import KEY_PREFIX, make_limiter, revocation_priority
from workers.runtime import Runtime
from workers.settings import Settings
from workers.watchdog import check_once

pytestmark = pytest.mark.redis

RATE = 5  # permits per second: small, so the competitors saturate it at once
COMPETITORS = 6
GRANTED = "test:revocation-first:granted"  # normal permits granted, counted by competitors


@pytest.fixture
def clean_redis(redis_url: str) -> str:
    client = redis.Redis.from_url(redis_url)
    for key in [*client.scan_iter(match=f"{KEY_PREFIX}*"), GRANTED]:
        client.delete(key)
    return redis_url


def limiter_settings(redis_url: str, **overrides) -> Settings:
    return Settings(broker_url=redis_url, database_url="postgresql://unused", **overrides)


def compete(redis_url: str, until: float) -> None:
    """Child process: a create's calls, as fast as the limiter allows, counting each."""
    limiter = make_limiter(limiter_settings(redis_url, sso_admin_rate=RATE))
    client = redis.Redis.from_url(redis_url)
    for index in range(15):  # and every create slot taken
        limiter.try_acquire_create_slot(f"create-{index}", ttl=60)
    while time.time() < until:
        limiter.acquire("sso-admin", timeout=30)
        client.incr(GRANTED)


@pytest.fixture
def saturated(clean_redis: str):
    """COMPETITORS processes taking every permit they can and every create slot; a limiter
    of this process on the same Redis, once they saturate the rate."""
    ctx = multiprocessing.get_context("spawn")
    until = time.time() + 180  # killed at the end; spawned interpreters start slowly
    competitors = [ctx.Process(target=compete, args=(clean_redis, until))
                   for _ in range(COMPETITORS)]
    for process in competitors:
        process.start()
    try:
        client = redis.Redis.from_url(clean_redis)
        eventually(lambda: int(client.get(GRANTED) or 0) >= 2 * RATE,
                   what="the competitors saturating the rate", timeout=120)
        yield make_limiter(limiter_settings(clean_redis, sso_admin_rate=RATE)), client
    finally:
        for process in competitors:
            process.kill()
            process.join(10)


def test_a_delete_gets_a_permit_before_creates_that_saturate_the_budget(saturated):
    limiter, client = saturated
    assert limiter.outstanding_creates() == 15  # the create budget is full too
    jumped = []
    for _ in range(3):
        before = int(client.get(GRANTED) or 0)
        with revocation_priority():
            limiter.acquire("sso-admin", timeout=10)
        jumped.append(int(client.get(GRANTED) or 0) - before)
    # Fair competition would hand the others about 6 of every 7 permits (about 18 here);
    # with priority, at most the one that may slip in while the delete registers.
    assert sum(jumped) <= 3, f"creates got {jumped} permits while a delete waited"
    assert limiter.priority_waiting("sso-admin") == 0


def test_without_priority_a_call_waits_its_turn_among_creates(saturated):
    """The same scene without ``revocation_priority``: the others keep getting permits
    (what the test above would see on the old limiter)."""
    limiter, client = saturated
    before = int(client.get(GRANTED) or 0)
    for _ in range(6):  # twice the priority test's permits: a loaded machine slows the others
        limiter.acquire("sso-admin", timeout=30)
    assert int(client.get(GRANTED) or 0) - before > 3


@pytest.fixture
def runtimes(pg_url: str, clean_redis: str):
    """Runtimes on PostgreSQL and Redis with a given expiry interval (stale after two)."""
    migrate.upgrade(pg_url)
    made: list[Runtime] = []

    def make(interval: float) -> Runtime:
        made.append(Runtime(Settings(database_url=pg_url, broker_url=clean_redis,
                                     expiry_interval=interval, expiry_stale_intervals=2)))
        return made[-1]

    yield make
    for runtime in made:
        runtime.close()


def test_a_sweep_never_runs_while_another_holds_the_sweep_lock(runtimes):
    runtime = runtimes(10.0)  # the sweep's mark outlives the test, however loaded the machine
    with single_flight(runtime, SWEEP_LOCK) as held:
        assert held
        assert locked_sweep(runtime=runtime) is None
    assert locked_sweep(runtime=runtime) is not None
    assert runtime.limiter.take_turn(SWEPT_TURN, period=1.0) > 0  # the sweep said it ran


def test_the_watchdog_asks_for_a_sweep_once_sweeps_stop(runtimes):
    runtime = runtimes(1.0)
    published: list = []
    assert locked_sweep(runtime=runtime) is not None
    kwargs = {"limiter": runtime.limiter, "settings": runtime.settings,
              "publish": published.extend}
    assert not check_once(**kwargs)  # a sweep just ran
    eventually(lambda: check_once(**kwargs), what="the watchdog's sweep", timeout=15,
               every=0.05)
    assert [n.task for n in published] == [events.EXPIRY_SWEEP]
    assert not check_once(**kwargs)  # one watchdog's turn: the others stand by

"""The sandbox's token bucket, faults and paging, with a hand-driven clock."""

from __future__ import annotations

import pytest

from workers.sandbox.identity_center import ServiceFault
from workers.sandbox.limits import Faults, TokenBucket
from workers.sandbox.sso_admin import page


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(20, clock=clock)
    assert sum(bucket.take() for _ in range(50)) == 20
    clock.now += 1.0
    assert sum(bucket.take() for _ in range(50)) == 20
    clock.now += 0.1
    assert sum(bucket.take() for _ in range(50)) == 2


def test_bucket_never_holds_more_than_its_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(10, burst=5, clock=clock)
    clock.now += 100
    assert sum(bucket.take() for _ in range(50)) == 5


def test_no_rate_means_no_limit() -> None:
    bucket = TokenBucket(None)
    assert all(bucket.take() for _ in range(10_000))


def test_throttle_ratio_uses_the_chance() -> None:
    draws = iter([0.1, 0.6, 0.49])
    faults = Faults(throttle_ratio=0.5, chance=lambda: next(draws))
    assert [faults.throttles_now() for _ in range(3)] == [True, False, True]
    assert not Faults().throttles_now()


def test_forced_failures_count_down() -> None:
    faults = Faults(fail_next=1, failure_reason="nope")
    assert faults.take_forced_failure() == "nope"
    assert faults.take_forced_failure() is None


def test_page_walks_every_item_once() -> None:
    items = list(range(7))
    seen, token = [], None
    while True:
        answer = page(items, {"MaxResults": 3, **({"NextToken": token} if token else {})}, "X")
        seen += answer["X"]
        token = answer.get("NextToken")
        if not token:
            break
    assert seen == items


@pytest.mark.parametrize("params", [{"MaxResults": 101}, {"MaxResults": 0},
                                    {"NextToken": "not-a-token"}])
def test_page_refuses_what_aws_refuses(params) -> None:
    with pytest.raises(ServiceFault) as raised:
        page([1, 2], params, "X")
    assert raised.value.code == "ValidationException"

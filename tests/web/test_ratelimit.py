"""The API's token buckets (web/ratelimit.py) on an injected monotonic clock: burst,
refill, Retry-After, the organisation-wide bucket, bounded memory."""

from __future__ import annotations

import pytest

from tsa_server.fees.quotas import RateLimit
from tsa_server.web.ratelimit import RateLimiter, TokenBuckets, retry_after_header


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_burst_then_refill_at_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(RateLimit(2.0, 3), None, clock=clock)
    assert [limiter.take("k1", "o") for _ in range(3)] == [None, None, None]
    refused = limiter.take("k1", "o")
    assert refused is not None and refused.scope == "key"
    assert refused.retry_after == pytest.approx(0.5)
    assert retry_after_header(refused.retry_after) == "1"
    clock.t += 0.25
    assert limiter.take("k1", "o").retry_after == pytest.approx(0.25)
    clock.t += 0.25
    assert limiter.take("k1", "o") is None  # one token back after 1 / rate
    assert limiter.take("k1", "o") is not None
    assert limiter.take("k2", "o") is None  # another key has its own bucket
    clock.t += 100
    assert limiter.describe("k1", "o")["key"] == {"per_second": 2.0, "burst": 3, "available": 3}


def test_account_bucket_is_shared_and_a_refusal_spends_nothing() -> None:
    clock = Clock()
    limiter = RateLimiter.from_settings(1.0, 2, 2, clock=clock)  # account: 2/s, burst 4
    assert limiter is not None
    assert limiter.accounts is not None and limiter.accounts.limit == RateLimit(2.0, 4)
    for key in ("a", "a", "b", "b"):
        assert limiter.take(key, "org") is None
    refused = limiter.take("c", "org")  # a fresh key, but the organisation is spent
    assert refused is not None and refused.scope == "account"
    assert refused.retry_after == pytest.approx(0.5)
    assert limiter.keys is not None and limiter.keys.tokens("c", clock.t) == 2.0
    assert limiter.take("x", "other") is None


def test_disabled_and_invalid_settings() -> None:
    assert RateLimiter.from_settings(0, 40, 4) is None
    only_key = RateLimiter.from_settings(5, 10, 0)
    assert only_key is not None and only_key.accounts is None
    assert only_key.describe("k", "o")["account"] is None
    with pytest.raises(ValueError):
        RateLimiter.from_settings(5, 0, 1)


def test_memory_is_bounded_and_full_buckets_are_dropped() -> None:
    clock = Clock()
    buckets = TokenBuckets(RateLimit(1.0, 2), clock=clock, max_buckets=100)
    for i in range(100):
        buckets.spend(f"old{i}", clock.t)
    assert len(buckets) == 100
    clock.t += 10  # every old bucket has refilled: dropping it loses nothing
    buckets.spend("new", clock.t)
    assert len(buckets) == 1
    for i in range(250):  # all busy at once: least recently used half goes
        clock.t += 0.001
        buckets.spend(f"busy{i}", clock.t)
    assert len(buckets) <= 100
    assert buckets.tokens("busy249", clock.t) < 2

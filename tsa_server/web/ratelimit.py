"""In-memory token buckets for the /api/v1 API (REC-10 rate limits).

Every authenticated API request spends one token from its API key's bucket and one from
its organisation's bucket (all the organisation's keys together); a request either
spends both or neither. A refused request gets HTTP 429 with ``Retry-After`` (web/auth.py
``require``). The rule is fees.quotas.RateLimit's token bucket on a monotonic clock
(injectable for tests): `burst` requests at once, refilled at `per_second`.

Memory stays bounded: a bucket that has refilled completely is the same as no bucket,
so idle buckets (of revoked, expired or unused keys) are dropped when the table grows.
The buckets live in one server process and start full after a restart.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tsa_server.fees.quotas import RateLimit

Monotonic = Callable[[], float]
#: Buckets kept before idle (full) ones are swept.
MAX_BUCKETS = 10_000


@dataclass(frozen=True)
class Refusal:
    """Why a request was refused: which bucket and how long until a token is there."""

    scope: str  # "key" or "account"
    retry_after: float  # seconds
    limit: RateLimit


class TokenBuckets:
    """One bucket per name under one RateLimit."""

    def __init__(
        self, limit: RateLimit, *, clock: Monotonic = time.monotonic, max_buckets: int = MAX_BUCKETS
    ) -> None:
        self.limit = limit
        self.clock = clock
        self.max_buckets = max_buckets
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, at)

    def __len__(self) -> int:
        return len(self._buckets)

    def tokens(self, name: str, now: float | None = None) -> float:
        """Tokens available to `name` now (burst when it has no bucket)."""
        now = self.clock() if now is None else now
        held = self._buckets.get(name)
        if held is None:
            return float(self.limit.burst)
        tokens, at = held
        refill = max(0.0, now - at) * self.limit.per_second
        return min(float(self.limit.burst), tokens + refill)

    def wait(self, name: str, now: float, n: int = 1) -> float:
        """Seconds until `n` tokens are available (0 when they are now)."""
        missing = n - self.tokens(name, now)
        return 0.0 if missing <= 0 else missing / self.limit.per_second

    def spend(self, name: str, now: float, n: int = 1) -> None:
        """Take `n` tokens (the caller checked wait() == 0)."""
        if name not in self._buckets and len(self._buckets) >= self.max_buckets:
            self.sweep(now)
        self._buckets[name] = (self.tokens(name, now) - n, now)

    def sweep(self, now: float) -> None:
        """Drop the buckets that have refilled completely (no information lost); when
        every bucket is busy, drop the least recently used half."""
        full = float(self.limit.burst)
        self._buckets = {k: v for k, v in self._buckets.items() if self.tokens(k, now) < full}
        if len(self._buckets) >= self.max_buckets:
            keep = sorted(self._buckets.items(), key=lambda kv: kv[1][1])[len(self._buckets) // 2 :]
            self._buckets = dict(keep)


class RateLimiter:
    """Per-key and per-organisation buckets; either may be None (not limited)."""

    def __init__(
        self,
        per_key: RateLimit | None,
        per_account: RateLimit | None,
        *,
        clock: Monotonic = time.monotonic,
        max_buckets: int = MAX_BUCKETS,
    ) -> None:
        self.clock = clock
        self.keys = (
            None if per_key is None else TokenBuckets(per_key, clock=clock, max_buckets=max_buckets)
        )
        self.accounts = (
            None
            if per_account is None
            else TokenBuckets(per_account, clock=clock, max_buckets=max_buckets)
        )

    @classmethod
    def from_settings(
        cls,
        per_second: float,
        burst: int,
        account_factor: int,
        *,
        clock: Monotonic = time.monotonic,
    ) -> RateLimiter | None:
        """[evidence] rate_per_second, rate_burst, account_rate_factor (0 disables);
        None when nothing is limited."""
        if per_second <= 0:
            return None
        key = RateLimit(per_second, burst)
        account = None
        if account_factor > 0:
            account = RateLimit(per_second * account_factor, burst * account_factor)
        return cls(key, account, clock=clock)

    def take(self, key_id: str, org_id: str) -> Refusal | None:
        """Spend one token of the key and one of its organisation, or none and say why."""
        now = self.clock()
        candidates = (("key", self.keys, key_id), ("account", self.accounts, org_id))
        pairs = [(s, b, n) for s, b, n in candidates if b is not None]
        for scope, buckets, name in pairs:
            wait = buckets.wait(name, now)
            if wait > 0:
                return Refusal(scope, wait, buckets.limit)
        for _, buckets, name in pairs:
            buckets.spend(name, now)
        return None

    def describe(self, key_id: str, org_id: str) -> dict[str, Any] | None:
        """The limits and tokens left now, for GET /api/v1/usage."""
        now = self.clock()

        def one(buckets: TokenBuckets | None, name: str) -> dict[str, Any] | None:
            if buckets is None:
                return None
            return {
                "per_second": buckets.limit.per_second,
                "burst": buckets.limit.burst,
                "available": math.floor(buckets.tokens(name, now)),
            }

        return {"key": one(self.keys, key_id), "account": one(self.accounts, org_id)}


def retry_after_header(seconds: float) -> str:
    """Whole seconds, rounded up, at least 1 (RFC 9110 §10.2.3)."""
    return str(max(1, math.ceil(seconds)))


RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)

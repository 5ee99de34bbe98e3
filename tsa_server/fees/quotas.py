"""Monthly quotas and rate limits (REC-10), as pure rules.

Every channel (the RFC 3161 endpoint, the REST deposit API, the UI) spends the same
credits through lots.py; this module only decides how often. Who may act (roles, API
key scopes) is tsa_server/evidence/accounts.py. Quota windows are Beijing calendar
months (G-1).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tsa_server.clock.beijing import BEIJING, add_months, require_aware, to_beijing

from .errors import QuotaExceeded


def month_window(now: datetime) -> tuple[datetime, datetime]:
    """The Beijing calendar month `[start, end)` containing `now` (quota period)."""
    local = to_beijing(now)
    start = datetime(local.year, local.month, 1, tzinfo=BEIJING)
    return require_aware(start), add_months(start, 1)


@dataclass(frozen=True)
class Usage:
    """REC-10 usage endpoint: one window of one quota."""

    start: datetime
    end: datetime
    used: int
    limit: int | None  # None: unlimited

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.used)


def check_quota(usage: Usage, requested: int = 1) -> None:
    """Refuse a request that would take `used` above `limit` within the window."""
    if usage.limit is not None and usage.used + requested > usage.limit:
        raise QuotaExceeded(f"monthly quota {usage.limit} reached (used {usage.used})")


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: `burst` requests at once, refilled at `per_second`."""

    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError("rate limit needs per_second > 0 and burst >= 1")


@dataclass(frozen=True)
class Bucket:
    tokens: float
    at: datetime


def take(limit: RateLimit, bucket: Bucket | None, now: datetime, n: int = 1) -> Bucket:
    """Spend `n` tokens at `now`; QuotaExceeded (with the wait in seconds) if too few."""
    now = require_aware(now, "now")
    if bucket is None:
        tokens = float(limit.burst)
    else:
        elapsed = max(0.0, (now - require_aware(bucket.at)).total_seconds())
        tokens = min(float(limit.burst), bucket.tokens + elapsed * limit.per_second)
    if tokens < n:
        wait = (n - tokens) / limit.per_second
        raise QuotaExceeded(f"rate limit: retry in {wait:.3f} s")
    return Bucket(tokens - n, now)

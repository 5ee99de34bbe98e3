"""In-memory token buckets: the /api/v1 API's per-key limits (REC-10) and the
per-client limits of the endpoints anyone may call ([limits], `ClientLimiter`).

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

import ipaddress
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tsa_server.config import LimitsConfig
from tsa_server.fees.quotas import RateLimit

log = logging.getLogger("tsa.web.limits")

Monotonic = Callable[[], float]
#: Buckets kept before idle (full) ones are swept.
MAX_BUCKETS = 10_000


@dataclass(frozen=True)
class Throttled:
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

    def take(self, key_id: str, org_id: str) -> Throttled | None:
        """Spend one token of the key and one of its organisation, or none and say why."""
        now = self.clock()
        candidates = (("key", self.keys, key_id), ("account", self.accounts, org_id))
        pairs = [(s, b, n) for s, b, n in candidates if b is not None]
        for scope, buckets, name in pairs:
            wait = buckets.wait(name, now)
            if wait > 0:
                return Throttled(scope, wait, buckets.limit)
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


# --- per-client limits of public endpoints -------------------------------------------------

#: What each kind of public request is ([limits] <kind>_per_second / <kind>_burst).
KINDS = ("tsr", "verify", "lookup", "ledger")
_LOOKUP_PARTS = ("lookup", "proof", "tlog-proof")


def request_kind(method: str, path: str) -> str | None:
    """The [limits] kind of a request, or None for requests these limits leave alone
    (the authenticated /api/v1 API has its own; health and static pages are cheap)."""
    if method == "POST":
        if path in ("/", "/tsr"):
            return "tsr"
        if path == "/verify":
            return "verify"
        if path.startswith("/ledger/") and path.endswith("/publish"):
            return None  # admin API key: the /api/v1 limiter's business
    if path.startswith("/tokens/") or path == "/api/v1/names/check":
        return "lookup"  # the names check is the one /api/v1 endpoint without a key
    if path.startswith("/ledger/"):
        parts = path.split("/")
        return "lookup" if len(parts) > 3 and parts[3] in _LOOKUP_PARTS else "ledger"
    return None


class ClientLimiter:
    """One token bucket per client address and kind of request.

    A client is its address, IPv6 clients by /64 (one host usually holds a whole /64),
    or, behind a trusted reverse proxy, the address that proxy saw.
    """

    def __init__(
        self,
        limits: dict[str, RateLimit],
        trusted_proxies: tuple[str, ...] = (),
        *,
        clock: Monotonic = time.monotonic,
        max_buckets: int = MAX_BUCKETS,
    ) -> None:
        self.clock = clock
        self.buckets = {
            kind: TokenBuckets(limit, clock=clock, max_buckets=max_buckets)
            for kind, limit in limits.items()
        }
        self._proxies = tuple(ipaddress.ip_network(p, strict=False) for p in trusted_proxies)
        self.refused = dict.fromkeys(limits, 0)

    @classmethod
    def from_config(
        cls, config: LimitsConfig, *, clock: Monotonic = time.monotonic
    ) -> ClientLimiter:
        limits = {
            kind: RateLimit(rate, getattr(config, f"{kind}_burst"))
            for kind in KINDS
            if (rate := getattr(config, f"{kind}_per_second")) > 0
        }
        return cls(limits, config.trusted_proxies, clock=clock)

    def client(self, peer: str | None, forwarded_for: str | None) -> str:
        """The name a client's buckets are kept under."""
        address = _address(peer)
        if address is not None and forwarded_for and self._trusted(address):
            hop = _address(forwarded_for.split(",")[-1].strip())
            address = hop if hop is not None else address
        if address is None:
            return "unknown"
        if address.version == 6:
            return str(ipaddress.ip_network(f"{address}/64", strict=False))
        return str(address)

    def _trusted(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address in network for network in self._proxies)

    def take(self, kind: str, client: str) -> float:
        """Spend one request of ``client``'s ``kind`` bucket: 0, or seconds to wait."""
        buckets = self.buckets.get(kind)
        if buckets is None:
            return 0.0
        now = self.clock()
        wait = buckets.wait(client, now)
        if wait > 0:
            self.refused[kind] += 1
            return wait
        buckets.spend(client, now)
        return 0.0


def _address(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped if mapped is not None else address


CLIENT_LIMITER = web.AppKey("client_limiter", ClientLimiter)


@web.middleware
async def client_limits(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """429 with Retry-After for a client over its [limits] bucket for this request."""
    limiter = request.app.get(CLIENT_LIMITER)
    kind = request_kind(request.method, request.path) if limiter is not None else None
    if kind is None or kind not in limiter.buckets:  # type: ignore[union-attr]
        return await handler(request)
    assert limiter is not None
    client = limiter.client(request.remote, request.headers.get("X-Forwarded-For"))
    wait = limiter.take(kind, client)
    if wait > 0:
        limit = limiter.buckets[kind].limit
        text = (
            f"too many {kind} requests from {client}: at most {limit.per_second:g} per "
            f"second (bursts of {limit.burst}); retry after the time in Retry-After\n"
        )
        raise web.HTTPTooManyRequests(text=text, headers={"Retry-After": retry_after_header(wait)})
    return await handler(request)

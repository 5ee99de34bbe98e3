"""Roles, API-key scopes, monthly quotas and rate limits (REC-10), as pure rules.

Every channel (the RFC 3161 endpoint, the REST deposit API, the UI) spends the same
credits through lots.py; this module only decides who may act and how often. API keys
are stored as SHA-256 digests and shown once: the caller supplies the random secret
(no randomness or clock is read here). Quota windows are Beijing calendar months (G-1).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from tsa_server.names.calendar import BEIJING, add_months, require_aware, to_beijing

from .errors import NotAllowed, QuotaExceeded


class Role(enum.StrEnum):
    OWNER = "owner"
    MEMBER = "member"
    AUDITOR = "auditor"


class Scope(enum.StrEnum):
    TIMESTAMP = "timestamp"
    DEPOSIT = "deposit"
    READ = "read"


class Action(enum.StrEnum):
    TIMESTAMP = "timestamp"  # RFC 3161 request (1 credit, S-14)
    DEPOSIT = "deposit"  # certify files, hash-only or stored
    REUPLOAD = "reupload"  # S-9
    DELETE_ORIGINAL = "delete_original"  # S-8
    REINSTATE = "reinstate"  # S-10
    SET_AUTO_RENEW = "set_auto_renew"
    READ = "read"  # items, certificates, ledger, forecast, usage
    EXPORT = "export"  # REC-6 kits, ledger CSV
    MANAGE = "manage"  # members, API keys, webhooks


_ROLE_ACTIONS = {
    Role.OWNER: frozenset(Action),
    Role.MEMBER: frozenset(Action) - {Action.MANAGE},
    Role.AUDITOR: frozenset({Action.READ, Action.EXPORT}),
}
_SCOPE_ACTIONS = {
    Scope.TIMESTAMP: frozenset({Action.TIMESTAMP}),
    Scope.DEPOSIT: frozenset({Action.DEPOSIT, Action.REUPLOAD}),
    Scope.READ: frozenset({Action.READ, Action.EXPORT}),
}


def role_allows(role: Role, action: Action) -> bool:
    return action in _ROLE_ACTIONS[role]


@dataclass(frozen=True)
class ApiKey:
    """A stored API key: only the digest of its secret, scopes, issuer role, revocation."""

    key_id: str
    digest: str  # sha256 hex of the secret
    scopes: frozenset[Scope]
    role: Role  # the role of the member who created it; a key never exceeds it
    revoked_at: datetime | None = None


def key_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def authorize(key: ApiKey, secret: str, action: Action, now: datetime) -> None:
    """REC-10: the secret matches, the key is not revoked, scope and role both allow."""
    now = require_aware(now, "now")
    if not hmac.compare_digest(key_digest(secret), key.digest):
        raise NotAllowed("unknown API key")
    if key.revoked_at is not None and now >= require_aware(key.revoked_at):
        raise NotAllowed("API key revoked")
    if not any(action in _SCOPE_ACTIONS[s] for s in key.scopes):
        raise NotAllowed(f"API key scope does not allow {action}")
    if not role_allows(key.role, action):
        raise NotAllowed(f"role {key.role} does not allow {action}")


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

"""Storage scope, terms and expiry instants (S-1, S-4 .. S-6, S-9, G-2, G-3).

A storage term is a schedule anchored once: `expiry(k) = add_months(anchor, base + 12*k)`.
It is never chained from a previous expiry (G-2), so 2024-02-29 + 36 m = 2027-02-28 is
followed by 2028-02-29, not 2028-02-28 (E-8). Period k is `[start(k), expiry(k))`
(half-open, G-3): period 0 is the free term of a deposit, or the period paid at
re-upload (S-9); the renewal at `expiry(k)` pays period k + 1 in advance (S-7).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from tsa_server.clock.beijing import add_months, require_aware, to_beijing

from .policy import DEFAULT_POLICY, PricingPolicy
from .units import SizeClass

CERTIFICATION_UNITS = 1
"""P-2 / S-14 / A-11: certifying one file uses exactly one credit, in either mode."""


class Mode(enum.StrEnum):
    """Evidence mode (part B): hash only (脱敏认证) or original stored (存证)."""

    HASH_ONLY = "HASH_ONLY"
    STORED = "STORED"


def storage_applies(mode: Mode, original_present: bool) -> bool:
    """S-1: storage terms and fees apply only to STORED items whose original is held."""
    return mode is Mode.STORED and original_present


def expiry_k(anchor: datetime, base_months: int, k: int, period_months: int = 12) -> datetime:
    """S-6 / REC-2: `add_months(anchor, base + period*k)` in one call from the anchor (G-2)."""
    if k < 0 or base_months < 0 or period_months <= 0:
        raise ValueError("need k >= 0, base_months >= 0, period_months > 0")
    return add_months(anchor, base_months + period_months * k)


@dataclass(frozen=True)
class StorageTerm:
    """One anchored storage schedule of an item (REC-1 "storage anchor")."""

    number: int  # 0: the deposit's term; n: the n-th re-upload (S-9)
    anchor: datetime  # storage start s (S-5) or re-upload instant r (S-9)
    base_months: int  # months to expiry(0): the free term, or one period after re-upload
    period_months: int  # S-6: 12
    fee: int  # S-3: credits per period, fixed by size and epoch
    prepaid: bool = False  # S-9: True when period 0 was paid (re-upload), not free

    def __post_init__(self) -> None:
        object.__setattr__(self, "anchor", require_aware(self.anchor, "anchor"))
        if self.number < 0 or self.base_months < 0 or self.period_months <= 0 or self.fee < 1:
            raise ValueError("invalid storage term")

    def expiry(self, k: int) -> datetime:
        """The end of period k, `expiry_k` of S-6 / S-9."""
        return expiry_k(self.anchor, self.base_months, k, self.period_months)

    def start(self, k: int) -> datetime:
        """The start of period k: the anchor, then the previous expiry."""
        return self.anchor if k == 0 else self.expiry(k - 1)

    def period_at(self, t: datetime) -> int:
        """The period containing `t` (the smallest k with t < expiry(k)); t >= anchor."""
        u = require_aware(t)
        if u < self.anchor:
            raise ValueError("instant before the storage anchor")
        a, b = to_beijing(self.anchor), to_beijing(u)
        months = (b.year - a.year) * 12 + (b.month - a.month)
        k = max(0, (months - self.base_months) // self.period_months - 1)
        while u >= self.expiry(k):
            k += 1
        return k


def initial_term(
    size_bytes: int,
    certified_at: datetime,
    stored_at: datetime | None = None,
    policy: PricingPolicy = DEFAULT_POLICY,
) -> StorageTerm:
    """S-4/S-5: the free term of a new STORED item; the epoch comes from `certified_at`.

    `stored_at` is the storage start s (defaults to the certification instant, as for a
    normal deposit); it drives the schedule, never the epoch (A-4).
    """
    version = policy.version_for(certified_at)
    free = version.free_months(version.size_class(size_bytes))
    anchor = certified_at if stored_at is None else stored_at
    return StorageTerm(0, anchor, free, version.period_months, version.fee(size_bytes))


def reupload_term(
    size_bytes: int,
    epoch: str,
    number: int,
    reuploaded_at: datetime,
    policy: PricingPolicy = DEFAULT_POLICY,
) -> StorageTerm:
    """S-9: no free term; period 0 is paid at `r`, `expiry_k = add_months(r, 12*(k+1))`.

    The item's epoch does not change: fee and period come from its original version.
    """
    version = policy.version(epoch)
    return StorageTerm(
        number,
        reuploaded_at,
        version.period_months,
        version.period_months,
        version.fee(size_bytes),
        prepaid=True,
    )


@dataclass(frozen=True)
class Preview:
    """REC-7 cost preview: credits now, and for stored items the free term and annual fee."""

    certification_units: int
    epoch: str
    size_class: SizeClass | None
    free_until: datetime | None
    annual_fee: int | None


def preview(
    mode: Mode, size_bytes: int, at: datetime, policy: PricingPolicy = DEFAULT_POLICY
) -> Preview:
    """What a deposit at `at` will cost: 1 credit now (S-14); "free until X, then N/yr"."""
    version = policy.version_for(at)
    if mode is Mode.HASH_ONLY:
        return Preview(CERTIFICATION_UNITS, version.epoch, None, None, None)
    term = initial_term(size_bytes, at, policy=policy)
    return Preview(
        CERTIFICATION_UNITS, version.epoch, version.size_class(size_bytes), term.expiry(0), term.fee
    )

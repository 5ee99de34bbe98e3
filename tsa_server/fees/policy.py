"""The versioned pricing policy (REC-1 `PricingPolicy`, S-4, S-5, A-1, part F), from TOML.

A `PolicyVersion` is one row pair of REC-1 (SMALL and LARGE terms of one epoch). The
LEGACY and CURRENT versions of part B are data in conf/pricing.toml; `DEFAULT_POLICY`
repeats them so the library works without the file, and a test keeps both equal.
Changing prices = adding a version with a later `effective_from`, never editing one:
an item keeps the version of its certification instant (S-4, A-4) for life.

A-1: the seed's LEGACY SMALL term is 39 months by its worked example and 51 months by
its parenthetical formula; the default is 39 (`LEGACY_SMALL_DEFAULT_MONTHS`), the literal
reading is `LEGACY_SMALL_LITERAL_MONTHS` and is one configuration value away.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from tsa_server.clock.beijing import beijing, require_aware
from tsa_server.config.strict_toml import StrictTable, beijing_instant, load_toml

from .errors import PricingError
from .units import STORAGE_BLOCK_BYTES, SizeClass, annual_fee, size_class

LEGACY = "LEGACY"
CURRENT = "CURRENT"
CUTOVER = beijing(2022, 12, 1)
"""S-4 / A-3: 2022-12-01 00:00 Beijing = 2022-11-30T16:00:00Z; the instant itself is CURRENT."""

LEGACY_SMALL_DEFAULT_MONTHS = 39
"""A-1 default: start + 3 y 3 m, so the seed's worked example (2022-11-01 -> 2026-02-01) holds."""
LEGACY_SMALL_LITERAL_MONTHS = 51
"""A-1 alternative: the seed's formula "存储开始时间+4年+3 个月" taken literally."""


class FeeFormula(enum.StrEnum):
    """How a version turns a size into credits per period (S-3)."""

    PER_BLOCK = "per_block"  # max(1, ceil(size / block_bytes))


@dataclass(frozen=True)
class PolicyVersion:
    """One epoch of prices: the free term per size class, the period and the fee (S-5)."""

    epoch: str
    effective_from: datetime | None  # None only for the first version (open start)
    small_free_months: int
    large_free_months: int
    period_months: int = 12  # S-6: "超过后按每年计算"
    block_bytes: int = STORAGE_BLOCK_BYTES  # G-4; a row may only restate or change it
    fee_formula: FeeFormula = FeeFormula.PER_BLOCK

    def __post_init__(self) -> None:
        if not self.epoch or not self.epoch.strip():
            raise PricingError("a version needs a non-empty epoch name")
        if self.effective_from is not None:
            object.__setattr__(self, "effective_from", require_aware(self.effective_from))
        if self.small_free_months < 0 or self.large_free_months < 0:
            raise PricingError(f"{self.epoch}: free months must be >= 0")
        if self.period_months <= 0 or self.block_bytes <= 0:
            raise PricingError(f"{self.epoch}: period_months and block_bytes must be > 0")

    def size_class(self, size_bytes: int) -> SizeClass:
        """S-2 under this version's block."""
        return size_class(size_bytes, self.block_bytes)

    def free_months(self, cls: SizeClass) -> int:
        """S-5: the free initial term of a size class."""
        return self.small_free_months if cls is SizeClass.SMALL else self.large_free_months

    def fee(self, size_bytes: int) -> int:
        """S-3: credits per period for an original of `size_bytes`."""
        return annual_fee(size_bytes, self.block_bytes)


DEFAULT_VERSIONS = (
    PolicyVersion(LEGACY, None, LEGACY_SMALL_DEFAULT_MONTHS, 15),
    PolicyVersion(CURRENT, CUTOVER, 36, 12),
)


@dataclass(frozen=True)
class PricingPolicy:
    """Every number of parts B/C and every part-F decision that the text makes configurable."""

    versions: tuple[PolicyVersion, ...] = DEFAULT_VERSIONS
    lot_validity_months: int = 12  # P-3: "使用有效期为一年"
    grace_days: int = 90  # S-10 / A-7 [EXT]: reinstatement window after EXPIRED
    expiry_reminder_days: tuple[int, ...] = (30, 7, 1)  # REC-3
    purge_notice_days: tuple[int, ...] = (30, 7, 1)  # S-10
    lot_reminder_days: tuple[int, ...] = (30, 7)  # P-8
    low_balance_days: int = 30  # REC-3: alert when the next 30 days are not covered
    forecast_months: int = 12  # REC-3

    def __post_init__(self) -> None:
        vs = self.versions
        if not vs:
            raise PricingError("at least one pricing version is required")
        if vs[0].effective_from is not None:
            raise PricingError("the first version must have no effective_from (open start)")
        starts = [v.effective_from for v in vs[1:]]
        if any(s is None for s in starts):
            raise PricingError("every version after the first needs effective_from")
        if any(b <= a for a, b in zip(starts, starts[1:], strict=False)):  # type: ignore[operator]
            raise PricingError("effective_from must increase strictly from version to version")
        if len({v.epoch for v in vs}) != len(vs):
            raise PricingError("epoch names must be unique")
        for name in ("lot_validity_months", "grace_days", "low_balance_days", "forecast_months"):
            if getattr(self, name) <= 0:
                raise PricingError(f"{name} must be > 0")
        for name in ("expiry_reminder_days", "purge_notice_days", "lot_reminder_days"):
            days = tuple(getattr(self, name))
            if any(d <= 0 for d in days) or len(set(days)) != len(days):
                raise PricingError(f"{name} must be distinct positive day counts")
            object.__setattr__(self, name, tuple(sorted(days, reverse=True)))

    def version_for(self, certified_at: datetime) -> PolicyVersion:
        """S-4 / A-4: the version in force at the certification instant (half-open, G-3)."""
        t = require_aware(certified_at, "certified_at")
        chosen = self.versions[0]
        for v in self.versions[1:]:
            if v.effective_from is not None and v.effective_from <= t:
                chosen = v
        return chosen

    def version(self, epoch: str) -> PolicyVersion:
        """The version named `epoch` (an item stores its epoch, S-9: it never changes)."""
        for v in self.versions:
            if v.epoch == epoch:
                return v
        raise KeyError(f"unknown pricing epoch {epoch!r}")

    @property
    def grace(self) -> timedelta:
        return timedelta(days=self.grace_days)


DEFAULT_POLICY = PricingPolicy()


def epoch_of(certified_at: datetime, policy: PricingPolicy = DEFAULT_POLICY) -> str:
    """S-4: LEGACY before 2022-12-01 00:00 Beijing, CURRENT from that instant on."""
    return policy.version_for(certified_at).epoch


def free_months(epoch: str, cls: SizeClass, policy: PricingPolicy = DEFAULT_POLICY) -> int:
    """S-5: the free initial term, in months, of an epoch and size class."""
    return policy.version(epoch).free_months(cls)


# ------------------------------------------------------------------ TOML loading


def _table(data: Any, where: str) -> StrictTable:
    return StrictTable(data, where, PricingError)


def _version(t: StrictTable) -> PolicyVersion:
    start = t.take("effective_from", (datetime, date), None)
    formula = t.take("fee_formula", str, FeeFormula.PER_BLOCK.value)
    try:
        fee_formula = FeeFormula(formula)
    except ValueError:
        raise PricingError(f"{t.where}.fee_formula: unknown formula {formula!r}") from None
    version = PolicyVersion(
        epoch=t.take("epoch", str, ""),
        effective_from=(
            None
            if start is None
            else beijing_instant(start, f"{t.where}.effective_from", PricingError)
        ),
        small_free_months=t.take("small_free_months", int, -1),
        large_free_months=t.take("large_free_months", int, -1),
        period_months=t.take("period_months", int, 12),
        block_bytes=t.take("block_bytes", int, STORAGE_BLOCK_BYTES),
        fee_formula=fee_formula,
    )
    t.done()
    return version


def policy_from_mapping(data: dict[str, Any]) -> PricingPolicy:
    """Build a `PricingPolicy` from parsed TOML; every error is a `PricingError`."""
    d = PricingPolicy()
    root = _table(data, "pricing")
    credits = root.table("credits")
    storage = root.table("storage")
    reminders = root.table("reminders")
    rows = root.take("versions", list, None)
    if rows is None:
        raise PricingError("pricing: [[versions]] is required")
    versions = tuple(_version(_table(r, f"versions[{i}]")) for i, r in enumerate(rows))
    policy = PricingPolicy(
        versions=versions,
        lot_validity_months=credits.take("lot_validity_months", int, d.lot_validity_months),
        grace_days=storage.take("grace_days", int, d.grace_days),
        expiry_reminder_days=reminders.integers("expiry_days", d.expiry_reminder_days),
        purge_notice_days=reminders.integers("purge_days", d.purge_notice_days),
        lot_reminder_days=reminders.integers("lot_lapse_days", d.lot_reminder_days),
        low_balance_days=reminders.take("low_balance_window_days", int, d.low_balance_days),
        forecast_months=reminders.take("forecast_months", int, d.forecast_months),
    )
    for table in (credits, storage, reminders, root):
        table.done()
    return policy


def load_policy(path: Path) -> PricingPolicy:
    """Read conf/pricing.toml; every error is a `PricingError` (the server must not start)."""
    return policy_from_mapping(load_toml(path, PricingError))

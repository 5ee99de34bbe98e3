"""Policy parameters of the handle registry, loaded from TOML (conf/names.toml).

Every seed number (byte limits, quota, periods) and every decision of part F
(A-13 .. A-16) is a field here; the 2013 beta dates are example data in the TOML,
never constants. Unknown keys, wrong types and out-of-range values are errors.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

from tsa_server.clock.beijing import require_aware
from tsa_server.config.strict_toml import StrictTable, beijing_instant, load_toml
from tsa_server.errors import ConfigError

from .numbers import NumberError, rational


class PolicyError(ConfigError):
    """conf/names.toml is malformed, has an unknown key or an out-of-range value."""


class HoldReclaim(enum.StrEnum):
    """A-16: who may take a handle during its one-month hold."""

    FORMER_OWNER = "former_owner"
    NOBODY = "nobody"


class BrandMatch(enum.StrEnum):
    """H-9: a handle needs brand proof if it equals, or merely contains, a listed brand."""

    CONTAINS = "contains"
    EXACT = "exact"


METRICS = (
    "search_rate",
    "usage_duration",
    "wangwang",
    "repeat_rate",
    "transactions",
    "star_level",
)


@dataclass(frozen=True)
class Weights:
    """H-16: weight of each normalised metric (each metric is scaled to [0, 1])."""

    search_rate: Fraction = Fraction(30)
    usage_duration: Fraction = Fraction(30)
    wangwang: Fraction = Fraction(20)
    repeat_rate: Fraction = Fraction(10)
    transactions: Fraction = Fraction(5)
    star_level: Fraction = Fraction(5)

    def __post_init__(self) -> None:
        values = [getattr(self, m) for m in METRICS]
        if any(v < 0 for v in values) or sum(values) <= 0:
            raise PolicyError("weights must be >= 0 with a positive sum")


@dataclass(frozen=True)
class DisputePolicy:
    """H-15, H-16, A-15: objection period, weights, metric scaling and tie-breaks."""

    objection_days: int = 7
    weights: Weights = field(default_factory=Weights)
    usage_days_cap: int = 1095
    transactions_cap: int = 1000
    star_level_max: int = 20
    intermittent_factor: Fraction = Fraction(1, 2)
    tie_breaks: tuple[str, ...] = ("usage_duration", "search_rate", "wangwang")

    def __post_init__(self) -> None:
        _positive(
            objection_days=self.objection_days,
            usage_days_cap=self.usage_days_cap,
            transactions_cap=self.transactions_cap,
            star_level_max=self.star_level_max,
        )
        if not 0 <= self.intermittent_factor <= 1:
            raise PolicyError("disputes.intermittent_factor must be within [0, 1]")
        tb = self.tie_breaks
        if not tb or tb[0] != "usage_duration":  # H-16: usage duration is the first tie-break
            raise PolicyError('disputes.tie_breaks must start with "usage_duration"')
        if len(set(tb)) != len(tb) or any(m not in METRICS for m in tb):
            raise PolicyError(f"disputes.tie_breaks: distinct names from {METRICS}")

    @property
    def objection_period(self) -> timedelta:
        return timedelta(days=self.objection_days)


@dataclass(frozen=True)
class BetaPhase:
    """H-15: one public-beta campaign (the 2013 phase 1 is example data)."""

    name: str
    shop_opened_before: datetime
    applications_open: datetime
    applications_close: datetime
    publish_at: datetime
    ends_at: datetime

    def __post_init__(self) -> None:
        names = (
            "shop_opened_before",
            "applications_open",
            "applications_close",
            "publish_at",
            "ends_at",
        )
        for n in names:
            object.__setattr__(self, n, require_aware(getattr(self, n), n))
        if not (
            self.applications_open < self.applications_close <= self.publish_at <= self.ends_at
        ):
            raise PolicyError(
                "beta: need applications_open < applications_close <= publish_at <= ends_at"
            )


@dataclass(frozen=True)
class WordListPaths:
    banned: Path
    restricted: Path
    brands: Path


@dataclass(frozen=True)
class Policy:
    """All parameters of the registry; defaults are the seed values and part F decisions."""

    handle_min_bytes: int = 4
    handle_max_bytes: int = 14
    shop_name_min_bytes: int = 4
    shop_name_max_bytes: int = 20
    change_quota: int = 5
    change_interval_hours: int = 720  # 30 x 24 h
    hold_months: int = 1
    hold_reclaim_by: HoldReclaim = HoldReclaim.FORMER_OWNER
    case_insensitive: bool = True
    brand_match: BrandMatch = BrandMatch.CONTAINS
    mark_min_age_months: int = 6
    disputes: DisputePolicy = field(default_factory=DisputePolicy)
    beta: BetaPhase | None = None
    word_lists: WordListPaths | None = None

    def __post_init__(self) -> None:
        _positive(
            handle_min_bytes=self.handle_min_bytes,
            shop_name_min_bytes=self.shop_name_min_bytes,
            change_interval_hours=self.change_interval_hours,
            hold_months=self.hold_months,
        )
        if self.change_quota < 0 or self.mark_min_age_months < 0:
            raise PolicyError("change_quota and mark_min_age_months must be >= 0")
        if not self.handle_min_bytes <= self.handle_max_bytes <= self.shop_name_max_bytes:
            raise PolicyError("need handle_min_bytes <= handle_max_bytes <= shop_name_max_bytes")
        if self.shop_name_min_bytes > self.shop_name_max_bytes:
            raise PolicyError("need shop_name_min_bytes <= shop_name_max_bytes")

    @property
    def change_interval(self) -> timedelta:
        return timedelta(hours=self.change_interval_hours)


def _positive(**values: int) -> None:
    for name, value in values.items():
        if value <= 0:
            raise PolicyError(f"{name} must be > 0, got {value}")


def _fraction(value: int | float | str, where: str) -> Fraction:
    try:
        return rational(value, where)
    except NumberError as exc:
        raise PolicyError(str(exc)) from None


def _enum(enum_type: type[enum.StrEnum], value: str, where: str) -> Any:
    try:
        return enum_type(value)
    except ValueError:
        choices = [m.value for m in enum_type]
        raise PolicyError(f"{where}: {value!r} is not one of {choices}") from None


def _disputes(t: StrictTable) -> DisputePolicy:
    d = DisputePolicy()
    w = t.table("weights")
    weights = Weights(
        **{
            m: _fraction(w.take(m, (int, float, str), getattr(d.weights, m)), f"{w.where}.{m}")
            for m in METRICS
        }
    )
    w.done()
    factor = t.take("intermittent_factor", (int, float, str), d.intermittent_factor)
    policy = DisputePolicy(
        objection_days=t.take("objection_days", int, d.objection_days),
        weights=weights,
        usage_days_cap=t.take("usage_days_cap", int, d.usage_days_cap),
        transactions_cap=t.take("transactions_cap", int, d.transactions_cap),
        star_level_max=t.take("star_level_max", int, d.star_level_max),
        intermittent_factor=_fraction(factor, f"{t.where}.intermittent_factor"),
        tie_breaks=tuple(t.take("tie_breaks", list, list(d.tie_breaks))),
    )
    t.done()
    return policy


def _beta(t: StrictTable) -> BetaPhase | None:
    if not t.data:
        return None
    keys = (
        "shop_opened_before",
        "applications_open",
        "applications_close",
        "publish_at",
        "ends_at",
    )
    instants = {
        k: beijing_instant(t.take(k, (datetime, date), None), f"{t.where}.{k}", PolicyError)
        for k in keys
    }
    beta = BetaPhase(name=t.take("name", str, "beta"), **instants)
    t.done()
    return beta


def _words(t: StrictTable, base: Path) -> WordListPaths | None:
    if not t.data:
        return None
    paths = {k: base / t.take(k, str, f"names/{k}.txt") for k in ("banned", "restricted", "brands")}
    t.done()
    return WordListPaths(**paths)


def policy_from_mapping(data: dict[str, Any], base_dir: Path = Path(".")) -> Policy:
    """Build a `Policy` from parsed TOML; relative word-list paths resolve from `base_dir`."""
    d = Policy()
    root = StrictTable(data, "names", PolicyError)
    lengths, changes, hold = root.table("lengths"), root.table("changes"), root.table("hold")
    matching, groups = root.table("matching"), root.table("groups")
    policy = Policy(
        handle_min_bytes=lengths.take("handle_min_bytes", int, d.handle_min_bytes),
        handle_max_bytes=lengths.take("handle_max_bytes", int, d.handle_max_bytes),
        shop_name_min_bytes=lengths.take("shop_name_min_bytes", int, d.shop_name_min_bytes),
        shop_name_max_bytes=lengths.take("shop_name_max_bytes", int, d.shop_name_max_bytes),
        change_quota=changes.take("quota", int, d.change_quota),
        change_interval_hours=changes.take("min_interval_hours", int, d.change_interval_hours),
        hold_months=hold.take("months", int, d.hold_months),
        hold_reclaim_by=_enum(
            HoldReclaim, hold.take("reclaim_by", str, d.hold_reclaim_by), "hold.reclaim_by"
        ),
        case_insensitive=matching.take("case_insensitive", bool, d.case_insensitive),
        brand_match=_enum(
            BrandMatch, matching.take("brand_match", str, d.brand_match), "matching.brand_match"
        ),
        mark_min_age_months=groups.take("mark_min_age_months", int, d.mark_min_age_months),
        disputes=_disputes(root.table("disputes")),
        beta=_beta(root.table("beta")),
        word_lists=_words(root.table("words"), base_dir),
    )
    for table in (lengths, changes, hold, matching, groups, root):
        table.done()
    return policy


def load_policy(path: Path) -> Policy:
    """Read conf/names.toml; every error is a `PolicyError` (fail closed)."""
    return policy_from_mapping(load_toml(path, PolicyError), Path(path).parent)

"""Dispute ranking for a handle wanted by several shops (H-8, H-15, H-16, H-17, A-15, A-21).

Each of the six metrics is scaled to [0, 1] and weighted (weights are configuration);
the total ranks descending. Ties are broken by usage duration first (H-16), then by
the configured chain (A-15: search-to-shop rate, Wangwang flag). Submission order is
never a criterion (H-8): a tie that survives the chain means manual review. Exact
fractions throughout; rounding happens only for display (A-21).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

from tsa_server.clock.beijing import Interval, require_aware

from .config import DisputePolicy
from .numbers import NumberError, rational, whole


def search_to_shop_rate(entered: int, searchers: int) -> Fraction:
    """H-17: entered / searchers; 0 searchers gives 0 [DECISION]. 513/1000 -> 51.3 %."""
    if searchers < 0 or entered < 0 or entered > searchers:
        raise ValueError(f"need 0 <= entered <= searchers, got {entered}/{searchers}")
    return Fraction(entered, searchers) if searchers else Fraction(0)


def percent_text(rate: Fraction, places: int = 1) -> str:
    """Display a rate as a percentage rounded half-up: Fraction(513, 1000) -> '51.3%'."""
    value = Decimal(rate.numerator * 100) / Decimal(rate.denominator)
    return f"{value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)}%"


@dataclass(frozen=True)
class Metrics:
    """The six metrics of H-16 for one contender, measured over the configured windows.

    `continuous_days` is the longest continuous run of use within `usage_days`
    (continuous use scores higher than intermittent); None means all of it.
    """

    search_rate: Fraction = Fraction(0)
    usage_days: int = 0
    wangwang: bool = False  # the Wangwang member name contains the handle
    repeat_rate: Fraction = Fraction(0)
    transactions: Fraction = Fraction(0)
    star_level: int = 0
    continuous_days: int | None = None

    def __post_init__(self) -> None:
        for name in ("search_rate", "repeat_rate", "transactions"):
            object.__setattr__(self, name, Fraction(getattr(self, name)))
        if not (0 <= self.search_rate <= 1 and 0 <= self.repeat_rate <= 1):
            raise ValueError("rates must lie within [0, 1]")
        if self.usage_days < 0 or self.transactions < 0 or self.star_level < 0:
            raise ValueError("usage_days, transactions and star_level must be >= 0")
        if self.continuous_days is not None and not 0 <= self.continuous_days <= self.usage_days:
            raise ValueError("continuous_days must lie within [0, usage_days]")


METRIC_FIELDS = (
    "search_rate",
    "usage_days",
    "wangwang",
    "repeat_rate",
    "transactions",
    "star_level",
    "continuous_days",
)


def metrics_from_json(raw: Any) -> dict[str, Metrics]:
    """An operator's `{shop id: {metric: value}}` (POST .../decision) as Metrics, or
    ValueError with a message naming the field."""
    if not isinstance(raw, dict):
        raise NumberError("metrics must be an object keyed by shop id")
    out = {}
    for shop_id, m in raw.items():
        where = f"metrics.{shop_id}"
        if not isinstance(m, dict):
            raise NumberError(f"{where} must be an object")
        unknown = sorted(set(m) - set(METRIC_FIELDS))
        if unknown:
            raise NumberError(f"{where}: unknown field(s): {', '.join(unknown)}")
        wangwang = m.get("wangwang", False)
        if not isinstance(wangwang, bool):
            raise NumberError(f"{where}.wangwang must be true or false")
        continuous = m.get("continuous_days")
        search_rate = rational(m.get("search_rate", 0), f"{where}.search_rate")
        usage_days = whole(m.get("usage_days", 0), f"{where}.usage_days")
        repeat_rate = rational(m.get("repeat_rate", 0), f"{where}.repeat_rate")
        transactions = rational(m.get("transactions", 0), f"{where}.transactions")
        star_level = whole(m.get("star_level", 0), f"{where}.star_level")
        continuous_days = (
            None if continuous is None else whole(continuous, f"{where}.continuous_days")
        )
        try:
            out[shop_id] = Metrics(
                search_rate=search_rate,
                usage_days=usage_days,
                continuous_days=continuous_days,
                wangwang=wangwang,
                repeat_rate=repeat_rate,
                transactions=transactions,
                star_level=star_level,
            )
        except ValueError as exc:  # the metrics' own ranges
            raise NumberError(f"{where}: {exc}") from None
    return out


def effective_usage_days(m: Metrics, policy: DisputePolicy) -> Fraction:
    """Continuous days count fully, intermittent days by `intermittent_factor`."""
    continuous = m.usage_days if m.continuous_days is None else m.continuous_days
    return continuous + policy.intermittent_factor * (m.usage_days - continuous)


def normalised(m: Metrics, policy: DisputePolicy) -> dict[str, Fraction]:
    """Each metric scaled to [0, 1] (caps from the policy)."""
    return {
        "search_rate": m.search_rate,
        "usage_duration": min(Fraction(1), effective_usage_days(m, policy) / policy.usage_days_cap),
        "wangwang": Fraction(int(m.wangwang)),
        "repeat_rate": m.repeat_rate,
        "transactions": min(Fraction(1), m.transactions / policy.transactions_cap),
        "star_level": min(Fraction(1), Fraction(m.star_level, policy.star_level_max)),
    }


def score(m: Metrics, policy: DisputePolicy) -> Fraction:
    """Weighted total; with the default weights (sum 100) a score out of 100."""
    return sum(
        (getattr(policy.weights, k) * v for k, v in normalised(m, policy).items()), Fraction(0)
    )


_TieKey = Callable[[Metrics, DisputePolicy], Fraction]
_TIE_KEYS: dict[str, _TieKey] = {
    "usage_duration": effective_usage_days,
    "search_rate": lambda m, p: m.search_rate,
    "wangwang": lambda m, p: Fraction(int(m.wangwang)),
    "repeat_rate": lambda m, p: m.repeat_rate,
    "transactions": lambda m, p: m.transactions,
    "star_level": lambda m, p: Fraction(m.star_level),
}


@dataclass(frozen=True)
class ContenderScore:
    """One contender (a shop id) with its total score and metrics."""

    contender: str
    score: Fraction
    metrics: Metrics


@dataclass(frozen=True)
class Standing:
    contender: str
    score: Fraction
    metrics: Metrics
    rank: int  # competition ranking: equal keys share a rank (1, 1, 3)


@dataclass(frozen=True)
class Ranking:
    """The provisional order; `leader` is None when the top is tied after all tie-breaks."""

    standings: tuple[Standing, ...]
    leader: str | None
    decided_by: str | None  # "sole", "score" or the tie-break metric that separated 1 and 2

    @property
    def manual_review(self) -> bool:
        return self.leader is None

    def standing(self, contender: str) -> Standing | None:
        return next((s for s in self.standings if s.contender == contender), None)


def _key(e: ContenderScore, policy: DisputePolicy) -> tuple[Fraction, ...]:
    return (Fraction(e.score), *(_TIE_KEYS[n](e.metrics, policy) for n in policy.tie_breaks))


def rank(entries: Iterable[ContenderScore], policy: DisputePolicy) -> Ranking:
    """H-16 ranking. The input order is irrelevant (H-8): equal keys sort by shop id only
    to make the listing deterministic, and never make a leader."""
    items = [(_key(e, policy), e) for e in entries]
    if not items:
        raise ValueError("no contenders")
    if len({e.contender for _, e in items}) != len(items):
        raise ValueError("duplicate contender")
    items.sort(key=lambda ke: ke[1].contender)
    items.sort(key=lambda ke: ke[0], reverse=True)
    standings: list[Standing] = []
    for i, (key, e) in enumerate(items):
        place = standings[-1].rank if i and items[i - 1][0] == key else i + 1
        standings.append(Standing(e.contender, Fraction(e.score), e.metrics, place))
    if len(items) == 1:
        return Ranking(tuple(standings), items[0][1].contender, "sole")
    first, second = items[0][0], items[1][0]
    for index, (a, b) in enumerate(zip(first, second, strict=True)):
        if a != b:
            by = "score" if index == 0 else policy.tie_breaks[index - 1]
            return Ranking(tuple(standings), items[0][1].contender, by)
    return Ranking(tuple(standings), None, None)  # H-8: manual review, never submission order


def objection_window(published_at: datetime, policy: DisputePolicy) -> Interval:
    """H-15: objections are accepted in `[publish, publish + 7 days)`; the decision is due
    at the end."""
    start = require_aware(published_at)
    return Interval(start, start + policy.objection_period)

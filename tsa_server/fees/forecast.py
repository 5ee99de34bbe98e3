"""The 12-month obligations forecast against the balance (REC-3, REC-8).

`project` simulates what the scheduler will do: every renewal of an ACTIVE, auto-renewing
item falling due before `until`, in renewal order (A-9), each paid FEFO from the lots
valid at its instant (A-18) or not covered; lots lapse at their instants. Uncovered
renewals consume nothing (each decided alone, R-7), and the forecast keeps listing an
item's later periods, assuming the holder tops up: it answers "what do I need to keep
everything?". `shortfall` is the sum of uncovered fees; a lot of that size bought now
lapses 12 months later, after every obligation of the horizon, so it covers them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tsa_server.clock.beijing import add_months, require_aware

from .items import EvidenceItem, StorageStatus
from .lots import Wallet
from .policy import DEFAULT_POLICY, PricingPolicy
from .renewals import renewal_order

# A renewal falling due: (item id, term, period, due at, fee).
_Due = tuple[str, int, int, datetime, int]


@dataclass(frozen=True)
class Obligation:
    """One storage fee falling due: the renewal of (item, term, period) at `due_at`."""

    item_id: str
    term: int
    period: int  # the period the fee pays for (renewal at expiry_{period-1})
    due_at: datetime
    fee: int
    covered: bool


@dataclass(frozen=True)
class MonthLine:
    """One month `[start, end)` of the forecast (rolling months from `now`, G-2)."""

    start: datetime
    end: datetime
    due_units: int
    uncovered_units: int
    lapsing_units: int  # units in lots lapsing unused in this month


@dataclass(frozen=True)
class Forecast:
    """REC-3: the next months' storage obligations against the balance."""

    now: datetime
    balance: int
    obligations: tuple[Obligation, ...]
    months: tuple[MonthLine, ...]
    total_due: int
    shortfall: int  # units to buy now so that every obligation is covered
    low_balance: bool  # an obligation within the low-balance window is not covered
    first_uncovered: Obligation | None


def _schedule(
    items: Sequence[EvidenceItem], until: datetime
) -> list[tuple[tuple[datetime, datetime, str], _Due]]:
    due = []
    for item in items:
        s = item.storage
        if s is None or s.status is not StorageStatus.ACTIVE or not s.auto_renew:
            continue  # S-1; EXPIRED items owe nothing unless reinstated; auto-renew off
        k = s.period
        while (t := s.term.expiry(k)) < until:
            order = renewal_order(t, item.certified_at, item.item_id)
            due.append((order, (item.item_id, s.term.number, k + 1, t, s.term.fee)))
            k += 1
    return due


def project(
    wallet: Wallet, items: Sequence[EvidenceItem], now: datetime, until: datetime
) -> tuple[tuple[Obligation, ...], dict[str, tuple[datetime, int]]]:
    """Simulate renewals and lapses up to `until`; returns obligations and lapses by lot."""
    now, until = require_aware(now, "now"), require_aware(until, "until")
    avail = {
        lot.lot_id: lot.available
        for lot in wallet.lots.values()
        if lot.available > 0 and not lot.lapse_recorded
    }
    lots = {lot_id: wallet.lots[lot_id] for lot_id in avail}
    # (sort order, 0 for a lapse or 1 for a renewal, the lot id or the renewal)
    events: list[tuple[tuple[datetime] | tuple[datetime, datetime, str], int, str | _Due]] = []
    for lot in lots.values():
        if lot.lapses_at < until:  # lapses sort before renewals at the same instant
            events.append(((lot.lapses_at,), 0, lot.lot_id))
    for order, due in _schedule(items, until):
        events.append((order, 1, due))
    events.sort(key=lambda e: (e[0][0], e[1], e[0]))
    obligations: list[Obligation] = []
    lapses: dict[str, tuple[datetime, int]] = {}
    for (at, *_), _, data in events:
        if isinstance(data, str):  # a lot lapses
            lapses[data] = (at, avail[data])
            avail[data] = 0
            continue
        item_id, term, period, due_at, fee = data
        usable = sorted(
            (lots[i] for i, n in avail.items() if n and lots[i].usable_at(due_at)),
            key=lambda lot: lot.fefo_key,
        )
        covered = sum(avail[lot.lot_id] for lot in usable) >= fee
        if covered:
            left = fee
            for lot in usable:
                n = min(left, avail[lot.lot_id])
                avail[lot.lot_id] -= n
                left -= n
        obligations.append(Obligation(item_id, term, period, due_at, fee, covered))
    return tuple(obligations), lapses


def forecast(
    wallet: Wallet,
    items: Sequence[EvidenceItem],
    now: datetime,
    policy: PricingPolicy = DEFAULT_POLICY,
) -> Forecast:
    """REC-3 / REC-8: per-month obligations for `policy.forecast_months`, and the alert."""
    now = require_aware(now, "now")
    bounds = [add_months(now, i) for i in range(policy.forecast_months + 1)]  # from anchor
    obligations, lapses = project(wallet, items, now, bounds[-1])
    months = []
    for start, end in zip(bounds, bounds[1:], strict=False):
        here = [o for o in obligations if start <= max(o.due_at, now) < end]
        months.append(
            MonthLine(
                start,
                end,
                sum(o.fee for o in here),
                sum(o.fee for o in here if not o.covered),
                sum(n for at, n in lapses.values() if start <= at < end),
            )
        )
    uncovered = [o for o in obligations if not o.covered]
    window = now + timedelta(days=policy.low_balance_days)
    first = uncovered[0] if uncovered else None
    return Forecast(
        now,
        wallet.balance(now),
        obligations,
        tuple(months),
        sum(o.fee for o in obligations),
        sum(o.fee for o in uncovered),
        first is not None and first.due_at < window,
        first,
    )

"""Credit lots and the balance as a pure fold over the append-only ledger (P-1 .. P-8).

`fold(entries)` replays a ledger into a `Wallet`; `append(wallet, entries)` adds entries,
skipping exact replays (same key, same content) and refusing anything that would make a
bucket negative, so the balance can never go below zero (G-6): both, and the wallet's
types, live in `wallet.py` and are re-exported here. The builders
(`purchase`, `reserve`, `consume`, ...) compute the entries of one operation against a
wallet and raise a typed error instead of returning a partial result.

Balance at `t` = units available in lots usable at `t`: bought at or before `t` and
`t < lapses_at` (G-3). A lot lapsing at exactly the instant of a debit no longer counts
(A-18), even before its LAPSE entry is written; a debit effective at a past instant
(catch-up) cannot use a lot bought after it. Consumption is FEFO (P-8, A-19): earliest
lapse first, then oldest purchase, then lot id.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from tsa_server.clock.beijing import add_months

from .entries import (
    STORAGE_DEBITS,
    Draw,
    EntryKind,
    LedgerEntry,
    PeriodRef,
    adjust_key,
    consume_key,
    lapse_key,
    purchase_key,
    refund_key,
    release_key,
    reserve_key,
    storage_key,
)
from .errors import DuplicatePeriod, InsufficientCredits, InvalidEntry, LedgerConflict
from .policy import DEFAULT_POLICY, PricingPolicy
from .wallet import EMPTY, Hold, HoldState, Journal, Lot, Wallet, append, fold

__all__ = [
    "EMPTY",
    "Hold",
    "HoldState",
    "Journal",
    "Lot",
    "Wallet",
    "adjust",
    "append",
    "consume",
    "debit_storage",
    "draw_units",
    "fold",
    "lapse_due",
    "lapse_entry",
    "lot_for_consumption",
    "purchase",
    "refund",
    "release",
    "reserve",
]


# ------------------------------------------------------------------ builders


def lot_for_consumption(lots: Iterable[Lot], now: datetime) -> Lot | None:
    """REC-2 / P-8: the lot the next unit comes from at `now` (FEFO), or None."""
    usable = [lot for lot in lots if lot.available > 0 and lot.usable_at(now)]
    return min(usable, key=lambda lot: lot.fefo_key, default=None)


def draw_units(wallet: Wallet, units: int, at: datetime) -> tuple[Draw, ...]:
    """FEFO draws for `units` at `at`, all or nothing (InsufficientCredits)."""
    if units <= 0:
        raise ValueError("draw at least one unit")
    draws, left = [], units
    for lot in wallet.fefo(at):
        n = min(left, lot.available)
        draws.append(Draw(lot.lot_id, n))
        left -= n
        if not left:
            return tuple(draws)
    raise InsufficientCredits(units, wallet.balance(at), wallet.lapsed_units(at))


def _replay(wallet: Wallet, key: str, same: bool | None) -> tuple[LedgerEntry, ...] | None:
    old = wallet.entry(key)
    if old is None:
        return None
    if not same:
        raise LedgerConflict(key)
    return (old,)


def purchase(
    wallet: Wallet,
    lot_id: str,
    quantity: int,
    at: datetime,
    policy: PricingPolicy = DEFAULT_POLICY,
    note: str = "",
) -> tuple[LedgerEntry, ...]:
    """P-1 / P-3: an operator grants a lot (no payment gateway); it lapses 12 months on."""
    lapses = add_months(at, policy.lot_validity_months)
    return (
        LedgerEntry(
            purchase_key(lot_id),
            EntryKind.PURCHASE,
            at,
            lot=lot_id,
            units=quantity,
            lapses_at=lapses,
            note=note,
        ),
    )


def reserve(
    wallet: Wallet, batch: str, items: Sequence[str], at: datetime
) -> tuple[LedgerEntry, ...]:
    """P-2 / P-8 / T-4: one unit per file, reserved for the whole batch or not at all."""
    key = reserve_key(batch)
    old = wallet.entry(key)
    if (r := _replay(wallet, key, old is not None and old.items == tuple(items))) is not None:
        return r
    if not items or len(set(items)) != len(items):
        raise ValueError("a batch needs distinct item ids")
    draws = draw_units(wallet, len(items), at)
    return (LedgerEntry(key, EntryKind.RESERVE, at, draws=draws, items=tuple(items), batch=batch),)


def _held(wallet: Wallet, item: str) -> Hold:
    hold = wallet.holds.get(item)
    if hold is None or hold.state is not HoldState.HELD:
        raise InvalidEntry(f"no unit is held for item {item!r}")
    return hold


def consume(wallet: Wallet, item: str, at: datetime) -> tuple[LedgerEntry, ...]:
    """P-2 / T-3: the item was certified: its held unit is used."""
    key = consume_key(item)
    if (r := _replay(wallet, key, True)) is not None:
        return r
    hold = _held(wallet, item)
    return (LedgerEntry(key, EntryKind.CONSUME, at, draws=(Draw(hold.lot, 1),), item=item),)


def refund(wallet: Wallet, item: str, at: datetime, note: str = "") -> tuple[LedgerEntry, ...]:
    """P-8 / T-6: the item's certification failed: its unit returns to its lot."""
    key = refund_key(item)
    if (r := _replay(wallet, key, True)) is not None:
        return r
    hold = _held(wallet, item)
    return (
        LedgerEntry(key, EntryKind.REFUND, at, draws=(Draw(hold.lot, 1),), item=item, note=note),
    )


def release(wallet: Wallet, batch: str, at: datetime) -> tuple[LedgerEntry, ...]:
    """Return every unit a batch still holds (batch abandoned); () when none is held."""
    key = release_key(batch)
    if (r := _replay(wallet, key, True)) is not None:
        return r
    held = [h for h in wallet.holds.values() if h.batch == batch and h.state is HoldState.HELD]
    if not held:
        return ()
    by_lot: dict[str, list[str]] = {}
    for h in held:
        by_lot.setdefault(h.lot, []).append(h.item)
    draws = tuple(Draw(lot, len(items)) for lot, items in by_lot.items())
    items = tuple(i for lot_items in by_lot.values() for i in lot_items)
    return (LedgerEntry(key, EntryKind.RELEASE, at, draws=draws, items=items, batch=batch),)


def debit_storage(
    wallet: Wallet, kind: EntryKind, ref: PeriodRef, units: int, at: datetime
) -> tuple[LedgerEntry, ...]:
    """S-7 / S-9 / R-14: pay one storage period FEFO; a paid period is never paid twice."""
    if kind not in STORAGE_DEBITS:
        raise ValueError(f"{kind} is not a storage debit")
    key = storage_key(kind, ref)
    if (r := _replay(wallet, key, True)) is not None:
        return r
    if wallet.is_paid(ref):
        raise DuplicatePeriod(f"period {ref} is paid already (R-5)")
    draws = draw_units(wallet, units, at)
    return (LedgerEntry(key, kind, at, draws=draws, period=ref),)


def lapse_entry(wallet: Wallet, lot_id: str) -> tuple[LedgerEntry, ...]:
    """P-3 / T-7: the lapse of one lot's unused units, effective at its lapse instant."""
    lot = wallet.lots[lot_id]
    if lot.lapse_recorded or lot.available == 0:
        return ()
    return (
        LedgerEntry(
            lapse_key(lot_id), EntryKind.LAPSE, lot.lapses_at, lot=lot_id, units=lot.available
        ),
    )


def lapse_due(wallet: Wallet, now: datetime) -> tuple[LedgerEntry, ...]:
    """Every lapse due at `now` (lapses_at <= now), in lapse order."""
    due = sorted(
        (lot for lot in wallet.lots.values() if not lot.valid_at(now)), key=lambda lot: lot.fefo_key
    )
    return tuple(e for lot in due for e in lapse_entry(wallet, lot.lot_id))


def adjust(
    wallet: Wallet, reference: str, lot_id: str, delta: int, at: datetime, note: str
) -> tuple[LedgerEntry, ...]:
    """An operator correction on one lot; a debit larger than the lot's units is refused."""
    if lot_id not in wallet.lots:
        raise InvalidEntry(f"unknown lot {lot_id!r}")
    lot = wallet.lots[lot_id]
    if lot.available + delta < 0:
        raise InsufficientCredits(-delta, lot.available if lot.usable_at(at) else 0)
    if delta > 0 and (lot.lapse_recorded or not lot.valid_at(at)):
        raise InvalidEntry(f"cannot credit lapsed lot {lot_id!r}; grant a new lot instead")
    return (
        LedgerEntry(
            adjust_key(reference), EntryKind.ADJUST, at, lot=lot_id, units=delta, note=note
        ),
    )

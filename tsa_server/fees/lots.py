"""Credit lots and the balance as a pure fold over the append-only ledger (P-1 .. P-8).

`fold(entries)` replays a ledger into a `Wallet`; `append(wallet, entries)` adds entries,
skipping exact replays (same key, same content) and refusing anything that would make a
bucket negative, so the balance can never go below zero (G-6). The builders
(`purchase`, `reserve`, `consume`, ...) compute the entries of one operation against a
wallet and raise a typed error instead of returning a partial result.

Balance at `t` = units available in lots usable at `t`: bought at or before `t` and
`t < lapses_at` (G-3). A lot lapsing at exactly the instant of a debit no longer counts
(A-18), even before its LAPSE entry is written; a debit effective at a past instant
(catch-up) cannot use a lot bought after it. Consumption is FEFO (P-8, A-19): earliest
lapse first, then oldest purchase, then lot id.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from datetime import datetime
from types import MappingProxyType

from tsa_server.beijing_calendar import add_months, require_aware

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


@dataclass(frozen=True)
class Lot:
    """REC-1 `CreditLot`: quantity = available + held + used + lapsed - adjusted."""

    lot_id: str
    purchased_at: datetime
    lapses_at: datetime  # P-3: add_months(purchased_at, 12), half-open
    quantity: int
    available: int = 0  # spendable ("remaining")
    held: int = 0  # reserved for a batch being certified (P-8)
    used: int = 0  # consumed by certification or storage
    lapsed: int = 0
    adjusted: int = 0  # net operator adjustments
    lapse_recorded: bool = False

    def valid_at(self, t: datetime) -> bool:
        """P-3 / G-3: not lapsed at t, i.e. t < lapses_at (T-1: 09:59:59 yes, 10:00:00 no)."""
        return require_aware(t) < self.lapses_at

    def usable_at(self, t: datetime) -> bool:
        """Can pay a debit effective at t: bought at or before t and not lapsed at t.

        A debit at a past instant (a renewal caught up after downtime) cannot use a lot
        bought after that instant: the ledger stays a consistent timeline, and the outcome
        does not depend on when the scheduler ran (the holder can still reinstate).
        """
        u = require_aware(t)
        return self.purchased_at <= u < self.lapses_at

    @property
    def fefo_key(self) -> tuple[datetime, datetime, str]:
        return (self.lapses_at, self.purchased_at, self.lot_id)


class HoldState(enum.StrEnum):
    HELD = "HELD"
    CONSUMED = "CONSUMED"
    REFUNDED = "REFUNDED"
    RELEASED = "RELEASED"


@dataclass(frozen=True)
class Hold:
    """One reserved certification unit: which item, batch and lot, and what became of it."""

    item: str
    batch: str
    lot: str
    state: HoldState = HoldState.HELD


@dataclass(frozen=True)
class Wallet:
    """An account's credit state, derived from its ledger and nothing else."""

    lots: Mapping[str, Lot]
    holds: Mapping[str, Hold]
    entries: Mapping[str, LedgerEntry]  # by idempotency key, in append order
    paid: AbstractSet[PeriodRef]  # storage periods paid

    def balance(self, at: datetime) -> int:
        """Units usable at `at`: available in lots usable at `at`; never negative."""
        return sum(lot.available for lot in self.lots.values() if lot.usable_at(at))

    def lapsed_units(self, at: datetime) -> int:
        """Units lost to lapse by `at` (recorded or not yet recorded)."""
        return sum(
            lot.lapsed + (0 if lot.valid_at(at) else lot.available) for lot in self.lots.values()
        )

    def fefo(self, at: datetime) -> tuple[Lot, ...]:
        """Lots with units usable at `at`, in consumption order (P-8, A-19)."""
        usable = [lot for lot in self.lots.values() if lot.available > 0 and lot.usable_at(at)]
        return tuple(sorted(usable, key=lambda lot: lot.fefo_key))

    def is_paid(self, ref: PeriodRef) -> bool:
        return ref in self.paid

    def entry(self, key: str) -> LedgerEntry | None:
        return self.entries.get(key)


EMPTY = Wallet(MappingProxyType({}), MappingProxyType({}), MappingProxyType({}), frozenset())


class Journal:
    """A mutable fold for computations that append many entries (the scheduler's tick).

    `add` applies entries exactly like `append`, without copying the whole state each
    time; `view()` is a read-only wallet over the live state, valid until the next
    `add`; `freeze()` returns an independent `Wallet`. An entry refused by `add` leaves
    the journal unusable (use `append` for all-or-nothing batches).
    """

    def __init__(self, w: Wallet):
        self.lots, self.holds = dict(w.lots), dict(w.holds)
        self.entries = dict(w.entries)
        self.paid: dict[PeriodRef, None] = dict.fromkeys(w.paid)

    def view(self) -> Wallet:
        return Wallet(
            MappingProxyType(self.lots),
            MappingProxyType(self.holds),
            MappingProxyType(self.entries),
            self.paid.keys(),
        )

    def freeze(self) -> Wallet:
        return Wallet(
            MappingProxyType(dict(self.lots)),
            MappingProxyType(dict(self.holds)),
            MappingProxyType(dict(self.entries)),
            frozenset(self.paid),
        )

    def extend(self, entries: Iterable[LedgerEntry]) -> None:
        for e in entries:
            self.add(e)

    def lot(self, lot_id: str | None) -> Lot:
        if lot_id is None or lot_id not in self.lots:
            raise InvalidEntry(f"unknown lot {lot_id!r}")
        return self.lots[lot_id]

    def add(self, e: LedgerEntry) -> None:
        old = self.entries.get(e.key)
        if old is not None:
            if old != e:
                raise LedgerConflict(e.key)
            return  # REC-1: an exact replay changes nothing
        getattr(self, f"_{e.kind.value}")(e)
        self.entries[e.key] = e

    def _take(self, e: LedgerEntry, to: str) -> None:
        if len({d.lot for d in e.draws}) != len(e.draws):
            raise InvalidEntry(f"{e.key}: a lot appears twice in the draws")
        for d in e.draws:
            lot = self.lot(d.lot)
            if not lot.usable_at(e.at):  # G-3: lapsed at e.at, or bought after it
                raise InvalidEntry(f"{e.key}: lot {d.lot} is not usable at {e.at}")
            if lot.available < d.units:
                raise InvalidEntry(f"{e.key}: lot {d.lot} has only {lot.available} units")
        for d in e.draws:
            lot = self.lots[d.lot]
            self.lots[d.lot] = replace(
                lot, available=lot.available - d.units, **{to: getattr(lot, to) + d.units}
            )

    def _unhold(self, item: str, lot_id: str, batch: str | None, state: HoldState) -> None:
        hold = self.holds.get(item)
        if hold is None or hold.state is not HoldState.HELD or hold.lot != lot_id:
            raise InvalidEntry(f"no unit held for item {item!r} in lot {lot_id!r}")
        if batch is not None and hold.batch != batch:
            raise InvalidEntry(f"item {item!r} is not held by batch {batch!r}")
        lot = self.lots[lot_id]
        if state is HoldState.CONSUMED:
            lot = replace(lot, held=lot.held - 1, used=lot.used + 1)
        elif lot.lapse_recorded:  # returned after its lot lapsed: it lapses with it
            lot = replace(lot, held=lot.held - 1, lapsed=lot.lapsed + 1)
        else:
            lot = replace(lot, held=lot.held - 1, available=lot.available + 1)
        self.lots[lot_id] = lot
        self.holds[item] = replace(hold, state=state)

    def _purchase(self, e: LedgerEntry) -> None:
        assert e.lot is not None and e.lapses_at is not None
        if e.lot in self.lots:
            raise InvalidEntry(f"lot {e.lot!r} exists already")
        if e.lapses_at <= e.at:
            raise InvalidEntry("a lot must lapse after its purchase")
        self.lots[e.lot] = Lot(e.lot, e.at, e.lapses_at, e.units, available=e.units)

    def _reserve(self, e: LedgerEntry) -> None:
        if len(set(e.items)) != len(e.items) or any(i in self.holds for i in e.items):
            raise InvalidEntry(f"{e.key}: item ids must be new and distinct")
        self._take(e, "held")
        slots = iter(e.items)
        for d in e.draws:
            for _ in range(d.units):
                item = next(slots)
                self.holds[item] = Hold(item, e.batch or "", d.lot)

    def _consume(self, e: LedgerEntry) -> None:
        self._unhold(e.item or "", e.draws[0].lot, None, HoldState.CONSUMED)

    def _refund(self, e: LedgerEntry) -> None:
        self._unhold(e.item or "", e.draws[0].lot, None, HoldState.REFUNDED)

    def _release(self, e: LedgerEntry) -> None:
        slots = iter(e.items)
        for d in e.draws:
            for _ in range(d.units):
                self._unhold(next(slots), d.lot, e.batch, HoldState.RELEASED)

    def _storage(self, e: LedgerEntry) -> None:
        assert e.period is not None
        if e.period in self.paid:
            raise DuplicatePeriod(f"{e.key}: period {e.period} is paid already (R-5)")
        self._take(e, "used")
        self.paid[e.period] = None

    _renew = _reupload = _reinstate = _storage

    def _lapse(self, e: LedgerEntry) -> None:
        lot = self.lot(e.lot)
        if lot.lapse_recorded or e.at < lot.lapses_at or e.units != lot.available:
            raise InvalidEntry(f"{e.key}: not the lapse of lot {lot.lot_id} as it stands")
        self.lots[lot.lot_id] = replace(
            lot, available=0, lapsed=lot.lapsed + e.units, lapse_recorded=True
        )

    def _purge(self, e: LedgerEntry) -> None:
        pass  # a record only; no credit moves

    def _adjust(self, e: LedgerEntry) -> None:
        lot = self.lot(e.lot)
        if lot.available + e.units < 0:
            raise InvalidEntry(f"{e.key}: lot {lot.lot_id} has only {lot.available} units")
        if e.units > 0 and (lot.lapse_recorded or not lot.valid_at(e.at)):
            raise InvalidEntry(f"{e.key}: cannot credit lapsed lot {lot.lot_id}")
        self.lots[lot.lot_id] = replace(
            lot, available=lot.available + e.units, adjusted=lot.adjusted + e.units
        )


def append(wallet: Wallet, entries: Iterable[LedgerEntry]) -> Wallet:
    """Apply entries in order, all or nothing; exact replays are skipped (idempotent)."""
    acc = Journal(wallet)
    acc.extend(entries)
    return acc.freeze()


def fold(entries: Iterable[LedgerEntry]) -> Wallet:
    """The wallet a ledger describes (G-6: balances are derived, never stored)."""
    return append(EMPTY, entries)


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

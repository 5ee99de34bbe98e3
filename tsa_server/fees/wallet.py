"""The credit ledger's state: lots, holds and the `Wallet` they make, folded from the
append-only entries (P-1 .. P-8, G-6).

`fold(entries)` replays a ledger into a `Wallet`; `append(wallet, entries)` adds entries,
skipping exact replays (same key, same content) and refusing anything that would make a
bucket negative, so the balance can never go below zero (G-6). Balance at `t` = units
available in lots usable at `t`: bought at or before `t` and `t < lapses_at` (G-3); FEFO
order is earliest lapse first, then oldest purchase, then lot id (P-8, A-19). The
operations that make entries are in `lots.py`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from datetime import datetime
from types import MappingProxyType

from tsa_server.clock.beijing import require_aware

from .entries import (
    LedgerEntry,
    PeriodRef,
)
from .errors import DuplicatePeriod, InvalidEntry, LedgerConflict


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

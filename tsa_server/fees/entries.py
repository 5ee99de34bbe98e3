"""Credit-ledger entries (G-6, REC-1): kinds, idempotency keys, canonical records.

The credit ledger is append-only; an account's balance is a fold over its entries
(lots.py). Each entry carries an idempotency key unique within the account:
`(kind, item, term, period)` for storage debits, `(kind, lot)` for lots, `(kind, batch)`
and `(kind, item)` for certification units. Appending an entry whose key is present is
a no-op if the entry is identical and a `LedgerConflict` otherwise, so a retried or
re-run computation can never debit twice (R-5).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tsa_server.clock.beijing import parse_utc_text, require_aware, utc_text


class EntryKind(enum.StrEnum):
    """G-6 / REC-1 entry kinds; the comment says which lot buckets move."""

    PURCHASE = "purchase"  # P-1: new lot, `units` available
    RESERVE = "reserve"  # P-8: available -> held, one unit per file of a batch
    CONSUME = "consume"  # P-2 / T-3: held -> used (the file was certified)
    REFUND = "refund"  # P-8 / T-6: held -> available (its certification failed)
    RELEASE = "release"  # held -> available for every unit a batch still holds
    RENEW = "renew"  # S-7: available -> used, pays period k+1 at expiry_k
    REUPLOAD = "reupload"  # S-9: available -> used, pays period 0 of a re-upload term
    REINSTATE = "reinstate"  # S-10 / R-14: available -> used, pays a missed period
    LAPSE = "lapse"  # P-3 / T-7: available -> lapsed at the lot's lapse instant
    PURGE = "purge"  # a record with no credit effect
    ADJUST = "adjust"  # operator correction: available +/- units on one lot


STORAGE_DEBITS = frozenset({EntryKind.RENEW, EntryKind.REUPLOAD, EntryKind.REINSTATE})


@dataclass(frozen=True)
class Draw:
    """Units taken from (or returned to) one lot."""

    lot: str
    units: int

    def __post_init__(self) -> None:
        if self.units <= 0:
            raise ValueError("a draw moves at least one unit")


@dataclass(frozen=True)
class PeriodRef:
    """G-6: the storage period a debit pays for: (item, term number, period index)."""

    item: str
    term: int
    period: int


@dataclass(frozen=True)
class LedgerEntry:
    """One credit-ledger entry; `at` is the instant it takes effect (not when written)."""

    key: str
    kind: EntryKind
    at: datetime
    lot: str | None = None  # PURCHASE, LAPSE, ADJUST
    units: int = 0  # PURCHASE quantity, LAPSE count, ADJUST signed delta
    lapses_at: datetime | None = None  # PURCHASE (P-3)
    draws: tuple[Draw, ...] = ()  # lots touched by RESERVE/CONSUME/REFUND/RELEASE/debits
    items: tuple[str, ...] = ()  # RESERVE: one item per unit, in draw order; RELEASE too
    item: str | None = None  # CONSUME, REFUND, PURGE
    batch: str | None = None  # RESERVE, RELEASE
    period: PeriodRef | None = None  # RENEW, REUPLOAD, REINSTATE, PURGE (period = -1)
    note: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", require_aware(self.at, "at"))
        if self.lapses_at is not None:
            object.__setattr__(self, "lapses_at", require_aware(self.lapses_at, "lapses_at"))
        if not self.key:
            raise ValueError("an entry needs an idempotency key")
        _check_shape(self)

    @property
    def drawn(self) -> int:
        """Total units of the draws."""
        return sum(d.units for d in self.draws)


def _check_shape(e: LedgerEntry) -> None:
    k = e.kind
    need: dict[str, bool] = {
        "lot": k in (EntryKind.PURCHASE, EntryKind.LAPSE, EntryKind.ADJUST),
        "draws": k in STORAGE_DEBITS
        or k in (EntryKind.RESERVE, EntryKind.CONSUME, EntryKind.REFUND, EntryKind.RELEASE),
        "item": k in (EntryKind.CONSUME, EntryKind.REFUND, EntryKind.PURGE),
        "batch": k in (EntryKind.RESERVE, EntryKind.RELEASE),
        "period": k in STORAGE_DEBITS or k is EntryKind.PURGE,
    }
    for name, required in need.items():
        if required and not getattr(e, name):
            raise ValueError(f"{k} entry needs {name}")
    if k is EntryKind.PURCHASE and (e.units <= 0 or e.lapses_at is None):
        raise ValueError("a purchase needs units > 0 and lapses_at")
    if k is EntryKind.LAPSE and e.units <= 0:
        raise ValueError("a lapse moves at least one unit")
    if k is EntryKind.ADJUST and e.units == 0:
        raise ValueError("an adjustment moves at least one unit")
    if k in (EntryKind.RESERVE, EntryKind.RELEASE) and len(e.items) != e.drawn:
        raise ValueError(f"{k}: one item per unit drawn")
    if k in (EntryKind.CONSUME, EntryKind.REFUND) and e.drawn != 1:
        raise ValueError(f"{k} moves exactly one unit")


# ------------------------------------------------------------- idempotency keys (REC-1)


def purchase_key(lot: str) -> str:
    return f"purchase/{lot}"


def lapse_key(lot: str) -> str:
    return f"lapse/{lot}"


def reserve_key(batch: str) -> str:
    return f"reserve/{batch}"


def release_key(batch: str) -> str:
    return f"release/{batch}"


def consume_key(item: str) -> str:
    return f"consume/{item}"


def refund_key(item: str) -> str:
    return f"refund/{item}"


def storage_key(kind: EntryKind, ref: PeriodRef) -> str:
    """R-5: one key per (kind, item, term, period); the fold also refuses a second payment
    of the same period under any kind (DuplicatePeriod)."""
    return f"{kind.value}/{ref.item}/{ref.term}/{ref.period}"


def purge_key(item: str, term: int) -> str:
    return f"purge/{item}/{term}"


def adjust_key(reference: str) -> str:
    return f"adjust/{reference}"


# ------------------------------------------------------------- canonical records


def to_record(e: LedgerEntry) -> dict[str, Any]:
    """A JSON-ready dict with one form per value (UTC `...Z` instants), for persistence."""
    rec: dict[str, Any] = {"key": e.key, "kind": e.kind.value, "at": utc_text(e.at)}
    if e.lot is not None:
        rec["lot"] = e.lot
    if e.units:
        rec["units"] = e.units
    if e.lapses_at is not None:
        rec["lapses_at"] = utc_text(e.lapses_at)
    if e.draws:
        rec["draws"] = [[d.lot, d.units] for d in e.draws]
    if e.items:
        rec["items"] = list(e.items)
    for name in ("item", "batch"):
        if getattr(e, name) is not None:
            rec[name] = getattr(e, name)
    if e.period is not None:
        rec["period"] = [e.period.item, e.period.term, e.period.period]
    if e.note:
        rec["note"] = e.note
    return rec


def from_record(rec: dict[str, Any]) -> LedgerEntry:
    """Inverse of `to_record`."""
    period = rec.get("period")
    lapses = rec.get("lapses_at")
    return LedgerEntry(
        key=rec["key"],
        kind=EntryKind(rec["kind"]),
        at=parse_utc_text(rec["at"]),
        lot=rec.get("lot"),
        units=rec.get("units", 0),
        lapses_at=None if lapses is None else parse_utc_text(lapses),
        draws=tuple(Draw(lot, n) for lot, n in rec.get("draws", ())),
        items=tuple(rec.get("items", ())),
        item=rec.get("item"),
        batch=rec.get("batch"),
        period=None if period is None else PeriodRef(*period),
        note=rec.get("note", ""),
    )

"""The renewal scheduler's decision function (S-7, S-10, R-1 .. R-8, R-15, A-9, A-18, A-20).

`tick(wallet, items, now)` is what the scheduler calls every minute and on start-up. It
returns, in processing order, every due step at `now`: lot lapses (P-3), renewals at
`expiry_k` (pay-in-advance, S-7) and purges at the end of the grace window (S-10). After
downtime it catches up: each due (item, period) is processed at its own instant in
global (instant, certified_at, item id) order (A-20), so the outcome does not depend on
when the scheduler happened to run. Every debit has a key naming (item, term, period):
running `tick` again, or after a crash between debit and item update, never debits
twice (R-5); a period found paid in the ledger just advances the item.

Ordering at one instant: lot lapses first (a lot lapsing at exactly the renewal instant
no longer counts, A-18), then renewals, then purges. Each item is decided alone: one
that cannot be paid does not block a cheaper one after it (R-6, R-7).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from tsa_server.clock.beijing import require_aware

from .entries import EntryKind, LedgerEntry, PeriodRef, purge_key
from .errors import InsufficientCredits
from .items import EvidenceItem, StorageStatus, purge_at
from .lots import Journal, Wallet, debit_storage, lapse_entry
from .notices import Notice, NoticeKind, Outcome
from .policy import DEFAULT_POLICY, PricingPolicy

_LAPSE, _RENEW, _PURGE = 0, 1, 2
# What the scheduler does next, in order: (instant, kind, tie-break instant, lot or item id).
_Event = tuple[datetime, int, datetime, str]


@dataclass(frozen=True)
class Due:
    """An item whose storage renewal falls due (input of `renewal_decision`)."""

    item_id: str
    fee: int
    expiry: datetime
    certified_at: datetime


@dataclass(frozen=True)
class Decision:
    """REC-2 `renewal_decision` result: who renews, who expires, what is left."""

    renewed: tuple[str, ...]
    expired: tuple[str, ...]
    balance: int


def renewal_order(
    expiry: datetime, certified_at: datetime, item_id: str
) -> tuple[datetime, datetime, str]:
    """A-9 / S-7: ascending (expiry instant, certification instant, item id)."""
    return (require_aware(expiry), require_aware(certified_at), item_id)


def renewal_decision(balance: int, due: Iterable[Due]) -> Decision:
    """REC-2: decide renewals against a plain balance; never partial, never blocking."""
    if balance < 0:
        raise ValueError("a balance is never negative")
    renewed, expired = [], []
    for d in sorted(due, key=lambda d: renewal_order(d.expiry, d.certified_at, d.item_id)):
        if balance >= d.fee:  # ">=", a balance of exactly the fee renews
            balance -= d.fee
            renewed.append(d.item_id)
        else:  # no debit at all
            expired.append(d.item_id)
    return Decision(tuple(renewed), tuple(expired), balance)


@dataclass(frozen=True)
class TickResult:
    """The steps of one scheduler run and the wallet after all of them."""

    steps: tuple[Outcome, ...]
    wallet: Wallet

    @property
    def entries(self) -> tuple[LedgerEntry, ...]:
        return tuple(e for s in self.steps for e in s.entries)

    @property
    def notices(self) -> tuple[Notice, ...]:
        return tuple(n for s in self.steps for n in s.notices)

    @property
    def items(self) -> Mapping[str, EvidenceItem]:
        """The final state of every item that changed."""
        return MappingProxyType({s.item.item_id: s.item for s in self.steps if s.item})


def _next_event(item: EvidenceItem, now: datetime, policy: PricingPolicy) -> _Event | None:
    s = item.storage
    if s is None or not item.storage_applies:
        return None  # S-1, R-8, R-9: hash-only, deleted or purged: never charged
    if s.status is StorageStatus.ACTIVE and s.expires_at <= now:  # G-3: fires at t >= T
        return (s.expires_at, _RENEW, item.certified_at, item.item_id)
    p = purge_at(item, policy)
    if p is not None and p <= now:
        return (p, _PURGE, item.certified_at, item.item_id)
    return None


def renew_at_expiry(wallet: Wallet, item: EvidenceItem) -> Outcome:
    """S-7 at `expiry_k`: debit the next period in advance, or expire without any debit."""
    s = item.storage
    assert s is not None and s.status is StorageStatus.ACTIVE
    t, fee = s.expires_at, s.term.fee
    ref = PeriodRef(item.item_id, s.term.number, s.period + 1)
    renewed = item.with_storage(period=s.period + 1, since=t)
    if wallet.is_paid(ref):  # debited before a crash; only the item lags behind
        return Outcome(t, (), renewed, ())
    failed = item.with_storage(status=StorageStatus.EXPIRED, since=t)
    if not s.auto_renew:  # S-7 [EXT] auto-renew off: the period ends, nothing is charged
        note = Notice(
            f"renewal-failed/{ref.item}/{ref.term}/{ref.period}",
            NoticeKind.RENEWAL_FAILED,
            t,
            item.item_id,
            t,
            fee,
            None,
            "auto-renew off",
        )
        return Outcome(t, (), failed, (note,))
    try:
        entries = debit_storage(wallet, EntryKind.RENEW, ref, fee, t)
    except InsufficientCredits as short:  # no partial debit; original locked
        note = Notice(
            f"renewal-failed/{ref.item}/{ref.term}/{ref.period}",
            NoticeKind.RENEWAL_FAILED,
            t,
            item.item_id,
            t,
            fee,
            False,
            f"balance {short.available} < fee {fee}",
        )
        return Outcome(t, (), failed, (note,))
    note = Notice(
        f"renewed/{ref.item}/{ref.term}/{ref.period}",
        NoticeKind.RENEWED,
        t,
        item.item_id,
        renewed.storage.expires_at if renewed.storage else None,
        fee,
        True,
    )
    return Outcome(t, entries, renewed, (note,))


def purge(item: EvidenceItem, policy: PricingPolicy = DEFAULT_POLICY) -> Outcome:
    """R-15: the grace window is over: the original is purged and the purge recorded.

    The certificate, token and hash record stay (S-10, A-6); only the original goes.
    """
    s = item.storage
    p = purge_at(item, policy)
    assert s is not None and p is not None
    ref = PeriodRef(item.item_id, s.term.number, s.period + 1)
    entry = LedgerEntry(
        purge_key(item.item_id, s.term.number),
        EntryKind.PURGE,
        p,
        item=item.item_id,
        period=ref,
        note="original purged after grace",
    )
    note = Notice(f"purged/{item.item_id}/{s.term.number}", NoticeKind.PURGED, p, item.item_id, p)
    return Outcome(p, (entry,), item.with_storage(status=StorageStatus.PURGED, since=p), (note,))


def tick(
    wallet: Wallet,
    items: Sequence[EvidenceItem],
    now: datetime,
    policy: PricingPolicy = DEFAULT_POLICY,
) -> TickResult:
    """REC-3: every step due at `now`, in order; idempotent; catches up after downtime."""
    now = require_aware(now, "now")
    journal = Journal(wallet)
    current = {i.item_id: i for i in items}
    heap: list[_Event] = []
    for lot in wallet.lots.values():
        if not lot.lapse_recorded and lot.available > 0 and not lot.valid_at(now):
            heap.append((lot.lapses_at, _LAPSE, lot.purchased_at, lot.lot_id))
    for item in items:
        if (ev := _next_event(item, now, policy)) is not None:
            heap.append(ev)
    heapq.heapify(heap)
    steps: list[Outcome] = []
    while heap:
        at, rank, _, subject = heapq.heappop(heap)
        view = journal.view()
        if rank == _LAPSE:
            entries = lapse_entry(view, subject)
            if not entries:
                continue
            units = entries[0].units
            note = Notice(f"lot-lapsed/{subject}", NoticeKind.LOT_LAPSED, at, subject, at, units)
            step = Outcome(at, entries, None, (note,))
        elif rank == _RENEW:
            step = renew_at_expiry(view, current[subject])
        else:
            step = purge(current[subject], policy)
        journal.extend(step.entries)
        if step.item is not None:
            current[subject] = step.item
            if (ev := _next_event(step.item, now, policy)) is not None:
                heapq.heappush(heap, ev)
        steps.append(step)
    return TickResult(tuple(steps), journal.freeze())

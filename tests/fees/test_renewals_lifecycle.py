"""tsa_server.fees.renewals and fees.lifecycle against docs/spec/evidence.md table E.3
(R-1 .. R-15): renewal, deletion, re-upload, reinstatement, purge.

Each row is one scenario function registered under its row id; `test_e3` runs them all
with the row id as the test id. Instants are Beijing time (`bj`); the clock is a
`FakeClock` whose `now()` is passed to the pure rule functions.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from tests.fees.conftest import MB, FakeClock, bj, item, sha, wallet
from tsa_server.fees import (
    Artefact,
    ConfirmationRequired,
    DigestMismatch,
    EntryKind,
    EvidenceItem,
    FilingStatus,
    GraceExpired,
    InsufficientCredits,
    Mode,
    OriginalLocked,
    StorageStatus,
    Wallet,
    append,
    delete_original,
    downloadable,
    filing_status,
    purchase,
    reinstate,
    require_download,
    reupload,
    tick,
)

ROWS: dict[str, Callable[[], None]] = {}


def row(row_id: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    def register(fn: Callable[[], None]) -> Callable[[], None]:
        ROWS[row_id] = fn
        return fn

    return register


E1_ITEM_START = bj(2023, 11, 1)  # E-1: 500 MB, expiry_0 = 2024-11-01 00:00
EXPIRY = bj(2024, 11, 1)


def e1_item() -> EvidenceItem:
    return item("A", 500 * MB, E1_ITEM_START)


def with_balance(units: int, bought: datetime | None = None) -> Wallet:
    return wallet(("lot1", units, bought or bj(2024, 6, 1)))


def run(w: Wallet, items: list[EvidenceItem], now) -> tuple[Wallet, dict[str, EvidenceItem]]:
    """One scheduler run persisted: append its entries, keep its items."""
    result = tick(w, items, now)
    w2 = append(w, result.entries)
    assert w2 == result.wallet
    return w2, {**{i.item_id: i for i in items}, **result.items}


def storage_debits(w: Wallet) -> list:
    return [
        e
        for e in w.entries.values()
        if e.kind in (EntryKind.RENEW, EntryKind.REUPLOAD, EntryKind.REINSTATE)
    ]


def expired_r2() -> tuple[Wallet, EvidenceItem]:
    w, items = run(with_balance(2), [e1_item()], EXPIRY)
    return w, items["A"]


@row("R-1")
def r1() -> None:
    clock = FakeClock(EXPIRY)
    w, items = run(with_balance(5), [e1_item()], clock())
    (debit,) = storage_debits(w)
    assert debit.drawn == 3 and debit.at == EXPIRY
    assert w.balance(clock()) == 2
    a = items["A"]
    assert a.status is StorageStatus.ACTIVE and a.storage.expires_at == bj(2025, 11, 1)


@row("R-2")
def r2() -> None:
    w, a = expired_r2()
    assert storage_debits(w) == []
    assert w.balance(EXPIRY) == 2
    assert a.status is StorageStatus.EXPIRED and a.storage.since == EXPIRY
    with pytest.raises(OriginalLocked):
        require_download(a, Artefact.ORIGINAL)
    for proof in (Artefact.CERTIFICATE, Artefact.TOKEN, Artefact.HASH_RECORD):
        require_download(a, proof)  # S-10 decision: never held hostage


@row("R-3")
def r3() -> None:
    small = item("B", 150 * MB, bj(2023, 12, 1))  # expiry_0 2026-12-01
    t = bj(2026, 12, 1)
    w, items = run(with_balance(1, bj(2026, 6, 1)), [small], t)
    assert [e.drawn for e in storage_debits(w)] == [1]
    assert w.balance(t) == 0
    assert items["B"].status is StorageStatus.ACTIVE
    assert items["B"].storage.expires_at == bj(2027, 12, 1)


@row("R-4")
def r4() -> None:
    clock = FakeClock(EXPIRY - timedelta(seconds=1))
    w = with_balance(5)
    assert tick(w, [e1_item()], clock()).steps == ()
    clock.advance(timedelta(seconds=1))
    result = tick(w, [e1_item()], clock())
    assert [e.kind for e in result.entries] == [EntryKind.RENEW]


@row("R-5")
def r5() -> None:
    w0 = with_balance(5)
    first = tick(w0, [e1_item()], EXPIRY)
    w1 = append(w0, first.entries)
    # crash after the debit, before the item was stored: the item still says period 0
    again = tick(w1, [e1_item()], EXPIRY + timedelta(minutes=1))
    assert again.entries == ()
    assert again.items["A"].storage.period == 1
    # the same run replayed (same keys, same content) appends nothing new
    w2 = append(append(w1, first.entries), again.entries)
    assert len(storage_debits(w2)) == 1 and w2.balance(EXPIRY) == 2


def pair(balance: int) -> tuple[Wallet, list[EvidenceItem]]:
    """R-6/R-7: A (fee 3, certified 2020-09-01) and B (fee 1, certified 2022-12-01),
    both due at 2025-12-01 00:00."""
    a = item("A", 500 * MB, bj(2020, 9, 1))  # LEGACY LARGE 15 m: expiry_k = 2021-12-01 + k y
    a = a.with_storage(period=4)
    b = item("B", 150 * MB, bj(2022, 12, 1))  # CURRENT SMALL 36 m
    assert a.storage.expires_at == b.storage.expires_at == bj(2025, 12, 1)
    return wallet(("lot1", balance, bj(2025, 6, 1))), [b, a]  # input order is irrelevant


@row("R-6")
def r6() -> None:
    w, items = pair(3)
    w, out = run(w, items, bj(2025, 12, 1))
    assert out["A"].status is StorageStatus.ACTIVE and out["B"].status is StorageStatus.EXPIRED
    assert w.balance(bj(2025, 12, 1)) == 0


@row("R-7")
def r7() -> None:
    w, items = pair(2)
    w, out = run(w, items, bj(2025, 12, 1))
    assert out["A"].status is StorageStatus.EXPIRED and out["B"].status is StorageStatus.ACTIVE
    assert [e.period.item for e in storage_debits(w)] == ["B"]
    assert w.balance(bj(2025, 12, 1)) == 1


@row("R-8")
def r8() -> None:
    h = item("H", 5 * 2**30, bj(2023, 1, 1), mode=Mode.HASH_ONLY)
    w = with_balance(0 + 1, bj(2023, 1, 1))
    for years in (0, 1, 3, 10):
        result = tick(w, [h], bj(2023 + years, 6, 1))
        assert result.steps == () or all(s.item is None for s in result.steps)
        assert not [e for e in result.entries if e.kind is not EntryKind.LAPSE]
    assert h.storage is None and h.status is None and not h.storage_applies
    assert filing_status(h, bj(2040, 1, 1)) is FilingStatus.VALID


def deleted_r9() -> EvidenceItem:
    small = item("B", 150 * MB, bj(2023, 12, 1))  # expiry_0 2026-12-01
    return delete_original(small, bj(2026, 5, 1), downloaded_confirmed=True).item


@row("R-9")
def r9() -> None:
    original = item("B", 150 * MB, bj(2023, 12, 1))
    b = deleted_r9()
    w = with_balance(10, bj(2026, 6, 1))
    for t in (bj(2026, 12, 1), bj(2027, 3, 1)):
        assert tick(w, [b], t).steps == ()
    assert b.status is StorageStatus.ORIGINAL_DELETED and not b.storage_applies
    assert b.digests == original.digests and b.serial == original.serial
    assert b.certified_at == original.certified_at
    assert downloadable(b) == frozenset(Artefact) - {Artefact.ORIGINAL}


@row("R-10")
def r10() -> None:
    with pytest.raises(ConfirmationRequired):
        delete_original(e1_item(), bj(2024, 5, 1), downloaded_confirmed=False)


@row("R-11")
def r11() -> None:
    b = deleted_r9()
    now = bj(2026, 5, 10, 10)
    w = with_balance(4, bj(2026, 1, 1))
    out = reupload(w, b, sha("B"), now)
    (debit,) = out.entries
    assert debit.kind is EntryKind.REUPLOAD and debit.drawn == 1 and debit.at == now
    assert append(w, out.entries).balance(now) == 3
    assert out.item.status is StorageStatus.ACTIVE
    assert out.item.storage.expires_at == bj(2027, 5, 10, 10)
    assert out.item.epoch == b.epoch


@row("R-12")
def r12() -> None:
    a = delete_original(e1_item(), bj(2024, 5, 1), downloaded_confirmed=True).item
    w = with_balance(2)
    with pytest.raises(InsufficientCredits) as exc:
        reupload(w, a, sha("A"), bj(2024, 7, 1))
    assert (exc.value.needed, exc.value.available) == (3, 2)
    assert w.balance(bj(2024, 7, 1)) == 2


@row("R-13")
def r13() -> None:
    b = deleted_r9()
    w = with_balance(4, bj(2026, 1, 1))
    with pytest.raises(DigestMismatch):
        reupload(w, b, sha("something else"), bj(2026, 5, 10, 10))


@row("R-14")
def r14() -> None:
    w, a = expired_r2()
    now = EXPIRY + timedelta(days=30)
    w = append(w, purchase(w, "topup", 3, now))
    assert w.balance(now) == 5
    out = reinstate(w, a, now)
    (debit,) = out.entries
    assert debit.kind is EntryKind.REINSTATE and debit.drawn == 3
    assert a.storage.term.start(debit.period.period) == EXPIRY  # the period from 2024-11-01
    assert append(w, out.entries).balance(now) == 2
    assert out.item.status is StorageStatus.ACTIVE
    assert out.item.storage.expires_at == bj(2025, 11, 1)


@row("R-15")
def r15() -> None:
    w, a = expired_r2()
    end = EXPIRY + timedelta(days=90)
    assert tick(w, [a], end - timedelta(seconds=1)).steps == ()
    w = append(w, purchase(w, "topup", 3, end))
    with pytest.raises(GraceExpired):
        reinstate(w, a, end)
    result = tick(w, [a], end)
    (entry,) = result.entries
    assert entry.kind is EntryKind.PURGE and entry.at == end and entry.item == "A"
    p = result.items["A"]
    assert p.status is StorageStatus.PURGED
    assert downloadable(p) == frozenset(Artefact) - {Artefact.ORIGINAL}
    assert append(w, result.entries).balance(end) == w.balance(end)  # a record only


def test_every_row_is_registered() -> None:
    assert list(ROWS) == [f"R-{n}" for n in range(1, 16)]


@pytest.mark.parametrize("row_id", list(ROWS), ids=list(ROWS))
def test_e3_row(row_id: str) -> None:
    ROWS[row_id]()

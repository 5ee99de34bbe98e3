"""tsa_server.fees.lots (and the filing and deposit-field rules it meets) against
docs/spec/evidence.md table E.4 (T-1 .. T-9): credit lots, consumption, filings, deposit fields."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from tests.fees.conftest import MB, bj, item, wallet
from tsa_server.fees import (
    EntryKind,
    FieldError,
    FilingStatus,
    InsufficientCredits,
    append,
    consume,
    filing_status,
    lot_for_consumption,
    parse_deposit_form,
    refund,
    reserve,
    tick,
)

ROWS: dict[str, Callable[[], None]] = {}


def row(row_id: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    def register(fn: Callable[[], None]) -> Callable[[], None]:
        ROWS[row_id] = fn
        return fn

    return register


def certify(w, batch: str, items: list[str], at):
    """Reserve a batch, then consume each unit: the deposit path (P-8)."""
    w = append(w, reserve(w, batch, items, at))
    for i in items:
        w = append(w, consume(w, i, at))
    return w


@row("T-1")
def t1() -> None:
    w = wallet(("L", 10, bj(2024, 3, 1, 10)))
    ok = certify(w, "b1", ["f1"], bj(2025, 3, 1, 9, 59, 59))
    assert ok.lots["L"].used == 1
    with pytest.raises(InsufficientCredits) as exc:
        reserve(w, "b2", ["f2"], bj(2025, 3, 1, 10))
    assert (exc.value.available, exc.value.lapsed) == (0, 10)


@row("T-2")
def t2() -> None:
    w = wallet(("L", 10, bj(2024, 2, 29, 10)))
    assert w.lots["L"].lapses_at == bj(2025, 2, 28, 10)


@row("T-3")
def t3() -> None:
    at = bj(2024, 5, 1)
    w0 = wallet(("L", 10, bj(2024, 3, 1)))
    w = certify(w0, "b", ["f"], at)
    assert w0.balance(at) - w.balance(at) == 1
    assert w.lots["L"].used == 1 and w.lots["L"].held == 0
    assert [e.kind for e in w.entries.values()] == [
        EntryKind.PURCHASE,
        EntryKind.RESERVE,
        EntryKind.CONSUME,
    ]


@row("T-4")
def t4() -> None:
    at = bj(2024, 5, 1)
    w = wallet(("L", 2, bj(2024, 3, 1)))
    with pytest.raises(InsufficientCredits) as exc:
        reserve(w, "b", ["f1", "f2", "f3"], at)
    assert (exc.value.needed, exc.value.available) == (3, 2)
    assert w.balance(at) == 2 and w.holds == {}  # nothing reserved, so no token is issued


@row("T-5")
def t5() -> None:
    at = bj(2024, 7, 1)
    w = wallet(("L2", 10, bj(2024, 6, 1)), ("L1", 5, bj(2024, 1, 10)))
    assert w.lots["L1"].lapses_at == bj(2025, 1, 10)
    assert w.lots["L2"].lapses_at == bj(2025, 6, 1)
    assert lot_for_consumption(w.lots.values(), at).lot_id == "L1"
    w = certify(w, "b", ["f"], at)
    assert (w.lots["L1"].available, w.lots["L2"].available) == (4, 10)


@row("T-6")
def t6() -> None:
    at = bj(2024, 5, 1)
    w = wallet(("L", 5, bj(2024, 3, 1)))
    w = append(w, reserve(w, "b", ["f"], at))
    assert w.balance(at) == 4
    entries = refund(w, "f", at + timedelta(seconds=2), note="signer unavailable")
    assert [e.kind for e in entries] == [EntryKind.REFUND]
    w = append(w, entries)
    assert w.balance(at) == 5 and w.lots["L"].used == 0


@row("T-7")
def t7() -> None:
    w = wallet(("L1", 10, bj(2024, 1, 1)), ("L2", 6, bj(2024, 6, 1)))
    w = certify(w, "b", [f"f{i}" for i in range(6)], bj(2024, 2, 1))  # L1: 4 left
    assert w.lots["L1"].available == 4
    lapse = bj(2025, 1, 1)
    result = tick(w, [], lapse)
    (entry,) = result.entries
    assert entry.kind is EntryKind.LAPSE and entry.units == 4 and entry.at == lapse
    w = append(w, result.entries)
    assert w.lots["L1"].available == 0 and w.lots["L1"].lapsed == 4
    assert w.balance(lapse) == 6


@row("T-8")
def t8() -> None:
    expiry = bj(2024, 11, 1)
    a = item("A", 500 * MB, bj(2023, 11, 1))
    assert filing_status(a, expiry - timedelta(seconds=1)) is FilingStatus.VALID
    assert filing_status(a, expiry) is FilingStatus.PENDING  # until the scheduler decides
    short = tick(wallet(("L", 2, bj(2024, 6, 1))), [a], expiry).items["A"]
    assert filing_status(short, expiry) is FilingStatus.INVALID
    paid = tick(wallet(("L", 5, bj(2024, 6, 1))), [a], expiry).items["A"]
    assert filing_status(paid, expiry) is FilingStatus.VALID
    assert filing_status(paid, bj(2025, 10, 31)) is FilingStatus.VALID


@row("T-9")
def t9() -> None:
    with pytest.raises(FieldError) as exc:
        parse_deposit_form({"work_content": "a logo"})
    assert set(exc.value.fields) == {"depositor"}
    with pytest.raises(FieldError) as exc:
        parse_deposit_form({"depositor": "Alice", "work_content": "   "})
    assert set(exc.value.fields) == {"work_content"}
    with pytest.raises(FieldError) as exc:
        parse_deposit_form({})
    assert set(exc.value.fields) == {"depositor", "work_content"}
    with pytest.raises(FieldError) as exc:  # the evidence time is never user-entered
        parse_deposit_form({"depositor": "A", "work_content": "x", "evidence_time": "2020-01-01"})
    assert set(exc.value.fields) == {"evidence_time"}
    form = parse_deposit_form({"depositor": " Alice ", "work_content": "a logo"})
    assert form.depositor == "Alice"
    gen_time = bj(2024, 5, 1, 12, 30)
    it = item("X", 1, gen_time)
    assert it.certified_at == gen_time  # evidence time = the token's genTime


def test_every_row_is_registered() -> None:
    assert list(ROWS) == [f"T-{n}" for n in range(1, 10)]


@pytest.mark.parametrize("row_id", list(ROWS), ids=list(ROWS))
def test_e4_row(row_id: str) -> None:
    ROWS[row_id]()

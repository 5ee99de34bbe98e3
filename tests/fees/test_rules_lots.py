"""Rule tests of the credit ledger beyond the E.4 rows (P-3, P-8, G-6, A-18, A-19, REC-1)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.fees.conftest import bj, wallet
from tsa_server.fees import (
    EMPTY,
    DuplicatePeriod,
    EntryKind,
    InsufficientCredits,
    InvalidEntry,
    LedgerConflict,
    LedgerEntry,
    PeriodRef,
    adjust,
    append,
    consume,
    debit_storage,
    fold,
    from_record,
    lapse_due,
    purchase,
    refund,
    release,
    reserve,
    to_record,
)
from tsa_server.fees.entries import Draw

AT = bj(2024, 5, 1)


def test_a19_fefo_is_by_lapse_not_purchase() -> None:
    """A-19: bought 2024-02-29 04:00 lapses 2025-02-28 04:00, before one bought 02-28 10:00."""
    w = wallet(("old", 1, bj(2024, 2, 28, 10)), ("new", 1, bj(2024, 2, 29, 4)))
    assert w.lots["new"].lapses_at < w.lots["old"].lapses_at
    (e,) = reserve(w, "b", ["f"], AT)
    assert e.draws == (Draw("new", 1),)


def test_fefo_ties_oldest_purchase_then_lot_id() -> None:
    w = wallet(("b", 1, bj(2024, 1, 31)), ("a", 1, bj(2024, 1, 31)), ("c", 1, bj(2024, 1, 30)))
    # c: bought 01-30, lapses 2025-01-30; a/b: lapse 2025-01-31 (same instant) -> id order
    (e,) = reserve(w, "x", ["1", "2", "3"], AT)
    assert [d.lot for d in e.draws] == ["c", "a", "b"]
    assert e.items == ("1", "2", "3")
    assert {i: w2.lot for i, w2 in append(w, (e,)).holds.items()} == {"1": "c", "2": "a", "3": "b"}


def test_a18_lot_lapsing_at_the_debit_instant_does_not_count() -> None:
    w = wallet(("L", 5, bj(2023, 11, 1)))  # lapses 2024-11-01 00:00
    ref = PeriodRef("A", 0, 1)
    with pytest.raises(InsufficientCredits):
        debit_storage(w, EntryKind.RENEW, ref, 3, bj(2024, 11, 1))
    assert debit_storage(w, EntryKind.RENEW, ref, 3, bj(2024, 10, 31, 23, 59, 59))


def test_batch_spanning_two_lots_and_release() -> None:
    w = wallet(("L1", 2, bj(2024, 1, 1)), ("L2", 5, bj(2024, 3, 1)))
    w = append(w, reserve(w, "b", ["f1", "f2", "f3"], AT))
    assert w.balance(AT) == 4 and w.lots["L1"].held == 2 and w.lots["L2"].held == 1
    w = append(w, consume(w, "f1", AT))
    rel = release(w, "b", AT)
    assert rel[0].items == ("f2", "f3")
    w = append(w, rel)
    assert w.balance(AT) == 6 and w.lots["L1"].used == 1
    assert release(w, "other", AT) == ()


def test_units_are_consumed_or_refunded_once() -> None:
    w = wallet(("L", 5, bj(2024, 1, 1)))
    w = append(w, reserve(w, "b", ["f"], AT))
    w = append(w, consume(w, "f", AT))
    assert consume(w, "f", AT) == (w.entries["consume/f"],)  # replay: the same entry
    with pytest.raises(InvalidEntry):
        refund(w, "f", AT)  # consumed units are not refundable (use an adjustment)
    with pytest.raises(InvalidEntry):
        append(w, (LedgerEntry("refund/f", EntryKind.REFUND, AT, draws=(Draw("L", 1),), item="f"),))


def test_reserved_unit_refunded_after_its_lot_lapsed_lapses() -> None:
    w = wallet(("L", 3, bj(2024, 1, 1)))
    w = append(w, reserve(w, "b", ["f"], bj(2024, 12, 31, 23, 59, 59)))
    w = append(w, lapse_due(w, bj(2025, 1, 1)))
    assert w.lots["L"].lapsed == 2
    w = append(w, refund(w, "f", bj(2025, 1, 1, 0, 0, 1)))
    assert w.lots["L"].lapsed == 3 and w.lots["L"].available == 0


def test_item_ids_are_reserved_once() -> None:
    w = wallet(("L", 5, bj(2024, 1, 1)))
    w = append(w, reserve(w, "b1", ["f"], AT))
    with pytest.raises(InvalidEntry):
        append(w, reserve(w, "b2", ["f"], AT))
    with pytest.raises(LedgerConflict):
        reserve(w, "b1", ["g"], AT)  # same batch key, different content
    with pytest.raises(ValueError):
        reserve(w, "b3", ["x", "x"], AT)


def test_idempotency_key_conflict() -> None:
    w = wallet(("L", 5, bj(2024, 1, 1)))
    again = purchase(w, "L", 5, bj(2024, 1, 1))
    assert append(w, again) == w  # exact replay
    with pytest.raises(LedgerConflict):
        append(w, purchase(w, "L", 6, bj(2024, 1, 1)))


def test_r5_a_period_is_paid_once_under_any_kind() -> None:
    w = wallet(("L", 10, bj(2024, 1, 1)))
    ref = PeriodRef("A", 0, 1)
    w = append(w, debit_storage(w, EntryKind.RENEW, ref, 3, AT))
    assert debit_storage(w, EntryKind.RENEW, ref, 3, AT + timedelta(hours=1)) == (
        w.entries["renew/A/0/1"],
    )
    with pytest.raises(DuplicatePeriod):
        debit_storage(w, EntryKind.REINSTATE, ref, 3, AT)
    forged = LedgerEntry(
        "reinstate/A/0/1", EntryKind.REINSTATE, AT, draws=(Draw("L", 3),), period=ref
    )
    with pytest.raises(DuplicatePeriod):
        append(w, (forged,))
    with pytest.raises(ValueError):
        debit_storage(w, EntryKind.CONSUME, ref, 1, AT)


def test_balance_never_negative_entries_are_refused() -> None:
    w = wallet(("L", 2, bj(2024, 1, 1)))
    overdraw = LedgerEntry(
        "renew/A/0/1", EntryKind.RENEW, AT, draws=(Draw("L", 3),), period=PeriodRef("A", 0, 1)
    )
    with pytest.raises(InvalidEntry):
        append(w, (overdraw,))
    with pytest.raises(InsufficientCredits):
        adjust(w, "fix-1", "L", -3, AT, "too much")
    w = append(w, adjust(w, "fix-2", "L", -2, AT, "chargeback"))
    assert w.balance(AT) == 0 and w.lots["L"].adjusted == -2
    with pytest.raises(InvalidEntry):
        adjust(w, "fix-3", "nope", 1, AT, "x")
    late = LedgerEntry(
        "renew/B/0/1",
        EntryKind.RENEW,
        bj(2025, 1, 1),
        draws=(Draw("L", 1),),
        period=PeriodRef("B", 0, 1),
    )
    with pytest.raises(InvalidEntry):  # G-3: a lapsed lot cannot be drawn from
        append(w, (late,))


def test_append_is_all_or_nothing() -> None:
    w = wallet(("L", 2, bj(2024, 1, 1)))
    good = purchase(w, "M", 1, AT)[0]
    bad = LedgerEntry(
        "renew/A/0/1", EntryKind.RENEW, AT, draws=(Draw("L", 9),), period=PeriodRef("A", 0, 1)
    )
    with pytest.raises(InvalidEntry):
        append(w, (good, bad))
    assert "M" not in w.lots


def test_lapse_only_once_and_only_when_due() -> None:
    w = wallet(("L", 2, bj(2024, 1, 1)))
    assert lapse_due(w, bj(2024, 12, 31, 23, 59, 59)) == ()
    entries = lapse_due(w, bj(2025, 6, 1))
    assert [(e.kind, e.units, e.at) for e in entries] == [(EntryKind.LAPSE, 2, bj(2025, 1, 1))]
    w = append(w, entries)
    assert lapse_due(w, bj(2025, 6, 1)) == ()
    early = LedgerEntry("lapse/M", EntryKind.LAPSE, AT, lot="M", units=1)
    w2 = wallet(("M", 1, bj(2024, 3, 1)))
    with pytest.raises(InvalidEntry):
        append(w2, (early,))


def test_entry_shapes_are_checked() -> None:
    with pytest.raises(ValueError):
        LedgerEntry("k", EntryKind.PURCHASE, AT, lot="L", units=0, lapses_at=AT)
    with pytest.raises(ValueError):
        LedgerEntry("k", EntryKind.RENEW, AT, draws=(Draw("L", 1),))  # no period
    with pytest.raises(ValueError):
        LedgerEntry("", EntryKind.PURGE, AT, item="A", period=PeriodRef("A", 0, 1))
    with pytest.raises(ValueError):
        Draw("L", 0)
    with pytest.raises(ValueError):
        LedgerEntry("k", EntryKind.RESERVE, AT, draws=(Draw("L", 2),), items=("a",), batch="b")


def test_records_round_trip() -> None:
    w = wallet(("L", 5, bj(2024, 1, 1)))
    w = append(w, reserve(w, "b", ["f", "g"], AT))
    w = append(w, consume(w, "f", AT))
    w = append(w, refund(w, "g", AT, note="failed"))
    w = append(w, debit_storage(w, EntryKind.RENEW, PeriodRef("A", 0, 1), 1, AT))
    w = append(w, adjust(w, "r1", "L", 1, AT, "goodwill"))
    entries = tuple(w.entries.values())
    records = [to_record(e) for e in entries]
    assert tuple(from_record(r) for r in records) == entries
    assert records[0] == {
        "key": "purchase/L",
        "kind": "purchase",
        "at": "2023-12-31T16:00:00Z",
        "lot": "L",
        "units": 5,
        "lapses_at": "2024-12-31T16:00:00Z",
    }
    assert fold(from_record(r) for r in records) == w


def test_empty_wallet() -> None:
    assert EMPTY.balance(AT) == 0 and EMPTY.fefo(AT) == ()

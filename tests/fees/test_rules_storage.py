"""Rule tests of storage terms, the scheduler and the lifecycle (S-1 .. S-10, A-9, A-20)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.fees.conftest import MB, bj, item, sha, wallet
from tsa_server.fees import (
    LEGACY,
    Due,
    EntryKind,
    FilingStatus,
    InsufficientCredits,
    Mode,
    NoticeKind,
    StateError,
    StorageStatus,
    append,
    delete_original,
    expiry_k,
    filing_status,
    preview,
    purchase,
    reinstate,
    renewal_decision,
    reupload,
    storage_applies,
    tick,
)
from tsa_server.fees.items import Digests
from tsa_server.fees.terms import initial_term


def test_s1_scope() -> None:
    assert storage_applies(Mode.STORED, True)
    assert not storage_applies(Mode.STORED, False)
    assert not storage_applies(Mode.HASH_ONLY, True)
    assert not storage_applies(Mode.HASH_ONLY, False)


def test_g2_one_call_for_years_and_months() -> None:
    """G-2: 2020-02-29 + 15 m in one step = 2021-05-29 (two steps would give 05-28)."""
    assert expiry_k(bj(2020, 2, 29), 15, 0) == bj(2021, 5, 29)
    assert expiry_k(bj(2024, 2, 29), 36, 1) == bj(2028, 2, 29)  # from the anchor, not chained
    with pytest.raises(ValueError):
        expiry_k(bj(2020, 1, 1), 12, -1)


def test_period_at() -> None:
    term = initial_term(500 * MB, bj(2023, 11, 1))  # expiry_k = 2024-11-01 + k y
    assert term.period_at(bj(2023, 11, 1)) == 0
    assert term.period_at(bj(2024, 10, 31, 23, 59, 59)) == 0
    assert term.period_at(bj(2024, 11, 1)) == 1  # G-3: at T the next period has begun
    assert term.period_at(bj(2030, 11, 1)) == 7
    assert term.start(0) == bj(2023, 11, 1) and term.start(2) == bj(2025, 11, 1)
    with pytest.raises(ValueError):
        term.period_at(bj(2023, 10, 1))


def test_a9_renewal_decision_orders_and_never_blocks() -> None:
    t = bj(2025, 12, 1)
    due = [
        Due("B", 1, t, bj(2022, 12, 1)),
        Due("A", 3, t, bj(2020, 9, 1)),
        Due("C", 1, t - timedelta(seconds=1), bj(2023, 1, 1)),
    ]
    d = renewal_decision(4, due)
    assert (d.renewed, d.expired, d.balance) == (("C", "A"), ("B",), 0)
    d = renewal_decision(2, due)  # A cannot be paid, B after it still can
    assert (d.renewed, d.expired, d.balance) == (("C", "B"), ("A",), 0)
    assert renewal_decision(0, []).balance == 0
    with pytest.raises(ValueError):
        renewal_decision(-1, due)


def test_a20_catch_up_after_downtime() -> None:
    """Down from 2024-10 to 2027-01: periods are processed in order at their own instants;
    an item that fails a period is EXPIRED and not tried for later periods."""
    a = item("A", 500 * MB, bj(2023, 11, 1))  # due 2024-11-01, 2025-11-01, 2026-11-01
    b = item("B", 150 * MB, bj(2023, 11, 1))  # free until 2026-11-01 (36 m)
    w = wallet(("L1", 6, bj(2024, 6, 1)), ("L2", 4, bj(2025, 6, 1)), ("L3", 2, bj(2026, 7, 1)))
    result = tick(w, [a, b], bj(2027, 1, 1))
    debits = [
        (e.period.item, e.period.period, e.at, e.draws)
        for e in result.entries
        if e.kind is EntryKind.RENEW
    ]
    assert [(i, p, at) for i, p, at, _ in debits] == [
        ("A", 1, bj(2024, 11, 1)),
        ("A", 2, bj(2025, 11, 1)),
        ("B", 1, bj(2026, 11, 1)),
    ]
    # L1 (lapses 2025-06-01) paid A's first period; its 3 leftovers lapsed before 2025-11-01
    assert [[d.lot for d in x[3]] for x in debits] == [["L1"], ["L2"], ["L3"]]
    lapses = [e for e in result.entries if e.kind is EntryKind.LAPSE]
    assert [(e.lot, e.units, e.at) for e in lapses] == [
        ("L1", 3, bj(2025, 6, 1)),
        ("L2", 1, bj(2026, 6, 1)),
    ]
    items = result.items
    assert items["A"].status is StorageStatus.EXPIRED
    assert items["A"].storage.since == bj(2026, 11, 1)
    assert items["B"].status is StorageStatus.ACTIVE
    assert items["B"].storage.expires_at == bj(2027, 11, 1)
    assert result.wallet.balance(bj(2027, 1, 1)) == 1  # A (fee 3) failed, B (fee 1) paid
    kinds = [n.kind for n in result.notices]
    assert kinds.count(NoticeKind.RENEWED) == 3 and kinds.count(NoticeKind.RENEWAL_FAILED) == 1


def test_auto_renew_off_expires_without_debit() -> None:
    a = item("A", 500 * MB, bj(2023, 11, 1), auto_renew=False)
    result = tick(wallet(("L", 10, bj(2024, 6, 1))), [a], bj(2024, 11, 1))
    assert not result.entries
    assert result.items["A"].status is StorageStatus.EXPIRED
    assert result.notices[0].detail == "auto-renew off"


def test_s8_deleting_an_expired_original_charges_nothing() -> None:
    w = wallet(("L", 2, bj(2024, 6, 1)))
    a = tick(w, [item("A", 500 * MB, bj(2023, 11, 1))], bj(2024, 11, 1)).items["A"]
    out = delete_original(a, bj(2024, 12, 1), downloaded_confirmed=True)
    assert out.entries == () and out.item.status is StorageStatus.ORIGINAL_DELETED
    assert tick(w, [out.item], bj(2025, 6, 1)).items == {}  # no purge, no renewal
    assert filing_status(out.item, bj(2025, 6, 1)) is FilingStatus.VALID
    with pytest.raises(StateError):
        delete_original(out.item, bj(2024, 12, 2), downloaded_confirmed=True)
    with pytest.raises(StateError):
        delete_original(
            item("H", 1, bj(2024, 1, 1), mode=Mode.HASH_ONLY),
            bj(2024, 2, 1),
            downloaded_confirmed=True,
        )


def test_s9_reupload_keeps_the_epoch_and_opens_a_new_term() -> None:
    old = item("L", 500 * MB, bj(2022, 8, 31))  # LEGACY LARGE
    assert old.epoch == LEGACY
    gone = delete_original(old, bj(2023, 1, 1), downloaded_confirmed=True).item
    w = wallet(("P", 10, bj(2025, 1, 1)))
    out = reupload(w, gone, sha("L").upper(), bj(2025, 1, 31, 9))
    assert out.item.epoch == LEGACY and out.item.storage.term.number == 1
    assert out.entries[0].key == "reupload/L/1/0"
    assert out.item.storage.expires_at == bj(2026, 1, 31, 9)
    assert out.item.storage.term.expiry(1) == bj(2027, 1, 31, 9)
    w = append(w, out.entries)
    # a retry after the debit was stored does not debit again
    assert reupload(w, gone, sha("L"), bj(2025, 1, 31, 9, 1)).entries == ()
    with pytest.raises(StateError):  # the original is held again
        reupload(w, out.item, sha("L"), bj(2025, 2, 1))
    again = delete_original(out.item, bj(2025, 3, 1), downloaded_confirmed=True).item
    out2 = reupload(w, again, sha("L"), bj(2025, 4, 1))
    assert out2.item.storage.term.number == 2 and out2.entries[0].key == "reupload/L/2/0"


def test_s9_purged_original_can_be_reuploaded() -> None:
    w = wallet(("L", 2, bj(2024, 6, 1)))
    a = item("A", 500 * MB, bj(2023, 11, 1))
    purged = tick(w, [a], bj(2025, 3, 1)).items["A"]
    assert purged.status is StorageStatus.PURGED
    w = append(w, purchase(w, "M", 3, bj(2025, 3, 1)))
    out = reupload(w, purged, sha("A"), bj(2025, 3, 2))
    assert out.item.status is StorageStatus.ACTIVE and out.entries[0].drawn == 3


def test_reinstate_rules() -> None:
    w = wallet(("L", 2, bj(2024, 6, 1)))
    a = item("A", 500 * MB, bj(2023, 11, 1))
    with pytest.raises(StateError):
        reinstate(w, a, bj(2024, 5, 1))  # ACTIVE
    expired = tick(w, [a], bj(2024, 11, 1)).items["A"]
    with pytest.raises(InsufficientCredits):
        reinstate(w, expired, bj(2024, 11, 2))  # balance 2 < 3: nothing debited
    w = append(w, purchase(w, "M", 1, bj(2024, 11, 2)))
    out = reinstate(w, expired, bj(2024, 11, 3))
    w = append(w, out.entries)
    # a retry with the stale item: the period is paid already, nothing new is debited
    retry = reinstate(w, expired, bj(2024, 11, 4))
    assert retry.entries == () and retry.item.status is StorageStatus.ACTIVE


def test_reinstate_pays_every_begun_period_when_grace_exceeds_a_period() -> None:
    from tsa_server.fees import PricingPolicy

    policy = PricingPolicy(grace_days=500)
    w = wallet(("L", 0 + 2, bj(2024, 6, 1)))
    a = item("A", 500 * MB, bj(2023, 11, 1))
    expired = tick(w, [a], bj(2024, 11, 1), policy).items["A"]
    now = bj(2025, 12, 1)  # periods 1 (from 2024-11-01) and 2 (from 2025-11-01) have begun
    w = append(w, purchase(w, "M", 6, bj(2025, 11, 30)))
    out = reinstate(w, expired, now, policy)
    assert [e.period.period for e in out.entries] == [1, 2]
    assert out.item.storage.expires_at == bj(2026, 11, 1)


def test_preview() -> None:
    p = preview(Mode.STORED, 500 * MB, bj(2024, 3, 10))
    assert (p.certification_units, p.free_until, p.annual_fee) == (1, bj(2025, 3, 10), 3)
    h = preview(Mode.HASH_ONLY, 500 * MB, bj(2024, 3, 10))
    assert (h.certification_units, h.free_until, h.annual_fee) == (1, None, None)


def test_stored_at_drives_the_schedule_epoch_follows_certification() -> None:
    """A-4: an imported item certified 2022-11-01 but stored from 2023-01-01."""
    it = item("I", 150 * MB, bj(2022, 11, 1), stored_at=bj(2023, 1, 1))
    assert it.epoch == LEGACY and it.storage.expires_at == bj(2026, 4, 1)


def test_digests_are_validated() -> None:
    assert Digests("AB" * 32).sha256 == "ab" * 32
    with pytest.raises(ValueError):
        Digests("ab" * 31)
    with pytest.raises(ValueError):
        Digests("ab" * 32, sm3="zz" * 32)


def test_set_auto_renew_and_certified_notice() -> None:
    from tsa_server.fees import certified_notice, set_auto_renew

    a = item("A", 500 * MB, bj(2023, 11, 1))
    off = set_auto_renew(a, False, bj(2024, 1, 1)).item
    assert off.storage.auto_renew is False and off.storage.expires_at == a.storage.expires_at
    assert set_auto_renew(off, True, bj(2024, 1, 2)).item == a
    with pytest.raises(StateError):
        set_auto_renew(item("H", 1, bj(2024, 1, 1), mode=Mode.HASH_ONLY), False, bj(2024, 1, 1))
    n = certified_notice(a)
    assert (n.kind, n.key, n.at, n.target, n.units) == (
        NoticeKind.CERTIFIED,
        "certified/A",
        bj(2023, 11, 1),
        bj(2024, 11, 1),
        3,
    )


def test_tick_is_idempotent_and_its_wallet_is_independent() -> None:
    w = wallet(("L", 5, bj(2024, 6, 1)))
    a = item("A", 500 * MB, bj(2023, 11, 1))
    result = tick(w, [a], bj(2024, 11, 1))
    assert w.balance(bj(2024, 11, 1)) == 5  # the input wallet is untouched
    assert result.wallet == append(w, result.entries)
    again = tick(result.wallet, list(result.items.values()), bj(2024, 11, 1))
    assert again.steps == ()

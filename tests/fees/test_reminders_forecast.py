"""REC-3: reminders before expiry, purge and lot lapse; the 12-month forecast; low balance."""

from __future__ import annotations

from datetime import timedelta

from tests.fees.conftest import MB, FakeClock, bj, item, wallet
from tsa_server.fees import NoticeKind, append, forecast, purchase, reminders_due, tick

A = item("A", 500 * MB, bj(2023, 11, 1))  # fee 3, due 2024-11-01 00:00
EXPIRY = bj(2024, 11, 1)


def kinds_and_keys(notices) -> list[tuple[NoticeKind, str]]:
    return [(n.kind, n.key) for n in notices]


def test_expiry_reminders_t30_t7_t1() -> None:
    w = wallet(("L", 5, bj(2024, 6, 1)))
    clock = FakeClock(EXPIRY - timedelta(days=30, seconds=1))
    assert [n for n in reminders_due(w, [A], clock()) if n.subject == "A"] == []
    expected = {30: bj(2024, 10, 2), 7: bj(2024, 10, 25), 1: bj(2024, 10, 31)}
    for days, at in expected.items():
        clock.set(at)
        (n,) = [n for n in reminders_due(w, [A], clock()) if n.subject == "A"]
        assert n.kind is NoticeKind.EXPIRY_REMINDER and n.key == f"expiry-reminder/A/0/0/{days}d"
        assert (n.target, n.units, n.covered) == (EXPIRY, 3, True)
    clock.set(EXPIRY)
    assert [n for n in reminders_due(w, [A], clock()) if n.subject == "A"] == []


def test_expiry_reminder_says_when_the_balance_does_not_cover() -> None:
    w = wallet(("L", 2, bj(2024, 6, 1)))
    notices = reminders_due(w, [A], bj(2024, 10, 26))
    (r,) = [n for n in notices if n.kind is NoticeKind.EXPIRY_REMINDER]
    assert r.covered is False
    (low,) = [n for n in notices if n.kind is NoticeKind.LOW_BALANCE]
    assert (low.key, low.units, low.target) == ("low-balance/A/0/1", 3, EXPIRY)


def test_a_lot_lapsing_before_the_expiry_does_not_cover_it() -> None:
    w = wallet(("L", 5, bj(2023, 10, 15)))  # lapses 2024-10-15, before the expiry
    (r,) = [
        n for n in reminders_due(w, [A], bj(2024, 10, 2)) if n.kind is NoticeKind.EXPIRY_REMINDER
    ]
    assert r.covered is False


def test_no_low_balance_alert_beyond_the_window() -> None:
    w = wallet(("L", 2, bj(2024, 6, 1)))
    # the window is [now, now + 30 days): a fee due exactly 30 days ahead is outside it
    notices = reminders_due(w, [A], EXPIRY - timedelta(days=30))
    assert NoticeKind.LOW_BALANCE not in {n.kind for n in notices}
    notices = reminders_due(w, [A], EXPIRY - timedelta(days=30) + timedelta(seconds=1))
    assert NoticeKind.LOW_BALANCE in {n.kind for n in notices}


def test_lot_lapse_reminders_30_and_7_days() -> None:
    w = wallet(("L", 5, bj(2024, 6, 1)))  # lapses 2025-06-01
    at30 = [n for n in reminders_due(w, [], bj(2025, 5, 2))]
    assert kinds_and_keys(at30) == [(NoticeKind.LOT_LAPSE_REMINDER, "lot-reminder/L/30d")]
    assert at30[0].units == 5 and at30[0].target == bj(2025, 6, 1)
    assert kinds_and_keys(reminders_due(w, [], bj(2025, 5, 25))) == [
        (NoticeKind.LOT_LAPSE_REMINDER, "lot-reminder/L/7d")
    ]
    assert reminders_due(w, [], bj(2025, 5, 1)) == ()
    assert reminders_due(w, [], bj(2025, 6, 1)) == ()


def test_purge_notices_before_the_end_of_grace() -> None:
    w = wallet(("L", 2, bj(2024, 6, 1)))
    expired = tick(w, [A], EXPIRY).items["A"]
    purge = EXPIRY + timedelta(days=90)
    for days in (30, 7, 1):
        (n,) = [
            n
            for n in reminders_due(w, [expired], purge - timedelta(days=days))
            if n.kind is NoticeKind.PURGE_REMINDER
        ]
        assert n.key == f"purge-reminder/A/0/{days}d" and n.target == purge
    assert [
        n for n in reminders_due(w, [expired], purge) if n.kind is NoticeKind.PURGE_REMINDER
    ] == []


def test_auto_renew_off_reminder_has_no_coverage() -> None:
    off = item("A", 500 * MB, bj(2023, 11, 1), auto_renew=False)
    w = wallet(("L", 5, bj(2024, 6, 1)))
    (n,) = [
        n for n in reminders_due(w, [off], bj(2024, 10, 31)) if n.kind is NoticeKind.EXPIRY_REMINDER
    ]
    assert n.covered is None and "auto-renew off" in n.detail


def test_forecast_12_months() -> None:
    now = bj(2024, 10, 15)
    c = item("C", 500 * MB, bj(2024, 3, 10))  # fee 3, due 2025-03-10
    h = item("H", 5 * MB, bj(2024, 3, 10), auto_renew=True)  # free until 2027
    w = wallet(("L", 5, bj(2024, 6, 1)))  # lapses 2025-06-01
    fc = forecast(w, [A, c, h], now)
    assert fc.balance == 5 and len(fc.months) == 12
    assert fc.months[0].start == now and fc.months[-1].end == bj(2025, 10, 15)
    assert [(o.item_id, o.period, o.due_at, o.fee, o.covered) for o in fc.obligations] == [
        ("A", 1, EXPIRY, 3, True),
        ("C", 1, bj(2025, 3, 10), 3, False),
    ]
    assert [m.due_units for m in fc.months] == [3, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0]
    assert fc.months[4].uncovered_units == 3
    assert fc.months[7].lapsing_units == 2  # 2025-05-15 .. 06-15: L lapses with 2 left
    assert (fc.total_due, fc.shortfall, fc.low_balance) == (6, 3, False)
    assert fc.first_uncovered is not None and fc.first_uncovered.item_id == "C"
    topped = append(w, purchase(w, "T", fc.shortfall, now))
    after = forecast(topped, [A, c, h], now)
    assert after.shortfall == 0 and after.first_uncovered is None


def test_forecast_lists_every_period_in_the_horizon() -> None:
    """A schedule with a 1-month period (policy data) shows each renewal separately."""
    from tsa_server.fees import PricingPolicy
    from tsa_server.fees.policy import DEFAULT_VERSIONS, PolicyVersion

    monthly = PolicyVersion("M", bj(2024, 1, 1), 1, 1, period_months=1)
    policy = PricingPolicy(versions=(*DEFAULT_VERSIONS, monthly))
    m = item("M", 1, bj(2024, 1, 31), policy=policy)
    fc = forecast(wallet(("L", 100, bj(2024, 1, 31))), [m], bj(2024, 2, 1), policy)
    dues = [o.due_at for o in fc.obligations]
    assert dues[:3] == [bj(2024, 2, 29), bj(2024, 3, 31), bj(2024, 4, 30)]  # from the anchor
    assert len(dues) == 12
    # the lot lapses at 2025-01-31 00:00, exactly when the 12th renewal falls due
    assert [o.covered for o in fc.obligations] == [True] * 11 + [False]
    assert fc.months[-1].lapsing_units == 89

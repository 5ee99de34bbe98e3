"""Property tests (hypothesis): the balance never goes negative, replays change nothing,
consumption is FEFO, anchored schedules never drift, and catching up after downtime
gives the same ledger as running on time."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.fees.conftest import MB, bj, item
from tsa_server.clock.beijing import to_beijing
from tsa_server.fees import (
    EMPTY,
    EntryKind,
    FeeError,
    PeriodRef,
    Wallet,
    adjust,
    append,
    consume,
    debit_storage,
    expiry_k,
    fold,
    forecast,
    lapse_due,
    purchase,
    refund,
    release,
    reserve,
    tick,
)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
START = bj(2024, 1, 1)

ops = st.builds(
    lambda first, rest: [first, *rest],
    st.tuples(st.just("buy"), st.integers(1, 8)),
    st.lists(
        st.one_of(
            st.tuples(st.just("buy"), st.integers(1, 8)),
            st.tuples(st.just("reserve"), st.integers(1, 4)),
            st.tuples(st.just("consume"), st.integers(0, 30)),
            st.tuples(st.just("refund"), st.integers(0, 30)),
            st.tuples(st.just("release"), st.integers(0, 10)),
            st.tuples(st.just("renew"), st.integers(1, 6)),
            st.tuples(st.just("adjust"), st.integers(-6, 6)),
            st.tuples(st.just("lapse"), st.just(0)),
            st.tuples(st.just("advance"), st.integers(0, 200)),
        ),
        max_size=40,
    ),
)


def check_fefo(w: Wallet, entries, at: datetime, units: int) -> None:
    """The draws are a greedy prefix of the FEFO order at `at` (P-8, A-19)."""
    order = w.fefo(at)
    draws = [d for e in entries for d in e.draws]
    assert sum(d.units for d in draws) == units
    assert [d.lot for d in draws] == [lot.lot_id for lot in order[: len(draws)]]
    for d, lot in zip(draws[:-1], order, strict=False):
        assert d.units == lot.available  # every lot but the last is used up


def check_invariants(w: Wallet, now: datetime) -> None:
    assert w.balance(now) >= 0
    for lot in w.lots.values():
        assert min(lot.available, lot.held, lot.used, lot.lapsed) >= 0
        assert lot.quantity + lot.adjusted == lot.available + lot.held + lot.used + lot.lapsed


def drive(script) -> tuple[Wallet, datetime]:
    w, now, n = EMPTY, START, 0
    for op, arg in script:
        n += 1
        try:
            if op == "buy":
                new = purchase(w, f"L{n}", arg, now)
            elif op == "reserve":
                new = reserve(w, f"B{n}", [f"F{n}.{i}" for i in range(arg)], now)
                check_fefo(w, new, now, arg)
            elif op in ("consume", "refund"):
                held = sorted(i for i, h in w.holds.items() if h.state == "HELD")
                if not held:
                    continue
                fn = consume if op == "consume" else refund
                new = fn(w, held[arg % len(held)], now)
            elif op == "release":
                batches = sorted({h.batch for h in w.holds.values()})
                if not batches:
                    continue
                new = release(w, batches[arg % len(batches)], now)
            elif op == "renew":
                new = debit_storage(w, EntryKind.RENEW, PeriodRef(f"I{n}", 0, 1), arg, now)
                check_fefo(w, new, now, arg)
            elif op == "adjust":
                lots = sorted(w.lots)
                if not lots or arg == 0:
                    continue
                new = adjust(w, f"A{n}", lots[n % len(lots)], arg, now, "test")
            elif op == "lapse":
                new = lapse_due(w, now)
            else:
                now += timedelta(days=arg)
                continue
        except FeeError:
            continue  # a refusal leaves nothing behind
        w = append(w, new)
        check_invariants(w, now)
        event(f"applied {op}")
    return w, now


@SETTINGS
@given(ops)
def test_balance_never_negative_and_draws_are_fefo(script) -> None:
    w, now = drive(script)
    check_invariants(w, now)
    assert fold(w.entries.values()) == w  # the state is a pure function of the ledger


@SETTINGS
@given(ops, st.data())
def test_replays_change_nothing(script, data) -> None:
    w, _ = drive(script)
    entries = list(w.entries.values())
    assert fold(entries + entries) == w
    assert append(w, entries) == w
    if entries:
        replay = data.draw(st.lists(st.sampled_from(entries), max_size=10))
        assert append(w, replay) == w


@SETTINGS
@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2090, 12, 31), timezones=st.just(UTC)
    ),
    st.integers(0, 60),
    st.integers(0, 40),
    st.sampled_from([1, 3, 12]),
)
def test_anchored_schedules_never_drift(anchor, base, k, period) -> None:
    """G-2: expiry_k keeps the anchor's day (clamped) and time of day for every k."""
    a = to_beijing(anchor)
    t = to_beijing(expiry_k(anchor, base, k, period))
    months = a.year * 12 + a.month - 1 + base + period * k
    assert (t.year * 12 + t.month - 1) == months
    assert t.day == min(a.day, calendar.monthrange(t.year, t.month)[1])
    assert t.time() == a.time()
    assert expiry_k(anchor, base, k + 1, period) > expiry_k(anchor, base, k, period)
    try:
        from dateutil.relativedelta import relativedelta
    except ImportError:  # pragma: no cover - dateutil is optional (G-2 cross-check only)
        return
    assert t == a + relativedelta(months=base + period * k)


SIZES = st.sampled_from([0, 150 * MB, 200 * MB, 200 * MB + 1, 500 * MB, 1 * 2**30])
ITEMS = st.lists(
    st.tuples(SIZES, st.integers(0, 3 * 365 * 24), st.booleans()), min_size=1, max_size=5
)
LOTS = st.lists(
    st.tuples(st.integers(1, 12), st.integers(0, 6 * 365 * 24)), min_size=3, max_size=10
)


def build(items_spec, lots_spec):
    base = bj(2021, 6, 1)
    items = [
        item(f"I{i}", size, base + timedelta(hours=h), auto_renew=auto)
        for i, (size, h, auto) in enumerate(items_spec)
    ]
    lots = sorted(
        ((f"L{i}", q, base + timedelta(hours=h)) for i, (q, h) in enumerate(lots_spec)),
        key=lambda x: x[2],
    )
    return items, lots


@SETTINGS
@given(ITEMS, LOTS, st.lists(st.integers(1, 700), min_size=2, max_size=8))
def test_catching_up_after_downtime_equals_running_on_time(items_spec, lots_spec, gaps) -> None:
    """A-20 / REC-3: the ledger does not depend on when the scheduler ran."""
    items, lots = build(items_spec, lots_spec)
    checkpoints = []
    t = bj(2021, 6, 1)
    for g in gaps:
        t += timedelta(days=g)
        checkpoints.append(t)
    end = checkpoints[-1]

    def buy_until(w: Wallet, limit: datetime) -> Wallet:
        for lot_id, q, at in lots:
            if at <= limit and lot_id not in w.lots:
                w = append(w, purchase(w, lot_id, q, at))
        return w

    # on time: the scheduler runs at every checkpoint, purchases arrive as they happen
    w, current = EMPTY, list(items)
    for c in checkpoints:
        w = buy_until(w, c)
        result = tick(w, current, c)
        w = append(w, result.entries)
        current = [result.items.get(i.item_id, i) for i in current]
        assert tick(w, current, c).steps == ()  # nothing left to do at c
    # downtime: one run at the end
    w2 = buy_until(EMPTY, end)
    once = tick(w2, items, end)
    w2 = append(w2, once.entries)
    assert w2 == w
    for kind in sorted({e.kind.value for e in once.entries}):
        event(f"entry kind {kind}")
    assert [once.items.get(i.item_id, i) for i in items] == current


@SETTINGS
@given(ITEMS, LOTS, st.integers(0, 4 * 365))
def test_buying_the_shortfall_now_covers_the_horizon(items_spec, lots_spec, day) -> None:
    items, lots = build(items_spec, lots_spec)
    now = bj(2021, 6, 1) + timedelta(days=day)
    w = EMPTY
    for lot_id, q, at in lots:
        if at <= now:
            w = append(w, purchase(w, lot_id, q, at))
    result = tick(w, items, now)  # the scheduler is up to date
    w = append(w, result.entries)
    items = [result.items.get(i.item_id, i) for i in items]
    fc = forecast(w, items, now)
    assert fc.total_due == sum(o.fee for o in fc.obligations)
    assert sum(m.due_units for m in fc.months) == fc.total_due
    if fc.shortfall:
        w = append(w, purchase(w, "TOPUP", fc.shortfall, now))
        assert forecast(w, items, now).shortfall == 0

"""The clock rules (clock/judge.py) on hand-made samples: what a slow round trip or a
wide bound may and may not do to issuance. (A real responder on loopback answers at
once; the round trips of a loaded machine or network are made here.)"""

from __future__ import annotations

from tsa_server.clock import judge
from tsa_server.clock.ntp_query import NtpSample
from tsa_server.clock.settings import NtpSettings

SETTINGS = NtpSettings(servers=("ntp.example",), max_offset_ms=100.0, max_error_ms=1000.0)


def sample(offset: float, delay: float, root_dispersion: float = 0.0, at: float = 0.0):
    return NtpSample(
        server="ntp.example",
        offset=offset,
        delay=delay,
        root_delay=0.0,
        root_dispersion=root_dispersion,
        precision=0.0,
        stratum=2,
        error_bound=abs(offset) + delay / 2 + root_dispersion,
        wall=1_700_000_000.0 + at,
        mono=1_000.0 + at,
    )


def after(state: judge.State, *samples: NtpSample) -> judge.State:
    return judge.judge(SETTINGS, state, judge.Poll(samples, ()))


def status(state: judge.State, at: float) -> judge.ClockStatus:
    return judge.evaluate(SETTINGS, state, 1_700_000_000.0 + at, 1_000.0 + at)


def in_sync() -> judge.State:
    state = after(judge.State(), sample(0.001, 0.002))
    assert status(state, 0.0).usable
    return state


def test_a_slow_round_trip_cannot_prove_the_clock_off() -> None:
    # 150 ms over a 400 ms round trip: our clock may be right (the request waited 350
    # ms, the reply none); the good sample in force stays, the reason is kept
    state = after(in_sync(), sample(0.150, 0.400, at=1.0))
    now = status(state, 1.0)
    assert now.usable, now.reason
    assert now.offset is not None and now.offset.total_seconds() == 0.001  # still the old one
    assert state.problems == (
        "ntp.example: offset +150 ms exceeds 100 ms, within what a round trip of 400 ms can tell"
    )


def test_a_fast_round_trip_stops_issuance_at_once() -> None:
    state = after(in_sync(), sample(0.150, 0.080, at=1.0))  # 150 - 40 > 100: proven
    now = status(state, 1.0)
    assert not now.usable and now.event == judge.OFFSET
    assert now.reason == "offset +150 ms exceeds 100 ms"


def test_inconclusive_samples_do_not_extend_the_last_good_one() -> None:
    state = in_sync()
    for second in range(10, 70, 10):
        state = after(state, sample(-0.3, 0.9, at=float(second)))
    assert status(state, 60.0).usable
    late = status(state, 65.0)  # the good sample is 65 s old (max 64 s)
    assert not late.usable and late.event == judge.STALE
    assert "within what a round trip of 900 ms can tell" in late.reason


def test_with_no_sample_in_force_an_inconclusive_one_still_refuses() -> None:
    fresh = after(judge.State(), sample(0.150, 0.400))
    assert not status(fresh, 0.0).usable
    stopped = after(after(in_sync(), sample(0.5, 0.0, at=1.0)), sample(0.150, 0.4, at=2.0))
    assert status(stopped, 2.0).event == judge.OFFSET  # a refusal is not lifted by doubt


def test_a_wide_bound_keeps_the_good_sample_in_force() -> None:
    state = after(in_sync(), sample(0.0, 0.0, root_dispersion=1.5, at=1.0))
    assert status(state, 1.0).usable
    assert state.problems == (
        "ntp.example: error bound 1.5 s exceeds 1 s, within what a round trip of 0 ms can tell"
    )

"""The clock rules of EN 319 421 (issue 17 item 6) on NtpMonitor, against real NTP
responders on loopback sharing one FakeTime: agreement among sources (falsetickers,
majority), steps of the system clock, and leap seconds, each reported to on_change.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime

import pytest

from tests.support.ntp import FakeTime, NtpResponder, ntp_responder
from tsa_server.clock.base import ClockStatus
from tsa_server.clock.ntp import NtpMonitor, NtpSettings

# Wall time of the FakeTime in the leap tests: 2016-12-31 23:00:00 UTC (a real leap day).
LEAP_DAY_23H = datetime(2016, 12, 31, 23, tzinfo=UTC).timestamp()
MIDNIGHT = datetime(2017, 1, 1, tzinfo=UTC).timestamp()


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def three(fake: FakeTime) -> Iterator[list[NtpResponder]]:
    with ExitStack() as stack:
        yield [stack.enter_context(ntp_responder(time_source=fake.time)) for _ in range(3)]


def monitor(
    fake: FakeTime,
    servers: list[NtpResponder],
    seen: list[ClockStatus] | None = None,
    **settings: object,
) -> NtpMonitor:
    options: dict[str, object] = {"timeout_s": 0.3, "interval_s": 1.0, "max_age_s": 10.0}
    options.update(settings)
    return NtpMonitor(
        NtpSettings(servers=tuple(s.address for s in servers), **options),  # type: ignore[arg-type]
        time_source=fake.time,
        monotonic_source=fake.monotonic,
        on_change=seen.append if seen is not None else None,
    )


def events(seen: list[ClockStatus]) -> list[tuple[bool, str]]:
    return [(s.usable, s.event) for s in seen]


def test_one_liar_of_three_is_outvoted_and_named(
    fake: FakeTime, three: list[NtpResponder], caplog: pytest.LogCaptureFixture
) -> None:
    first, liar, third = three
    liar.offset = 5.0
    seen: list[ClockStatus] = []
    caplog.set_level(logging.INFO, logger="tsa.clock")
    status = monitor(fake, three, seen).poll_once()
    assert status.usable, status.reason
    assert status.source in (first.address, third.address)
    assert status.falsetickers == (liar.address,)
    assert status.agreeing == 2
    assert status.reason.endswith(f"; falseticker(s) dropped: {liar.address} +5 s")
    assert status.error_bound.total_seconds() < 1e-3  # the liar's 5 s counts for nothing
    assert events(seen) == [(True, "synced")]
    assert seen[0].details()["falsetickers"] == [liar.address]
    assert f"{liar.address} +5 s" in caplog.text


def test_falseticker_appearing_and_leaving_is_reported(
    fake: FakeTime, three: list[NtpResponder]
) -> None:
    seen: list[ClockStatus] = []
    clock = monitor(fake, three, seen)
    assert clock.poll_once().usable
    three[2].offset = -3.0
    assert clock.poll_once().usable
    assert clock.poll_once().usable  # the same liar again: nothing new to report
    three[2].offset = 0.0
    assert clock.poll_once().usable
    assert events(seen) == [(True, "synced"), (True, "falseticker"), (True, "agreement restored")]
    assert seen[1].falsetickers == (three[2].address,)
    assert "-3 s" in seen[1].reason


def test_two_liars_that_agree_are_a_majority_saying_we_are_off(
    fake: FakeTime, three: list[NtpResponder]
) -> None:
    seen: list[ClockStatus] = []
    clock = monitor(fake, three, seen)
    assert clock.poll_once().usable
    three[0].offset = three[1].offset = 5.0
    status = clock.poll_once()
    assert not status.usable
    assert status.event == "offset"
    assert status.reason == (
        f"{three[0].address}: offset +5 s exceeds 100 ms (2 of 3 answering sources agree)"
    )
    assert status.falsetickers == (three[2].address,)  # the honest one, outvoted
    three[0].silent = three[1].silent = three[2].silent = True
    assert not clock.poll_once().usable  # silence does not undo the evidence
    for responder in three:
        responder.offset, responder.silent = 0.0, False
    assert clock.poll_once().usable
    assert events(seen) == [(True, "synced"), (False, "offset"), (True, "regained")]


def test_three_sources_that_all_disagree_give_no_tokens(
    fake: FakeTime, three: list[NtpResponder]
) -> None:
    three[0].offset, three[1].offset = 5.0, -5.0
    status = monitor(fake, three).poll_once()
    assert not status.usable
    assert status.event == "no majority"
    assert status.reason.startswith("no majority: 1 of 3 answering sources agree (")


def test_agreeing_sources_below_min_good_servers_keep_the_last_sample(
    fake: FakeTime, three: list[NtpResponder]
) -> None:
    clock = monitor(fake, three, min_good_servers=3)
    assert clock.poll_once().usable
    three[2].offset = 5.0  # outvoted, but only 2 agree where 3 are needed: no evidence
    fake.advance(5.0)
    assert clock.poll_once().usable
    fake.advance(6.0)
    status = clock.status()
    assert not status.usable and status.event == "stale"
    assert "2 agreeing server(s), 3 needed" in status.reason


def test_a_step_stops_issuance_at_once_and_is_reported(
    fake: FakeTime, three: list[NtpResponder]
) -> None:
    seen: list[ClockStatus] = []
    clock = monitor(fake, three, seen)
    assert clock.poll_once().usable
    fake.step(1.0)  # exactly the limit
    status = clock.status()
    assert not status.usable
    assert status.event == "step"
    fake.step(-1.0)  # stepped back: the stop holds until the clock is measured again
    assert clock.status().event == "step"
    assert clock.poll_once().usable
    assert events(seen) == [(True, "synced"), (False, "step"), (True, "regained")]
    assert seen[1].details()["event"] == "step"
    assert "stepped 1 s" in str(seen[1].details()["reason"])


def test_a_step_below_a_second_only_widens_the_bound(
    fake: FakeTime, three: list[NtpResponder]
) -> None:
    clock = monitor(fake, three)
    before = clock.poll_once().error_bound.total_seconds()
    fake.step(0.3)
    status = clock.status()
    assert status.usable
    assert status.error_bound.total_seconds() == pytest.approx(before + 0.3, abs=1e-5)


def test_drift_past_the_stated_accuracy_stops_issuance(
    fake: FakeTime, three: list[NtpResponder]
) -> None:
    seen: list[ClockStatus] = []
    clock = monitor(fake, three, seen, drift_ppm=50_000.0, max_error_ms=200.0, max_age_s=60.0)
    assert clock.poll_once().usable
    fake.advance(3.0)  # 3 s x 5 % = 150 ms: still inside 200 ms
    assert clock.status().usable
    fake.advance(2.0)  # 250 ms
    status = clock.status()
    assert not status.usable and status.event == "drift"
    assert events(seen) == [(True, "synced"), (False, "drift")]


def leap_clock(
    fake: FakeTime, three: list[NtpResponder], announcing: int, seen: list[ClockStatus]
) -> NtpMonitor:
    fake.wall = LEAP_DAY_23H
    for responder in three[:announcing]:
        responder.leap = 1  # 23:59:60 is inserted tonight
    return monitor(fake, three, seen, max_age_s=7200.0, drift_ppm=0.0)


def test_a_leap_second_announced_by_the_majority_pauses_issuance_around_midnight(
    fake: FakeTime, three: list[NtpResponder]
) -> None:
    seen: list[ClockStatus] = []
    clock = leap_clock(fake, three, 2, seen)
    assert clock.poll_once().usable  # an hour before: issuance goes on
    bound = clock.status().error_bound.total_seconds()
    fake.advance(MIDNIGHT - 1.0 - bound - 0.01 - fake.wall)
    assert clock.status().usable  # just before 23:59:59 minus the bound
    fake.advance(0.02)
    status = clock.status()
    assert not status.usable and status.event == "leap second"
    assert status.reason == (
        "leap second announced by 2 of 3 agreeing sources: issuance paused within "
        "1 s of 2017-01-01 00:00:00 UTC"
    )
    for responder in three:
        responder.leap = 0  # the servers stop announcing at midnight...
    fake.advance(1.0)
    assert not clock.poll_once().usable  # ...which does not end the pause early
    fake.advance(1.0 + 2 * bound)  # past 00:00:01 plus the bound
    assert clock.status().usable
    assert events(seen) == [(True, "synced"), (False, "leap second"), (True, "regained")]


def test_a_leap_second_announced_by_a_minority_is_ignored(
    fake: FakeTime, three: list[NtpResponder]
) -> None:
    clock = leap_clock(fake, three, 1, [])
    assert clock.poll_once().usable
    fake.advance(MIDNIGHT - fake.wall)
    assert clock.status().usable


def test_a_leap_second_pauses_nothing_outside_its_window(
    fake: FakeTime, three: list[NtpResponder]
) -> None:
    clock = leap_clock(fake, three, 3, [])
    assert clock.poll_once().usable
    fake.advance(MIDNIGHT - 1.5 - fake.wall)
    assert clock.status().usable
    fake.advance(3.0)  # 00:00:01.5
    assert clock.status().usable
    for responder in three:
        responder.leap = 0
    fake.advance(86400.0 - 2.0)  # 23:59:59.5 the next day: that announcement is over
    assert clock.poll_once().usable
    fake.advance(0.5)
    assert clock.status().usable


def test_settings_refuse_a_server_listed_twice() -> None:
    with pytest.raises(ValueError, match="twice"):
        NtpSettings(servers=("127.0.0.1:1123", "127.0.0.1:1123"))

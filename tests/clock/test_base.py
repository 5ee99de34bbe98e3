"""ManualClock: the settable Clock other modules' tests use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tsa_server.clock.base import Clock, ClockStatus, ManualClock

T0 = datetime(2024, 2, 29, 23, 59, 59, 999000, tzinfo=UTC)


def test_manual_clock_is_a_clock() -> None:
    clock: Clock = ManualClock(T0)
    assert clock.now() == T0
    status = clock.status()
    assert status.usable
    assert status.error_bound == timedelta(milliseconds=1)
    assert status.last_sync == T0


def test_time_moves_only_when_told() -> None:
    clock = ManualClock(T0)
    clock.advance(timedelta(milliseconds=1))
    assert clock.now() == datetime(2024, 3, 1, tzinfo=UTC)
    clock.set(T0)
    assert clock.now() == T0


def test_status_is_settable() -> None:
    clock = ManualClock(T0, error_bound=timedelta(milliseconds=20))
    clock.make_unusable("offset 2.1 s exceeds 1 s")
    assert clock.status() == ClockStatus(
        False, timedelta(milliseconds=20), "offset 2.1 s exceeds 1 s", T0, timedelta(0), "manual"
    )
    clock.make_usable(timedelta(microseconds=500))
    assert clock.status().usable
    assert clock.status().error_bound == timedelta(microseconds=500)
    custom = ClockStatus(False, timedelta(seconds=3), "no NTP sample yet", None)
    clock.set_status(custom)
    assert clock.status() is custom


def test_starts_unusable_on_request() -> None:
    status = ManualClock(T0, usable=False, reason="no NTP sample yet").status()
    assert (status.usable, status.reason, status.last_sync) == (False, "no NTP sample yet", None)


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError):
        ManualClock(datetime(2024, 1, 1))
    with pytest.raises(ValueError):
        ManualClock(T0).set(datetime(2024, 1, 1))

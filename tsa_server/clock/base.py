"""The clock interface the issuance path consumes, and a settable clock for tests.

A ``Clock`` answers two questions: what time is it (``now``), and may we put that time
in a token right now, with what stated accuracy (``status``). ``status`` is called on
every request, so implementations must answer from memory: no I/O, no blocking.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

#: ``ClockStatus.error_bound`` when nothing bounds the error (no sample has ever been
#: taken). Never add it to a datetime: it only exists to compare and to display.
UNKNOWN_ERROR = timedelta.max


@dataclass(frozen=True)
class ClockStatus:
    """Whether tokens may be issued now, and how far ``Clock.now()`` may be from UTC."""

    usable: bool
    #: Bound on ``|true UTC - now()|``: the last good sample's bound plus the drift
    #: allowance since it was taken. When ``usable`` it is the accuracy a token states.
    error_bound: timedelta
    #: Short human text, safe for clients and logs.
    reason: str
    #: Aware UTC time of the last good sample, ``None`` before the first.
    last_sync: datetime | None
    #: Measured ``reference - local`` offset of the last good sample, if any.
    offset: timedelta | None = None
    #: The reference the last good sample came from (``"host:port"``), if any.
    source: str | None = None
    #: What the state is about, from a fixed set of short words (``clock/judge.py``:
    #: "in sync", "step", "no majority"...); empty for clocks that do not say.
    event: str = ""
    #: Sources the last poll dropped because they disagree with the majority.
    falsetickers: tuple[str, ...] = ()
    #: Sources whose measurements agreed in the last poll that had any, if known.
    agreeing: int | None = None

    def details(self) -> dict[str, object]:
        """What the operations log records of a change of this status (no secrets)."""
        found: dict[str, object] = {
            "usable": self.usable,
            "event": self.event,
            "reason": self.reason,
        }
        if self.error_bound != UNKNOWN_ERROR:
            found["error_bound_s"] = round(self.error_bound.total_seconds(), 6)
        if self.agreeing is not None:
            found["agreeing"] = self.agreeing
        if self.falsetickers:
            found["falsetickers"] = list(self.falsetickers)
        return found


class Clock(Protocol):
    """What the issuance path needs from a clock."""

    def now(self) -> datetime:
        """Current time, aware UTC."""
        ...

    def status(self) -> ClockStatus:
        """Whether issuance is allowed now; cheap (called on every request), no I/O."""
        ...


def utc_from_timestamp(seconds: float) -> datetime:
    """POSIX seconds -> aware UTC datetime."""
    return datetime.fromtimestamp(seconds, tz=UTC)


class ManualClock:
    """A ``Clock`` whose time and status the test sets; for unit tests of other modules.

    The time does not move unless ``set``/``advance`` moves it, so tests are exact.
    """

    def __init__(
        self,
        now: datetime | None = None,
        *,
        error_bound: timedelta = timedelta(milliseconds=1),
        usable: bool = True,
        reason: str | None = None,
    ) -> None:
        self._now = now if now is not None else utc_from_timestamp(time.time())
        if self._now.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._status = ClockStatus(
            usable=usable,
            error_bound=error_bound,
            reason=reason or ("in sync (manual clock)" if usable else "clock unusable"),
            last_sync=self._now if usable else None,
            offset=timedelta(0) if usable else None,
            source="manual" if usable else None,
        )

    def now(self) -> datetime:
        return self._now

    def status(self) -> ClockStatus:
        return self._status

    def set(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = now

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def set_status(self, status: ClockStatus) -> None:
        self._status = status

    def make_usable(self, error_bound: timedelta | None = None) -> None:
        self._status = replace(
            self._status,
            usable=True,
            error_bound=error_bound if error_bound is not None else self._status.error_bound,
            reason="in sync (manual clock)",
            last_sync=self._now,
        )

    def make_unusable(self, reason: str = "clock unusable") -> None:
        self._status = replace(self._status, usable=False, reason=reason)


#: Alias: a ManualClock nobody moves is a fixed clock.
FixedClock = ManualClock

#: A source of POSIX seconds, like ``time.time`` or ``time.monotonic``.
TimeSource = Callable[[], float]

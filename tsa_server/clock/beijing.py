"""Beijing-time calendar arithmetic shared by the fee and handle rules (G-1, G-2, G-3).

Instants are aware datetimes stored in UTC; month arithmetic happens on the Beijing
wall clock. Nothing here reads the system clock: every function takes its instants.
"""

from __future__ import annotations

import calendar as _cal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

BEIJING = ZoneInfo("Asia/Shanghai")

Clock = Callable[[], datetime]
"""An injectable `now()`: returns an aware datetime (G-1)."""


def require_aware(t: datetime, what: str = "instant") -> datetime:
    """Return `t` in UTC; naive datetimes are refused (an instant needs a zone)."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {t!r}")
    return t.astimezone(UTC)


def beijing(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """The instant (UTC) of a Beijing wall-clock time — how the seeds state every date."""
    return datetime(year, month, day, hour, minute, second, tzinfo=BEIJING).astimezone(UTC)


def to_beijing(t: datetime) -> datetime:
    """The Beijing wall-clock view of an instant, for display and month arithmetic."""
    return require_aware(t).astimezone(BEIJING)


def add_months(t: datetime, n: int) -> datetime:
    """G-2: move `t` by `n` months on the Beijing wall clock, clamping the day.

    The local time of day is kept; the result is returned in UTC. Callers computing a
    periodic schedule must always start from the anchor, never chain results.
    """
    local = to_beijing(t)
    index = local.year * 12 + (local.month - 1) + n
    year, month = divmod(index, 12)
    month += 1
    day = min(local.day, _cal.monthrange(year, month)[1])
    return local.replace(year=year, month=month, day=day).astimezone(UTC)


def display(t: datetime) -> str:
    """Beijing wall-clock text of an instant for people: `2024-02-29T15:00:00+08:00`."""
    return to_beijing(t).isoformat()


def utc_text(t: datetime) -> str:
    """Canonical text of an instant: `YYYY-MM-DDTHH:MM:SS[.ffffff]Z` (one form per value)."""
    u = require_aware(t)
    text = u.strftime("%Y-%m-%dT%H:%M:%S")
    if u.microsecond:
        text += f".{u.microsecond:06d}"
    return text + "Z"


def parse_utc_text(text: str) -> datetime:
    """Inverse of `utc_text`."""
    if not text.endswith("Z"):
        raise ValueError(f"not a canonical UTC instant: {text!r}")
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)


@dataclass(frozen=True)
class Interval:
    """A half-open interval `[start, end)` of instants (G-3)."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", require_aware(self.start, "start"))
        object.__setattr__(self, "end", require_aware(self.end, "end"))
        if self.end < self.start:
            raise ValueError("interval ends before it starts")

    def contains(self, t: datetime) -> bool:
        """True iff `start <= t < end`."""
        u = require_aware(t)
        return self.start <= u < self.end

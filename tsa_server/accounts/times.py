"""Instants of the account and evidence stores: aware UTC, millisecond precision, stored
and shown as fixed-width text (``2024-03-01T02:00:00.000Z``) that sorts as it reads."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import overload

#: A clock: the current instant, aware UTC.
Now = Callable[[], datetime]


def utc_now() -> datetime:
    """The system clock, truncated to milliseconds (what the store keeps)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@overload
def ts(value: datetime) -> str: ...
@overload
def ts(value: None) -> None: ...
@overload
def ts(value: datetime | None) -> str | None: ...
def ts(value: datetime | None) -> str | None:
    """Aware datetime -> ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (sub-millisecond digits dropped)."""
    if value is None:
        return None
    if value.utcoffset() is None:
        raise ValueError("instants must be aware datetimes")
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


@overload
def dt(text: str) -> datetime: ...
@overload
def dt(text: None) -> None: ...
@overload
def dt(text: str | None) -> datetime | None: ...
def dt(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)

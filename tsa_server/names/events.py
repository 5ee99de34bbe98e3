"""Registry events and their canonical byte encoding (the operations-log seam).

Every state change of the registry is one `Event`. Its canonical bytes are compact
JSON, UTF-8, keys sorted, no insignificant whitespace, instants as
`YYYY-MM-DDTHH:MM:SS[.ffffff]Z`; values are limited to strings, integers, booleans,
null, lists and string-keyed objects (no floats), so every value has one encoding.
The registry hands these bytes to an `EventSink` — where the lead wires the TSA
(time-stamp the bytes) and the ledger's operations log — before it changes state.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from tsa_server.clock.beijing import parse_utc_text, require_aware, utc_text

SCHEMA = "tsa.names.event/1"


class EventKind(enum.StrEnum):
    APPLIED = "applied"
    APPROVED = "approved"
    CONTESTED = "contested"
    OBJECTED = "objected"
    DECIDED = "decided"
    HANDLE_CHANGED = "handle_changed"
    CUSTOM_CHANGED = "custom_changed"
    RELEASED = "released"
    RECLAIMED = "reclaimed"
    REVIEW_RESOLVED = "review_resolved"
    BRAND_CERTIFIED = "brand_certified"  # H-14: proof accepted, effective at once
    BRAND_REJECTED = "brand_rejected"  # H-14: proof refused, the application withdrawn
    TRADEMARK_COMPLAINT_FILED = "trademark_complaint_filed"  # H-13: pending the operator
    TRADEMARK_COMPLAINT_UPHELD = "trademark_complaint_upheld"  # H-13: the handle moves
    TRADEMARK_COMPLAINT_DISMISSED = "trademark_complaint_dismissed"  # H-13: nothing changes


def _check_value(value: Any, where: str) -> None:
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_value(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: object keys must be strings")
            _check_value(v, f"{where}.{k}")
        return
    raise TypeError(f"{where}: {type(value).__name__} has no canonical encoding")


@dataclass(frozen=True)
class Event:
    """One registry state change: sequence number, kind, instant, handle and details."""

    seq: int
    kind: EventKind
    at: datetime
    key: str  # comparison key of the handle (H-4)
    handle: str  # display form (NFKC)
    data: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", require_aware(self.at))
        object.__setattr__(self, "kind", EventKind(self.kind))
        data = dict(self.data)
        _check_value(data, "data")
        object.__setattr__(self, "data", data)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "seq": self.seq,
            "kind": self.kind.value,
            "at": utc_text(self.at),
            "key": self.key,
            "handle": self.handle,
            "data": dict(self.data),
        }

    def canonical_bytes(self) -> bytes:
        return json.dumps(
            self.to_json(),
            ensure_ascii=False,
            sort_keys=True,
            separators=(",", ":"),
            allow_nan=False,
        ).encode("utf-8")


def decode_event(raw: bytes) -> Event:
    """Inverse of `Event.canonical_bytes` (refuses another schema)."""
    obj = json.loads(raw.decode("utf-8"))
    if obj.get("schema") != SCHEMA:
        raise ValueError(f"not a {SCHEMA} record")
    return Event(
        obj["seq"],
        EventKind(obj["kind"]),
        parse_utc_text(obj["at"]),
        obj["key"],
        obj["handle"],
        obj["data"],
    )


class EventSink(Protocol):
    """Receives each event before the registry applies it.

    If `record` raises, the operation has no effect: the registry changes state only
    after the sink accepted the event (write-ahead).
    """

    def record(self, event: Event, canonical: bytes) -> None: ...


class MemorySink:
    """An in-memory operations log, for tests and a standalone registry."""

    def __init__(self) -> None:
        self.records: list[tuple[Event, bytes]] = []

    def record(self, event: Event, canonical: bytes) -> None:
        self.records.append((event, canonical))

    @property
    def events(self) -> list[Event]:
        return [e for e, _ in self.records]

    def kinds(self) -> list[EventKind]:
        return [e.kind for e, _ in self.records]


def event_time(at: datetime) -> str:
    """The canonical text of an instant inside event data."""
    return utc_text(at)

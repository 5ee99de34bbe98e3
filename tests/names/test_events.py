"""Events: canonical bytes, round trip, and the write-ahead sink seam."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.names.conftest import E5_LEXICON, OPEN_POLICY, shop
from tsa_server.names import Event, EventKind, Registry, beijing
from tsa_server.names.events import decode_event


def test_canonical_bytes_are_sorted_compact_utf8():
    e = Event(
        7,
        EventKind.APPLIED,
        beijing(2024, 1, 1, 8),
        "abc",
        "ABC",
        {"z": 1, "a": "店", "n": None, "l": [True, {"y": 2, "b": 3}]},
    )
    assert (
        e.canonical_bytes()
        == (
            '{"at":"2024-01-01T00:00:00Z","data":{"a":"店","l":[true,{"b":3,"y":2}],"n":null,"z":1},'
            '"handle":"ABC","key":"abc","kind":"applied","schema":"tsa.names.event/1","seq":7}'
        ).encode()
    )


def test_microseconds_and_round_trip():
    e = Event(
        1, EventKind.DECIDED, datetime(2024, 1, 1, 0, 0, 0, 5, tzinfo=UTC), "k", "K", {"x": "y"}
    )
    assert b'"at":"2024-01-01T00:00:00.000005Z"' in e.canonical_bytes()
    assert decode_event(e.canonical_bytes()) == e


@pytest.mark.parametrize("value", [1.5, b"x", {1: 2}, (1, 2), object()])
def test_values_without_canonical_form_are_refused(value):
    with pytest.raises(TypeError):
        Event(1, EventKind.APPLIED, beijing(2024, 1, 1), "k", "K", {"v": value})


def test_naive_instant_refused():
    with pytest.raises(ValueError):
        Event(1, EventKind.APPLIED, datetime(2024, 1, 1), "k", "K")


class FailingSink:
    def record(self, event, canonical):
        raise OSError("TSA unreachable")


def test_failing_sink_leaves_the_registry_untouched(clock):
    registry = Registry(OPEN_POLICY, lambda: E5_LEXICON, clock, FailingSink())
    with pytest.raises(OSError):
        registry.apply(shop("s1", "alpha店"), "alpha")
    assert registry.lookup("alpha") is None and registry.store.last_seq() == 0


def test_every_event_reaches_the_sink_with_its_bytes(registry, sink, clock):
    registry.apply(shop("s1", "alpha店"), "alpha")
    registry.approve("alpha")
    registry.change_custom("acct-s1", "s1", "数码")
    assert [e.seq for e in sink.events] == [1, 2, 3]
    assert sink.kinds() == [EventKind.APPLIED, EventKind.APPROVED, EventKind.CUSTOM_CHANGED]
    for event, raw in sink.records:
        assert raw == event.canonical_bytes() and decode_event(raw) == event

"""The SQL `NameStore`, on SQLite and on PostgreSQL: same behaviour as the memory store
through the registry, records survive a reopen, `commit` is atomic, events are
append-only and carry a token, and the time-stamping sink's dry-run / time-stamp /
commit protocol."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from fractions import Fraction

import pytest

from tests.names.conftest import E5_LEXICON, OPEN_POLICY, FakeClock, shop
from tsa_server.names import (
    Done,
    EventKind,
    HandleStatus,
    Metrics,
    Refusal,
    Registry,
    ReleaseCause,
    beijing,
)
from tsa_server.names.sql_store import (
    SqlNameStore,
    StoredEvent,
    record_from_json,
    record_to_json,
)
from tsa_server.names.timestamping import (
    EventMismatch,
    NamesService,
    PinnedClock,
    TimestampingSink,
    TimestampUnavailable,
)


class StagingSink:
    """Stages every event with a stand-in token (the real one is tested over HTTP)."""

    def __init__(self, store: SqlNameStore) -> None:
        self.store = store

    def record(self, event, canonical: bytes) -> None:
        self.store.stage_event(
            StoredEvent(
                event.seq,
                event.kind.value,
                event.key,
                event.handle,
                event.to_json()["at"],
                canonical,
                hashlib.sha256(canonical).hexdigest(),
                b"token",
                "2024-01-01",
                None,
            )
        )


@pytest.fixture
def store(engine_db):
    s = engine_db.names()
    yield s
    s.close()


@pytest.fixture
def registry(store, clock: FakeClock) -> Registry:
    return Registry(OPEN_POLICY, lambda: E5_LEXICON, clock, StagingSink(store), store)


def test_pragmas_and_schema(tmp_path) -> None:
    store = SqlNameStore(tmp_path / "names.sqlite")
    store.close()
    conn = sqlite3.connect(store.db.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"records", "bindings", "meta", "events"} <= tables
    conn.close()


def test_flows_persist_and_round_trip(registry, store, clock, engine_db) -> None:
    assert registry.apply(shop("s1", "alpha店"), "alpha").ok
    assert registry.apply(shop("s2", "alpha数码"), "alpha").ok
    strong = Metrics(
        search_rate=Fraction(9, 10), usage_days=300, wangwang=True, continuous_days=200
    )
    assert registry.approve("alpha", {"s1": Metrics(), "s2": strong}).ok
    assert registry.object("alpha", "s1", "acct-s1", "mine").ok
    rec = store.get("alpha")
    assert rec.status is HandleStatus.CONTESTED and len(rec.contest.objections) == 1
    assert record_from_json(record_to_json(rec)) == rec
    assert store.by_shop("s2") == rec and store.by_shop("nobody") is None
    clock.advance(rec.contest.window.end - clock.now)
    assert registry.decide("alpha", winner="s2").ok
    assert registry.release("s2", ReleaseCause.SHOP_DELETED).ok
    held = store.get("alpha")
    assert held.status is HandleStatus.ON_HOLD and store.by_shop("s2") is None
    assert registry.apply(shop("s3", "alpha好"), "alpha").reason is Refusal.ON_HOLD
    assert store.last_seq() == 6
    reopened = engine_db.names()
    assert list(reopened.records()) == list(store.records()) == [held]
    assert [e.kind for e in reopened.events()] == [
        "applied",
        "applied",
        "contested",
        "objected",
        "decided",
        "released",
    ]
    assert reopened.last_seq() == 6
    reopened.close()


def test_commit_is_atomic(store) -> None:
    registry = Registry(
        OPEN_POLICY, lambda: E5_LEXICON, FakeClock(beijing(2024, 1, 1)), StagingSink(store), store
    )
    assert registry.apply(shop("s1", "alpha店"), "alpha").ok
    before = (list(store.records()), store.events(), store.last_seq())
    rec = store.get("alpha")
    with pytest.raises(ValueError, match="sequence gap"):
        store.commit(5, [rec], [])
    with pytest.raises(sqlite3.IntegrityError):  # a staged event without its token
        store.stage_event(
            StoredEvent(2, "approved", "alpha", "alpha", "t", b"{}", "h", b"", "g", None)
        )
        store.commit(2, [], ["alpha"])
    assert (list(store.records()), store.events(), store.last_seq()) == before


def test_events_are_append_only(registry, store, engine_db) -> None:
    assert registry.apply(shop("s1", "alpha店"), "alpha").ok
    conn = engine_db.raw(names=True)
    for sql in ("UPDATE events SET kind = 'x'", "DELETE FROM events"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(sql)
    conn.close()
    assert len(store.events()) == 1


class _Issued:
    def __init__(self, token):
        self.token = token


def _service(store, clock, timestamp) -> NamesService:
    sink = TimestampingSink(store, None)
    pinned = PinnedClock(clock)
    registry = Registry(OPEN_POLICY, lambda: E5_LEXICON, pinned, sink, store)
    return NamesService(registry, store, sink, pinned, timestamp)


def test_no_token_means_no_event(store, clock) -> None:
    async def refuse(digest, name):
        return _Issued(None)

    names = _service(store, clock, refuse)

    async def go():
        async with names.operation():
            return await names.run(lambda r: r.apply(shop("s1", "alpha店"), "alpha"))

    with pytest.raises(TimestampUnavailable):
        asyncio.run(go())
    assert store.last_seq() == 0 and store.get("alpha") is None and store.events() == []
    # the sink refuses an event that was never time-stamped
    with pytest.raises(TimestampUnavailable):
        names.registry.apply(shop("s1", "alpha店"), "alpha")
    assert store.last_seq() == 0


def test_changed_bytes_are_refused(store, clock, monkeypatch) -> None:
    seen = []

    async def stamp(digest, name):
        seen.append(digest)
        return _Issued(b"not-a-token")

    names = _service(store, clock, stamp)
    monkeypatch.setattr(
        "tsa_server.names.timestamping.gen_time_of", lambda token: beijing(2024, 1, 1)
    )
    refusal = asyncio.run(_op(names, lambda r: r.apply(shop("s1", "beta店"), "alpha")))
    assert refusal.reason is Refusal.NOT_IN_SHOP_NAME
    assert seen == []  # a refusal is never time-stamped
    done = asyncio.run(_op(names, lambda r: r.apply(shop("s1", "alpha店"), "alpha")))
    assert isinstance(done, Done) and done.event.kind is EventKind.APPLIED
    (event,) = store.events()
    assert seen == [hashlib.sha256(event.canonical).digest()] and event.token == b"not-a-token"
    # an operation whose second run differs (here: another shop name) is not committed
    calls = iter(["alpha好", "alpha数码"])
    with pytest.raises(EventMismatch):
        asyncio.run(_op(names, lambda r: r.apply(shop("s2", next(calls)), "alpha")))
    assert store.last_seq() == 1


async def _op(names, op):
    async with names.operation():
        return await names.run(op)

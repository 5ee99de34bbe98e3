"""The ledger read pool (web/ledger/reads.py) on a real ledger file: each worker thread
reads through a reader of its own, reads past the bound are refused with 503 at once,
and a slot is freed only when its read has really ended."""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web

from ledger.store.base import NewEntry
from ledger.store.sqlite import SqliteReader, SqliteStore
from tsa_server.web.ledger.reads import ReaderPool


def opener(path: Path) -> Callable[[], SqliteReader]:
    return functools.partial(SqliteReader, path)


@pytest.fixture
def ledger_path(tmp_path):
    path = tmp_path / "ledger.sqlite"
    store = SqliteStore(path)
    state = store.claim_epoch()
    entries = [
        NewEntry(os.urandom(64), 1_000 + i, i + 1, "sha256", os.urandom(32)) for i in range(20)
    ]
    store.append(state.epoch, 0, entries)
    store.close()
    return path


def test_each_thread_reads_through_its_own_reader(ledger_path) -> None:
    pool = ReaderPool(workers=2, max_pending=64)
    seen: list[tuple[int, int]] = []
    gate = threading.Barrier(2)

    def work(reader) -> int:
        seen.append((threading.get_ident(), id(reader)))
        try:
            gate.wait(0.2)  # both threads busy at once at least once
        except threading.BrokenBarrierError:
            pass
        return reader.size()

    async def run() -> list[int]:
        return await asyncio.gather(
            *(pool.run("tokens", opener(ledger_path), work) for _ in range(20))
        )

    try:
        assert asyncio.run(run()) == [20] * 20
    finally:
        pool.close()
    readers_of = {}
    for thread, reader in seen:
        readers_of.setdefault(thread, set()).add(reader)
    assert len(readers_of) == 2 and all(len(r) == 1 for r in readers_of.values())
    assert len({r for rs in readers_of.values() for r in rs}) == 2  # never shared


def test_reads_past_the_bound_are_refused_at_once(ledger_path) -> None:
    pool = ReaderPool(workers=1, max_pending=2)
    release = threading.Event()

    def slow(reader) -> int:
        release.wait(10)
        return reader.size()

    async def run() -> None:
        held = [
            asyncio.create_task(pool.run("tokens", opener(ledger_path), slow)) for _ in range(2)
        ]
        await asyncio.sleep(0.05)
        with pytest.raises(web.HTTPServiceUnavailable) as refused:
            await pool.run("tokens", opener(ledger_path), slow)
        assert refused.value.headers["Retry-After"] == "1"
        # A client that gives up while its read runs does not free the slot early.
        held[0].cancel()
        await asyncio.sleep(0.05)
        assert pool.pending == 2
        with pytest.raises(web.HTTPServiceUnavailable):
            await pool.run("tokens", opener(ledger_path), slow)
        release.set()
        assert await held[1] == 20
        for _ in range(100):
            if pool.pending == 0:
                break
            await asyncio.sleep(0.01)
        assert pool.pending == 0
        assert await pool.run("tokens", opener(ledger_path), lambda r: r.size()) == 20

    try:
        asyncio.run(run())
    finally:
        release.set()
        pool.close()
    assert pool.refused == 2

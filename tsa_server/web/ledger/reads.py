"""Ledger reads that cost more than one row (proofs, lookups, tiles and entry bundles)
run here, off the event loop, so that a burst of them never delays `/tsr`.

A small pool of threads, each with readers of its own (a sqlite3 connection is never
used by two threads), and a bound on the reads admitted at once
(running plus queued): past it a request is answered 503 with Retry-After at once,
instead of queueing without end and holding its answer's memory. The per-client rate
limits of the serving layer come first; this bound protects the server as a whole.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from aiohttp import web

from ledger.store.base import Reader

T = TypeVar("T")

#: Threads building proofs and lookups: SQLite reads release the GIL, hashing and JSON
#: do not, so more threads than this would take the loop's share of the CPU.
WORKERS = 2
#: Reads admitted at once (running + queued); a page of 100 entries takes ~30 ms, so a
#: full queue drains in about a quarter of a second.
MAX_PENDING = 16


class ReaderPool:
    """Runs `work(reader)` in a worker thread on that thread's reader of a log (opened
    with the log's `open_reader` on the thread's first read of it)."""

    def __init__(self, workers: int = WORKERS, max_pending: int = MAX_PENDING) -> None:
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="ledger-read")
        self._max_pending = max_pending
        self._local = threading.local()
        self._lock = threading.Lock()
        self._pending = 0
        self._readers: list[Reader] = []  # every thread's, closed at shutdown
        self.refused = 0  # requests answered 503 (for tests and metrics)

    @property
    def pending(self) -> int:
        return self._pending

    async def run(
        self, log: str, open_reader: Callable[[], Reader], work: Callable[[Reader], T]
    ) -> T:
        with self._lock:
            if self._pending >= self._max_pending:
                self.refused += 1
                raise web.HTTPServiceUnavailable(
                    text="too many ledger reads in progress: retry in a second\n",
                    headers={"Retry-After": "1"},
                )
            self._pending += 1
        try:
            future = self._executor.submit(self._call, log, open_reader, work)
        except RuntimeError:  # shut down: the server is stopping
            self._release(None)
            raise web.HTTPServiceUnavailable(text="the server is stopping\n") from None
        # Released when the work ends, or when it is cancelled before it starts: a client
        # that gives up does not free a slot while its read still runs.
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def _release(self, _: object) -> None:
        with self._lock:
            self._pending -= 1

    def _call(self, log: str, open_reader: Callable[[], Reader], work: Callable[[Reader], T]) -> T:
        readers: dict[str, Reader] | None = getattr(self._local, "readers", None)
        if readers is None:
            readers = self._local.readers = {}
        reader = readers.get(log)
        if reader is None:
            reader = readers[log] = open_reader()
            with self._lock:
                self._readers.append(reader)
        return work(reader)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        for reader in self._readers:
            reader.close()
        self._readers.clear()

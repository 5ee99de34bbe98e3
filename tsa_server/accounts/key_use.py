"""When API keys were last used, recorded without delaying the requests that use them.

Every authenticated request used to write its key's ``last_used_at`` (a durable,
fsync'd commit, at most once a minute per key) on the event loop, where a busy database
(a CLI command holding the write lock, a slow disk) stalled every request of the server,
`/tsr` included. `KeyUseRecorder.note` only updates a dictionary: a key's use is kept
when its last recorded one is `LAST_USED_RESOLUTION` old, so each key is written at most
once a minute. A background task writes what was noted every `flush_s` seconds, in one
transaction, in a worker thread on a connection of its own. A write that fails (the
database locked past its busy timeout) is kept and tried again at the next flush; a
crash loses at most `flush_s` seconds of "last used" times, which are informational.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from tsa_server.accounts.keys import LAST_USED_RESOLUTION, ApiKey, use_is_news
from tsa_server.accounts.store import SqlAccountStore
from tsa_server.database import Database, database_errors

log = logging.getLogger("tsa.accounts.key_use")


class KeyUseRecorder:
    """Coalesces keys' uses in memory; `run` writes them in batches (module docstring)."""

    def __init__(self, where: Path | str | Database, *, flush_s: float = 5.0) -> None:
        self.where = where
        self.flush_s = flush_s
        self._pending: dict[str, datetime] = {}  # key id -> newest use not yet written
        self._lock = threading.Lock()  # keys are authenticated in worker threads
        self._written: dict[str, datetime] = {}  # key id -> last use written (pruned)
        # One worker thread with its own connection: writes never overlap, even when a
        # cancelled flush's write is still running.
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="key-use")
        self._store: SqlAccountStore | None = None
        self._task: asyncio.Task[None] | None = None

    def note(self, key: ApiKey, at: datetime) -> None:
        """A use of `key` at `at` (Accounts.authenticate): O(1), no I/O."""
        last = max(
            (t for t in (key.last_used_at, self._written.get(key.id)) if t is not None),
            default=None,
        )
        with self._lock:
            if key.id in self._pending or use_is_news(last, at):
                self._pending[key.id] = at

    def last_use(self, key: ApiKey) -> ApiKey:
        """`key` with the newest use noted here (perhaps not written yet)."""
        noted = self._pending.get(key.id) or self._written.get(key.id)
        if noted is None or (key.last_used_at is not None and key.last_used_at >= noted):
            return key
        return replace(key, last_used_at=noted)

    async def flush(self) -> int:
        """Write what was noted (off the loop); the number of keys written."""
        if not self._pending:
            return 0
        with self._lock:
            batch, self._pending = self._pending, {}
        try:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._write, batch)
        except database_errors() as exc:
            log.warning("last use of %d API keys not written yet: %s", len(batch), exc)
            with self._lock:
                for key_id, at in batch.items():  # keep the newer of the two
                    self._pending[key_id] = max(at, self._pending.get(key_id, at))
            return 0
        self._written.update(batch)
        newest = max(batch.values())
        self._written = {
            k: t for k, t in self._written.items() if newest - t < LAST_USED_RESOLUTION
        }
        return len(batch)

    def _write(self, batch: dict[str, datetime]) -> None:
        if self._store is None:
            self._store = SqlAccountStore(self.where)
        self._store.touch_api_keys(batch)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_s)
            await self.flush()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        """Stop the task and write what is still pending."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=False)

    def _close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

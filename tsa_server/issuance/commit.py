"""The issuance pipeline's commit stage: one thread appending signed batches to the
ledger store strictly in index order, and the batch values the issuer and it share.

The issuer (issuance.py) sequences and signs on the event loop; it hands signed batches
over here in index order and gets back, through `report`, what became durable.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ledger.store.base import NewEntry, Store
from tsa_server.issuance.observer import IssuanceObserver
from tsa_server.rfc3161.request_types import TimeStampRequest

log = logging.getLogger("tsa.issuance")


@dataclass(frozen=True)
class Issued:
    """The outcome of one request: the TimeStampResp, and the token and its ledger index
    when granted (both None for a rejection)."""

    reply: bytes
    token: bytes | None = None
    index: int | None = None


@dataclass
class Pending:
    """A validated request waiting for its outcome."""

    request: TimeStampRequest
    future: asyncio.Future[Issued]


@dataclass
class Batch:
    """Requests sequenced together: their first index, genTime, serials and built parts
    and, once signed, their ledger entries (or the error that stopped them)."""

    pending: list[Pending]
    first: int
    gen_ms: int
    serials: list[int]
    tst_infos: list[bytes]
    attrs: list[bytes]
    digests: list[str]
    signed: bool = False
    entries: list[NewEntry] | None = None  # with the tokens, once signed
    error: BaseException | None = None


@dataclass(frozen=True)
class Committed:
    """What the committer did with the batches it took: `committed` are durable (up to
    `durable_index`); `failed` are not, and `error` says why when they are the first
    failure (None for batches sequenced on top of a failure the loop already saw)."""

    committed: list[Batch]
    failed: list[Batch]
    error: BaseException | None
    durable_index: int


class Committer:
    """One thread appending signed batches to the store, strictly in index order.

    It takes every batch handed over since its last commit and appends them in one
    durable transaction, then reports to the loop and goes straight on to the next
    group: the commit never waits for the loop to notice the last one. A batch commits
    only when it continues the durable sequence exactly; a signing error, a failed
    commit, or a batch sequenced on top of one of those fails instead, and nothing of
    it leaves the process.
    """

    def __init__(
        self,
        store: Store,
        epoch: int,
        durable_index: int,
        report: Callable[[Committed], None],
    ) -> None:
        self._store = store
        self._epoch = epoch
        self._durable_index = durable_index
        self._report = report
        self._items: deque[Batch] = deque()
        self._wakeup = threading.Condition()
        self._closed = False
        self.observer: IssuanceObserver | None = None  # told each commit's duration
        self._thread = threading.Thread(target=self._run, name="tsa-commit", daemon=True)
        self._thread.start()

    def put(self, batches: list[Batch]) -> None:
        with self._wakeup:
            self._items.extend(batches)
            self._wakeup.notify()

    def close(self) -> None:
        """Commit what was handed over, then stop."""
        with self._wakeup:
            self._closed = True
            self._wakeup.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._items and not self._closed:
                    self._wakeup.wait()
                if not self._items:
                    return
                batches = list(self._items)
                self._items.clear()
            self._report(self._commit(batches))

    def _landed(self, end: int, last_token: bytes) -> bool:
        """Whether a commit whose outcome was unknown (the connection died while COMMIT
        was under way, as in a database failover) is durable all the same: the log ends
        at `end` with our last token. Otherwise the sequence would stay behind the log
        and every later commit would fail."""
        try:
            entry = self._store.entry(end - 1)
            return self._store.size() == end and entry is not None and entry.token == last_token
        except Exception:  # noqa: BLE001 - unknown stays failed
            return False

    def _commit(self, batches: list[Batch]) -> Committed:
        group: list[Batch] = []
        failed: list[Batch] = []
        error: BaseException | None = None
        end = self._durable_index
        for batch in batches:
            if batch.first != end:
                # Sequenced on top of a failure (one found below, or one already
                # reported); batches the loop sequenced after its restart still follow.
                failed.append(batch)
            elif batch.error is not None:
                failed.append(batch)
                error = error or batch.error
            else:
                group.append(batch)
                end += len(batch.pending)
        if group:
            entries = [entry for batch in group for entry in batch.entries or ()]
            started = time.perf_counter()
            try:
                self._store.append(self._epoch, group[0].first, entries)
            except Exception as exc:  # noqa: BLE001 - any commit fault fails the group
                if not self._landed(end, entries[-1].token):
                    return Committed([], batches, exc, self._durable_index)
                log.warning("a commit reported as failed is durable after all: %s", exc)
            if self.observer is not None:
                self.observer.committed(len(entries), time.perf_counter() - started)
            self._durable_index = end
        return Committed(group, failed, error, self._durable_index)

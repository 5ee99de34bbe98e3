"""The operations log (docs/spec/ledger.md L-03): a second log with the same machinery as the
token log — SQLite store, Merkle tree, hash chain, signed checkpoints — whose entries
are the TSA's own events in canonical JSON: start-ups (with the certificate, keys and
configuration in force), clock sync lost and regained, and every token-log checkpoint.

An event is durable when `record` returns. The token log stays "one leaf = one token".
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ledger.store.base import NewEntry, Store

log = logging.getLogger("tsa.opslog")


def canonical(event: dict[str, Any]) -> bytes:
    """Sorted keys, no spaces, UTF-8: the same event always has the same bytes."""
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class OpsLog:
    """Appends events to the operations log store; one writer (it holds the store)."""

    def __init__(self, store: Store, *, wall_clock: Callable[[], float] = time.time):
        self.store = store
        self._wall_clock = wall_clock
        state = store.claim_epoch()
        self._epoch = state.epoch
        self._next = state.next_index
        self._last_ms = state.last_gen_time_ms
        self._lock = threading.Lock()  # the loop and evidence worker threads both record

    def record(self, kind: str, **details: Any) -> int:
        """Durably append one event; returns its index in the operations log."""
        with self._lock:
            return self._record(kind, details)

    def _record(self, kind: str, details: dict[str, Any]) -> int:
        now_ms = max(int(self._wall_clock() * 1000), self._last_ms)
        event = canonical({"kind": kind, "time_ms": now_ms, **details})
        index = self._next
        # Entries of this log are not tokens: the "serial" is the index, unique by
        # construction, and the "imprint" the event's SHA-256 for lookups.
        entry = NewEntry(event, now_ms, index + 1, "event", hashlib.sha256(event).digest())
        self.store.append(self._epoch, index, [entry])
        self._next, self._last_ms = index + 1, now_ms
        return index

    def last_checkpoint(self, origin: str, look_back: int = 10_000) -> tuple[int, bytes] | None:
        """(size, root) of the latest token-log checkpoint of ``origin`` this log
        recorded, looking at most ``look_back`` events back (every start-up is an event,
        and checkpoints come every few seconds, so the latest is always near the end)."""
        end = self.store.size()
        start = max(0, end - look_back)
        found = None
        for entry in self.store.entries(start, end):
            if b'"kind":"checkpoint"' not in entry.token:
                continue
            event = json.loads(entry.token)
            if event.get("origin") == origin:
                found = (int(event["size"]), bytes.fromhex(event["root"]))
        return found

    def record_safely(self, kind: str, **details: Any) -> None:
        """For callbacks that must not fail their caller: log a failed append loudly."""
        try:
            self.record(kind, **details)
        except Exception as exc:  # noqa: BLE001 - e.g. disk full; the next event retries
            log.error("operations log: %s event not recorded: %s", kind, exc)

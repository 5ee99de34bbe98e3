"""The WAL checkpoint thread of a ledger store: copies committed WAL frames back into the
database file so that the WAL stops growing under a steady stream of commits.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from ledger.store.sqlite_schema import connect

# The WAL starts again from its beginning (and so stops growing) only after a checkpoint
# has copied every frame in it, and under a steady stream of commits the checkpoint
# thread never quite catches up. So the writer checkpoints too, once the WAL passes this
# many pages (64 MiB): by then the thread has copied nearly all of it, the writer's own
# checkpoint completes with no commit beside it, and the next commit restarts the WAL.
WAL_RESTART_PAGES = 16_384


class WalCheckpointer:
    """Copies committed WAL frames into the database file (PASSIVE: never blocks the
    writer or readers): every `busy_interval_s` while commits keep coming, so that a
    commit that crosses WAL_RESTART_PAGES finds almost nothing left to copy, and every
    `interval_s` when they do not. A final TRUNCATE checkpoint runs at stop."""

    def __init__(self, path: Path, interval_s: float = 0.25, busy_interval_s: float = 0.05) -> None:
        self._path = path
        self._interval_s = interval_s
        self._busy_interval_s = busy_interval_s
        self.rounds_copied = 0  # checkpoints that copied WAL frames into the database
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn = connect(self._path)
        wait = self._interval_s
        try:
            while not self._stopping.wait(wait):
                try:
                    _, _, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error:
                    copied = 0  # busy or failing disk: the next round tries again
                self.rounds_copied += copied > 0
                wait = self._busy_interval_s if copied > 0 else self._interval_s
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
        finally:
            conn.close()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(10)

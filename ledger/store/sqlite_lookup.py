"""Lookup of a SQLite ledger's entries by imprint and by leaf hash, kept off the commit.

Both keys are random, so an index on them in the ledger itself costs every commit one
freshly dirtied page per entry and per index: under load that tripled the bytes each
commit writes and syncs, and the commit is on every reply's path. Instead a thread of
the writer copies (key, index) pairs in bulk, every second or so, into a side database
`<ledger>.lookup` (derived data: rebuilt from the ledger whenever it is missing,
behind or belongs to another ledger). A lookup reads the side database for the indexed
part and scans only the short tail the copier has not reached yet, by index range.

The side database is never trusted: every index it returns is read back from the
ledger and kept only if the entry really has the key, so a stale or foreign lookup
file can at worst make a lookup slower, never wrong.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from ledger.files import ensure_private_file

_SCHEMA = """
CREATE TABLE IF NOT EXISTS by_imprint (
    imprint BLOB NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY (imprint, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS by_leaf_hash (
    leaf_hash BLOB NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY (leaf_hash, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS progress (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    size INTEGER NOT NULL,      -- entries [0, size) are in the tables above
    chain_head BLOB NOT NULL    -- the ledger's chain hash at size - 1: which ledger
);
"""
_COPY_ROWS = 50_000  # entries per side-database transaction


def lookup_path(ledger: Path) -> Path:
    return ledger.with_name(ledger.name + ".lookup")


class LookupCopier:
    """The writer's thread that keeps `<ledger>.lookup` up to date. It reads committed
    entries on a connection of its own and never takes the ledger's write lock."""

    def __init__(self, ledger: Path, interval_s: float = 1.0):
        self._ledger = ledger
        self._interval_s = interval_s
        self.copied_size = 0  # entries the side database covers (for tests and metrics)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ledger-lookup", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(30)

    def _run(self) -> None:
        try:
            side = _open_side(lookup_path(self._ledger))
            side.execute("ATTACH DATABASE ? AS ledger", (f"file:{self._ledger}?mode=ro",))
        except sqlite3.Error:
            return  # no lookup file: lookups scan the ledger instead
        try:
            self.copied_size = _start_over_if_foreign(side)
            while True:
                try:
                    while self._copy_some(side) == _COPY_ROWS:
                        pass
                except sqlite3.Error:
                    pass  # busy or failing disk: the next round tries again
                if self._stopping.wait(self._interval_s):
                    return
        finally:
            side.close()

    def _copy_some(self, side: sqlite3.Connection) -> int:
        # Each copy is one statement run inside SQLite: no row passes through Python,
        # so the server's event loop hardly notices it. Sorted keys fill each B-tree
        # page once per transaction rather than once per entry.
        start = self.copied_size
        with side:
            side.execute("BEGIN")
            (size,) = side.execute(
                "SELECT COALESCE(MAX(idx) + 1, 0) FROM ledger.entries"
            ).fetchone()
            end: int = min(size, start + _COPY_ROWS)
            if end <= start:
                return 0
            side.execute(
                "INSERT OR IGNORE INTO by_imprint (imprint, idx) SELECT imprint, idx "
                "FROM ledger.entries WHERE idx >= ? AND idx < ? AND imprint IS NOT NULL "
                "ORDER BY imprint, idx",
                (start, end),
            )
            side.execute(
                "INSERT OR IGNORE INTO by_leaf_hash (leaf_hash, idx) SELECT leaf_hash, idx "
                "FROM ledger.entries WHERE idx >= ? AND idx < ? ORDER BY leaf_hash, idx",
                (start, end),
            )
            side.execute(
                "INSERT OR REPLACE INTO progress (id, size, chain_head) "
                "SELECT 1, ?, chain_hash FROM ledger.entries WHERE idx = ?",
                (end, end - 1),
            )
        self.copied_size = end
        return end - start


def _open_side(path: Path) -> sqlite3.Connection:
    ensure_private_file(path)
    # uri=True: the ledger is attached read-only by a file: URI.
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, uri=True)
    conn.execute("PRAGMA journal_mode=WAL")
    # Derived data: a crash may lose the last copies (WAL + NORMAL never corrupts), and
    # the progress row is lost with them, so they are simply copied again.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(_SCHEMA)
    return conn


def _made_for(chain_head: Callable[[int], bytes], size: int, head: bytes) -> bool:
    """Whether a side database covering `size` entries with this chain head was made
    for the ledger `chain_head` reads (not another one, nor a later state of this one
    since restored from an older backup)."""
    try:
        return chain_head(size) == head
    except LookupError:
        return False


def _start_over_if_foreign(side: sqlite3.Connection) -> int:
    """The size the side database covers for this ledger; 0 after emptying it if it
    was made for another ledger."""
    row = side.execute("SELECT size, chain_head FROM progress WHERE id = 1").fetchone()
    if row is None:
        return 0

    def chain_head(size: int) -> bytes:
        found = side.execute(
            "SELECT chain_hash FROM ledger.entries WHERE idx = ?", (size - 1,)
        ).fetchone()
        if found is None:
            raise LookupError(size)
        head: bytes = found[0]
        return head

    if _made_for(chain_head, *row):
        return int(row[0])
    with side:
        side.execute("DELETE FROM by_imprint")
        side.execute("DELETE FROM by_leaf_hash")
        side.execute("DELETE FROM progress")
    return 0


class LookupReader:
    """Candidate indices for a key: from the side database when there is one, plus the
    start of the tail it does not cover. Callers verify each candidate."""

    def __init__(self, ledger: Path):
        self._path = lookup_path(ledger)
        self._conn: sqlite3.Connection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def candidates(
        self,
        column: str,
        key: bytes,
        limit: int,
        chain_head: Callable[[int], bytes],
        start: int = 0,
    ) -> tuple[list[int], int]:
        """(indices >= start with `column` = key, in order, at most `limit`; the first
        index the side database does not cover). `column` is "imprint" or "leaf_hash";
        `chain_head(size)` is the ledger's (LookupError if it is smaller), to tell
        whether the side database was made for this ledger."""
        table = {"imprint": "by_imprint", "leaf_hash": "by_leaf_hash"}[column]
        conn = self._connect()
        if conn is None:
            return [], 0
        try:
            # Progress first: rows only ever grow, so rows read after it cover it.
            row = conn.execute("SELECT size, chain_head FROM progress WHERE id = 1").fetchone()
            found = conn.execute(
                f"SELECT idx FROM {table} WHERE {column} = ? AND idx >= ? ORDER BY idx LIMIT ?",
                (key, start, limit),
            ).fetchall()
        except sqlite3.Error:
            return [], 0
        if row is None or not _made_for(chain_head, *row):
            return [], 0
        return [idx for (idx,) in found], row[0]

    def _connect(self) -> sqlite3.Connection | None:
        if self._conn is None:
            if not self._path.exists():
                return None
            try:
                self._conn = sqlite3.connect(
                    f"file:{self._path}?mode=ro",
                    uri=True,
                    isolation_level=None,
                    check_same_thread=False,
                )
            except sqlite3.Error:
                return None
        return self._conn

"""SQLite ledger store (docs/spec/ledger.md L-18): WAL, synchronous=FULL, append-only by triggers.

One writer per file at a time: `claim_epoch` bumps the epoch in `seq`, and every
append's commit checks it, so a deposed writer's commit fails (L-08). Appends are group
commits: one `BEGIN IMMEDIATE ... COMMIT` for a whole batch. `SqliteReader` implements
`ledger.store.base.Reader`, `SqliteStore` implements `Store`. The schema and the way files
are opened live in `sqlite_schema.py`, the WAL checkpoint thread in `sqlite_wal.py`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.errors import LedgerWriteError
from ledger.hashing import CHAIN_GENESIS, chain_hash, leaf_hash
from ledger.merkle import NodeReader, root_from_reader
from ledger.proofs import consistency_proof, inclusion_proof
from ledger.store import sqlite_tree
from ledger.store.base import Entry, NewEntry, Reader, SequenceState, SignedCheckpoint, Store
from ledger.store.sqlite_lookup import LookupCopier, LookupReader
from ledger.store.sqlite_schema import (  # re-exported: names/ and evidence/ open files with it
    SCHEMA_VERSION,
    connect,
    create_schema,
    lock_exclusively,
)
from ledger.store.sqlite_wal import WAL_RESTART_PAGES, WalCheckpointer

__all__ = [
    "SCHEMA_VERSION",
    "WAL_RESTART_PAGES",
    "SqliteReader",
    "SqliteStore",
    "connect",
    "create_schema",
]


def _serial_key(serial: int) -> str:
    # Serials exceed SQLite's 64-bit integers; fixed-width hex keeps them sortable.
    return format(serial, "040x")


def _entry(row: tuple[Any, ...]) -> Entry:
    idx, token, gen_time, serial, imprint_alg, imprint, leaf, chain = row
    return Entry(idx, token, gen_time, int(serial, 16), imprint_alg, imprint, leaf, chain)


_COLUMNS = "idx, token, gen_time, serial, imprint_alg, imprint, leaf_hash, chain_hash"
# Read back as bytes whatever their stored type: a row tampered to hold TEXT is then a
# mismatch the audit reports, not a UTF-8 decoding error of the driver.
_SELECT = (
    "idx, CAST(token AS BLOB), gen_time, serial, imprint_alg, CAST(imprint AS BLOB), "
    "CAST(leaf_hash AS BLOB), CAST(chain_hash AS BLOB)"
)


class SqliteReader:
    """Read access to a ledger file; opens it read-only and never changes it."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._conn = sqlite3.connect(
            f"file:{self.path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
        self._lookup = LookupReader(self.path)

    def close(self) -> None:
        self._lookup.close()
        self._conn.close()

    def size(self) -> int:
        (size,) = self._conn.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM entries").fetchone()
        return int(size)

    def entry(self, index: int) -> Entry | None:
        row = self._conn.execute(
            f"SELECT {_SELECT} FROM entries WHERE idx = ?", (index,)
        ).fetchone()
        return _entry(row) if row else None

    def entries(self, start: int = 0, end: int | None = None) -> Iterator[Entry]:
        limit = -1 if end is None else max(0, end - start)
        cursor = self._conn.execute(
            f"SELECT {_SELECT} FROM entries WHERE idx >= ? ORDER BY idx LIMIT ?", (start, limit)
        )
        for row in cursor:
            yield _entry(row)

    def entry_by_serial(self, serial: int) -> Entry | None:
        row = self._conn.execute(
            f"SELECT {_SELECT} FROM entries WHERE serial = ?", (_serial_key(serial),)
        ).fetchone()
        return _entry(row) if row else None

    def entry_by_leaf_hash(self, leaf: bytes) -> Entry | None:
        found = self._lookup_by("leaf_hash", leaf, 1)
        return found[0] if found else None

    def entries_by_imprint(self, imprint: bytes, limit: int = 100, start: int = 0) -> list[Entry]:
        """At most `limit` entries with this imprint from index `start` on (pages)."""
        return self._lookup_by("imprint", imprint, limit, start)

    def _lookup_by(self, column: str, key: bytes, limit: int, start: int = 0) -> list[Entry]:
        """Entries >= start whose `column` is `key`, in index order: the side database's
        candidates, each checked against the ledger, then a scan of the tail it does
        not cover yet (sqlite_lookup.py)."""
        indices, covered = self._lookup.candidates(column, key, limit, self.chain_head, start)
        found: dict[int, Entry] = {}
        for index in indices:
            entry = self.entry(index)
            if entry is not None and getattr(entry, column) == key:
                found[index] = entry
        rows = self._conn.execute(
            f"SELECT {_SELECT} FROM entries WHERE idx >= ? AND {column} = ? ORDER BY idx LIMIT ?",
            (max(covered, start), key, limit),
        )
        for row in rows:
            found.setdefault(row[0], _entry(row))
        return [found[index] for index in sorted(found)[:limit]]

    def index_at_time(self, gen_time_ms: int) -> int:
        """The first index whose genTime is >= gen_time_ms (the size if none): genTime is
        non-decreasing in the index, so a time range is an index range. One step into the
        gen_time index: MIN(idx) would walk the entries from index 0 (O(n))."""
        row = self._conn.execute(
            "SELECT idx FROM entries WHERE gen_time >= ? ORDER BY gen_time, idx LIMIT 1",
            (gen_time_ms,),
        ).fetchone()
        return self.size() if row is None else int(row[0])

    # The tree

    def node_reader(self, size: int) -> NodeReader:
        return sqlite_tree.cached_reader(self._conn, size)

    def root(self, size: int) -> bytes:
        return root_from_reader(size, self.node_reader(size))

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return inclusion_proof(index, size, self.node_reader(size))

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        return consistency_proof(old_size, new_size, self.node_reader(new_size))

    def tile_hashes(self, level: int, index: int, width: int) -> bytes:
        """Contents of tlog tile (level, index) of the given width: 32-byte hashes."""
        stratum = level * sqlite_tree.STRATUM
        start = index << 8
        return b"".join(sqlite_tree.stratum_hashes(self._conn, stratum, start, start + width))

    def entry_bundle(self, index: int, width: int) -> list[bytes]:
        start = index << 8
        rows = self._conn.execute(
            "SELECT token FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx",
            (start, start + width),
        )
        return [row[0] for row in rows]

    def chain_head(self, size: int) -> bytes:
        """The B.8 chain value after `size` entries."""
        if size == 0:
            return CHAIN_GENESIS
        row = self._conn.execute(
            "SELECT chain_hash FROM entries WHERE idx = ?", (size - 1,)
        ).fetchone()
        if row is None:
            raise LookupError(f"the ledger has fewer than {size} entries")
        head: bytes = row[0]
        return head

    # Checkpoints

    def checkpoints(self) -> list[SignedCheckpoint]:
        rows = self._conn.execute(
            "SELECT size, root, chain_head, note, signed_at FROM checkpoints ORDER BY size"
        )
        return [SignedCheckpoint(*row) for row in rows]

    def checkpoint_sizes(self, after: int = -1, limit: int = -1) -> list[int]:
        """Archived checkpoint sizes above ``after``, ascending, at most ``limit``."""
        rows = self._conn.execute(
            "SELECT size FROM checkpoints WHERE size > ? ORDER BY size LIMIT ?", (after, limit)
        )
        return [row[0] for row in rows]

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        row = self._conn.execute(
            "SELECT size, root, chain_head, note, signed_at FROM checkpoints "
            "ORDER BY size DESC LIMIT 1"
        ).fetchone()
        return SignedCheckpoint(*row) if row else None

    def checkpoint_at(self, size: int) -> SignedCheckpoint | None:
        row = self._conn.execute(
            "SELECT size, root, chain_head, note, signed_at FROM checkpoints WHERE size = ?",
            (size,),
        ).fetchone()
        return SignedCheckpoint(*row) if row else None


class SqliteStore(SqliteReader):
    """The embedded ledger store: one SQLite file, durable on every commit.

    A writer holds an exclusive lock on `<ledger>.lock` for its lifetime, so a second
    server started on the same ledger by mistake fails at once instead of taking the
    sequence away from the running one. The epoch fence (L-08) still guards writers
    the lock cannot see (another host on a shared filesystem).
    """

    def __init__(self, path: Path | str, wal_restart_pages: int = WAL_RESTART_PAGES) -> None:
        self.path = Path(path)
        self._lock = lock_exclusively(self.path.with_name(self.path.name + ".lock"))
        try:
            self._conn = connect(self.path)
            create_schema(self._conn)
            with self._conn:  # a ledger written before the tree was stored: backfill it
                self._conn.execute("BEGIN IMMEDIATE")
                sqlite_tree.integrate(self._conn, self.size())
        except sqlite3.Error as exc:
            self._lock.close()
            raise LedgerWriteError(f"cannot open the ledger {self.path}: {exc}") from None
        # Appends get their own connection so the issuer can commit in a worker thread
        # while readers (the publisher, HTTP) see only committed entries on theirs.
        self._writer = connect(self.path)
        # The WAL is copied back into the database by a thread of its own; a commit
        # checkpoints only when the WAL must restart (WAL_RESTART_PAGES).
        self._writer.execute("PRAGMA cache_size = -65536")
        self._writer.execute(f"PRAGMA wal_autocheckpoint = {int(wal_restart_pages)}")
        self._checkpointer = WalCheckpointer(self.path)
        self._lookup = LookupReader(self.path)
        self._lookup_copier = LookupCopier(self.path)
        self._chain_head: bytes | None = None

    def close(self) -> None:
        self._lookup_copier.stop()
        self._checkpointer.stop()
        super().close()
        self._writer.close()
        self._lock.close()

    # Store

    def claim_epoch(self) -> SequenceState:
        conn = self._writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("UPDATE seq SET epoch = epoch + 1 WHERE id = 1")
            next_idx, last_gen, epoch = conn.execute(
                "SELECT next_idx, last_gen_time, epoch FROM seq WHERE id = 1"
            ).fetchone()
            stored = conn.execute(
                "SELECT idx, gen_time, chain_hash FROM entries ORDER BY idx DESC LIMIT 1"
            ).fetchone()
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        size, head = (stored[0] + 1, stored[2]) if stored else (0, CHAIN_GENESIS)
        if size != next_idx:
            raise LedgerWriteError(
                f"ledger is inconsistent: {size} entries but the sequence says {next_idx}"
            )
        last_gen = max(last_gen, stored[1] if stored else 0)
        self._chain_head = head
        return SequenceState(size, last_gen, head, epoch)

    def append(self, epoch: int, first_index: int, entries: list[NewEntry]) -> None:
        if self._chain_head is None:
            raise LedgerWriteError("append before claim_epoch")
        head = self._chain_head
        rows = []
        for offset, new in enumerate(entries):
            leaf = leaf_hash(new.token)
            head = chain_hash(head, leaf)
            rows.append(
                (
                    first_index + offset,
                    new.token,
                    new.gen_time_ms,
                    _serial_key(new.serial),
                    new.imprint_alg,
                    new.imprint,
                    leaf,
                    head,
                )
            )
        conn = self._writer
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(f"INSERT INTO entries ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)", rows)
                sqlite_tree.integrate(conn, first_index + len(entries))
                updated = conn.execute(
                    "UPDATE seq SET next_idx = ?, last_gen_time = ? WHERE id = 1 AND epoch = ?",
                    (first_index + len(entries), entries[-1].gen_time_ms, epoch),
                ).rowcount
                if updated != 1:
                    raise LedgerWriteError("another writer has taken over this ledger")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise LedgerWriteError(f"ledger commit failed: {exc}") from None
        self._chain_head = head

    def add_checkpoint(self, checkpoint: SignedCheckpoint) -> None:
        """Archive a signed checkpoint; the database refuses one that does not advance
        (the compare-and-swap of L-08/L-12: two signers can never both win)."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    "INSERT INTO checkpoints (size, root, chain_head, note, signed_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (
                        checkpoint.size,
                        checkpoint.root,
                        checkpoint.chain_head,
                        checkpoint.note,
                        checkpoint.signed_at,
                    ),
                )
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise LedgerWriteError(f"checkpoint {checkpoint.size} not archived: {exc}") from None


if TYPE_CHECKING:  # the type checker proves the classes implement the protocols

    def _implements(reader: SqliteReader, store: SqliteStore) -> tuple[Reader, Store]:
        return reader, store

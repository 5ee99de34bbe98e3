"""Read access to one log of a PostgreSQL ledger database (`ledger.store.postgres`).

`PostgresReader` implements `ledger.store.base.Reader` and answers as the SQLite store
does. One psycopg (synchronous) connection, autocommit off: every method is one explicit
transaction, ended before it returns, under a lock so that threads sharing the object take
turns; iterating entries reads pages, each in its own transaction. A connection the server
or the network dropped is replaced on the next call, and the read retried once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any, TypeVar

import psycopg

from ledger.errors import LedgerError
from ledger.hashing import CHAIN_GENESIS
from ledger.merkle import NodeReader, root_from_reader
from ledger.proofs import consistency_proof, inclusion_proof
from ledger.store import postgres_tree
from ledger.store.base import Entry, SignedCheckpoint
from ledger.store.postgres_schema import Connection, check_version, connect, describe

__all__ = ["CHECKPOINT_COLUMNS", "COLUMNS", "PostgresReader", "broken", "message"]

T = TypeVar("T")
COLUMNS = "idx, token, gen_time, serial, imprint_alg, imprint, leaf_hash, chain_hash"
CHECKPOINT_COLUMNS = "size, root, chain_head, note, signed_at"
_PAGE = 1000  # entries per transaction when iterating
_NODE_CACHE = 4096


def _entry(row: tuple[Any, ...]) -> Entry:
    idx, token, gen_time, serial, imprint_alg, imprint, leaf, chain = row
    return Entry(
        idx,
        bytes(token),
        gen_time,
        int(serial),
        imprint_alg,
        bytes(imprint),
        bytes(leaf),
        bytes(chain),
    )


def _checkpoint(row: tuple[Any, ...]) -> SignedCheckpoint:
    size, root, head, note, signed_at = row
    return SignedCheckpoint(size, bytes(root), bytes(head), note, signed_at)


def message(exc: psycopg.Error) -> str:
    primary = exc.diag.message_primary
    return primary or str(exc).strip() or type(exc).__name__


def broken(conn: Connection) -> bool:
    return conn.closed or conn.broken


class PostgresReader:
    """Read access to one log of a PostgreSQL ledger database; it never writes."""

    def __init__(self, url: str, log: str = "tokens") -> None:
        self.url = url
        self.log = log
        self._mutex = threading.RLock()
        self._closed = False
        self._conn: Connection | None = None
        self._conn = self._open()

    # Connections

    def _open(self) -> Connection:
        try:
            conn = connect(self.url)
        except psycopg.Error as exc:
            raise self._open_error(f"cannot open the {describe(self.url)}: {exc}") from None
        try:
            self._prepare(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_error(self, message: str) -> LedgerError:
        return LedgerError(message)

    def _prepare(self, conn: Connection) -> None:
        """Check a new connection before use (the store also migrates and locks)."""
        try:
            check_version(conn, self.url)
        except psycopg.Error as exc:
            raise self._open_error(f"cannot read the {describe(self.url)}: {exc}") from None

    def _connection(self) -> Connection:
        if self._closed:
            raise LedgerError(f"the ledger log {self.log!r} is closed")
        if self._conn is None or broken(self._conn):
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._conn = self._open()
        return self._conn

    def _read(self, query: Callable[[Connection], T]) -> T:
        """Run `query` in a read transaction; once more on a new connection if the old
        one was dropped (reads are idempotent)."""
        with self._mutex:
            for attempt in range(2):
                conn = self._connection()
                try:
                    with conn.transaction():
                        return query(conn)
                except psycopg.OperationalError:
                    if attempt or not broken(conn):
                        raise
            raise AssertionError("unreachable")

    def close(self) -> None:
        with self._mutex:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # Entries

    def _one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        return self._read(lambda conn: conn.execute(sql.encode(), params).fetchone())

    def _all(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return self._read(lambda conn: conn.execute(sql.encode(), params).fetchall())

    def size(self) -> int:
        return self._read(self._size)

    def _size(self, conn: Connection) -> int:
        row = conn.execute(
            "SELECT COALESCE(MAX(idx) + 1, 0) FROM ledger_entries WHERE log = %s", (self.log,)
        ).fetchone()
        return int(row[0]) if row else 0

    def entry(self, index: int) -> Entry | None:
        row = self._one(
            f"SELECT {COLUMNS} FROM ledger_entries WHERE log = %s AND idx = %s", (self.log, index)
        )
        return _entry(row) if row else None

    def entries(self, start: int = 0, end: int | None = None) -> Iterator[Entry]:
        """Entries start..end-1 in pages, each read in a transaction of its own, so that
        a caller who stops iterating leaves no transaction open."""
        position = start
        while end is None or position < end:
            stop = position + _PAGE if end is None else min(end, position + _PAGE)
            rows = self._all(
                f"SELECT {COLUMNS} FROM ledger_entries WHERE log = %s AND idx >= %s "
                "AND idx < %s ORDER BY idx",
                (self.log, position, stop),
            )
            yield from map(_entry, rows)
            if len(rows) < stop - position:
                return
            position = stop

    def entry_by_serial(self, serial: int) -> Entry | None:
        row = self._one(
            f"SELECT {COLUMNS} FROM ledger_entries WHERE log = %s AND serial = %s::numeric",
            (self.log, serial),
        )
        return _entry(row) if row else None

    def entry_by_leaf_hash(self, leaf: bytes) -> Entry | None:
        row = self._one(
            f"SELECT {COLUMNS} FROM ledger_entries WHERE log = %s AND leaf_hash = %s "
            "ORDER BY idx LIMIT 1",
            (self.log, leaf),
        )
        return _entry(row) if row else None

    def entries_by_imprint(self, imprint: bytes, limit: int = 100, start: int = 0) -> list[Entry]:
        """At most `limit` entries with this imprint from index `start` on (pages)."""
        rows = self._all(
            f"SELECT {COLUMNS} FROM ledger_entries WHERE log = %s AND imprint = %s "
            "AND idx >= %s ORDER BY idx LIMIT %s",
            (self.log, imprint, start, limit if limit >= 0 else None),
        )
        return [_entry(row) for row in rows]

    def index_at_time(self, gen_time_ms: int) -> int:
        """The first index whose genTime is >= gen_time_ms (the size if none)."""

        def query(conn: Connection) -> int:
            row = conn.execute(
                "SELECT idx FROM ledger_entries WHERE log = %s AND gen_time >= %s "
                "ORDER BY gen_time, idx LIMIT 1",
                (self.log, gen_time_ms),
            ).fetchone()
            return self._size(conn) if row is None else int(row[0])

        return self._read(query)

    def entry_bundle(self, index: int, width: int) -> list[bytes]:
        start = index << 8
        rows = self._all(
            "SELECT token FROM ledger_entries WHERE log = %s AND idx >= %s AND idx < %s "
            "ORDER BY idx",
            (self.log, start, start + width),
        )
        return [bytes(row[0]) for row in rows]

    # The tree and the hash chain

    def _reader_on(self, conn: Connection, size: int) -> NodeReader:
        """Node reads inside the caller's transaction (one proof, one transaction)."""

        def read(level: int, index: int) -> bytes:
            if (index + 1) << level > size:
                raise LookupError(f"node ({level}, {index}) lies outside a tree of size {size}")
            return postgres_tree.node(conn, self.log, level, index)

        return read

    def node_reader(self, size: int) -> NodeReader:
        """Perfect nodes never change once complete, so caching them is safe."""

        @lru_cache(maxsize=_NODE_CACHE)
        def read(level: int, index: int) -> bytes:
            return self._read(lambda conn: self._reader_on(conn, size)(level, index))

        return read

    def root(self, size: int) -> bytes:
        return self._read(lambda conn: root_from_reader(size, self._reader_on(conn, size)))

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return self._read(lambda conn: inclusion_proof(index, size, self._reader_on(conn, size)))

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        return self._read(
            lambda conn: consistency_proof(old_size, new_size, self._reader_on(conn, new_size))
        )

    def tile_hashes(self, level: int, index: int, width: int) -> bytes:
        """Contents of tlog tile (level, index) of the given width: 32-byte hashes."""
        stratum = level * postgres_tree.STRATUM
        start = index << 8
        hashes = self._read(
            lambda conn: postgres_tree.stratum_hashes(conn, self.log, stratum, start, start + width)
        )
        return b"".join(hashes)

    def chain_head(self, size: int) -> bytes:
        """The B.8 chain value after `size` entries; LookupError beyond the ledger."""
        if size == 0:
            return CHAIN_GENESIS
        row = self._one(
            "SELECT chain_hash FROM ledger_entries WHERE log = %s AND idx = %s",
            (self.log, size - 1),
        )
        if row is None:
            raise LookupError(f"the ledger has fewer than {size} entries")
        return bytes(row[0])

    # Archived signed checkpoints

    def checkpoints(self) -> list[SignedCheckpoint]:
        rows = self._all(
            f"SELECT {CHECKPOINT_COLUMNS} FROM ledger_checkpoints WHERE log = %s ORDER BY size",
            (self.log,),
        )
        return [_checkpoint(row) for row in rows]

    def checkpoint_sizes(self, after: int = -1, limit: int = -1) -> list[int]:
        """Archived checkpoint sizes above ``after``, ascending, at most ``limit``."""
        rows = self._all(
            "SELECT size FROM ledger_checkpoints WHERE log = %s AND size > %s "
            "ORDER BY size LIMIT %s",
            (self.log, after, limit if limit >= 0 else None),
        )
        return [int(row[0]) for row in rows]

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        row = self._one(
            f"SELECT {CHECKPOINT_COLUMNS} FROM ledger_checkpoints WHERE log = %s "
            "ORDER BY size DESC LIMIT 1",
            (self.log,),
        )
        return _checkpoint(row) if row else None

    def checkpoint_at(self, size: int) -> SignedCheckpoint | None:
        row = self._one(
            f"SELECT {CHECKPOINT_COLUMNS} FROM ledger_checkpoints WHERE log = %s AND size = %s",
            (self.log, size),
        )
        return _checkpoint(row) if row else None

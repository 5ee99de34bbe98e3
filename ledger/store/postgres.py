"""PostgreSQL ledger store (docs/spec/ledger.md, "PostgreSQL, the shared store"; issue 16).

Several logs share one database, each a plain text key (`log`). `PostgresReader`
implements `ledger.store.base.Reader`, `PostgresStore` implements `Store`, returning what
the SQLite store returns for the same entries. One psycopg (synchronous) connection per
object, autocommit off: every method is one explicit transaction, ended before it
returns, under a lock so that threads sharing an object take turns.

Fencing (L-08): every write transaction begins with `SELECT ... FOR UPDATE` on the log's
row in `ledger_logs`; `append` commits only if its epoch is still the row's epoch and its
first index the row's next index, so a deposed writer's commit fails. A store also holds
a session advisory lock on its log (unless `exclusive=False`), so a second writer of the
same log is refused at open, as SQLite's `.lock` file does; the lock dies with the
session, the epoch fence does not. Commits are as durable as the server's
`synchronous_commit` (on by default); a writer refuses a server with it or fsync off.

A connection the server or the network dropped is replaced on the next call: reads are
retried once; a write is retried once only if it failed before its COMMIT was sent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg

from ledger.errors import LedgerError, LedgerWriteError
from ledger.hashing import CHAIN_GENESIS, chain_hash, leaf_hash
from ledger.merkle import NodeReader, root_from_reader
from ledger.proofs import consistency_proof, inclusion_proof
from ledger.store import postgres_tree
from ledger.store.base import Entry, NewEntry, Reader, SequenceState, SignedCheckpoint, Store
from ledger.store.postgres_schema import (
    SCHEMA_VERSION,
    Connection,
    SchemaVersionError,
    check_version,
    connect,
    describe,
    migrate,
    migrate_connection,
)

__all__ = [
    "SCHEMA_VERSION",
    "PostgresReader",
    "PostgresStore",
    "SchemaVersionError",
    "migrate",
]

T = TypeVar("T")
_COLUMNS = "idx, token, gen_time, serial, imprint_alg, imprint, leaf_hash, chain_hash"
_CHECKPOINT_COLUMNS = "size, root, chain_head, note, signed_at"
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


def _message(exc: psycopg.Error) -> str:
    primary = exc.diag.message_primary
    return primary or str(exc).strip() or type(exc).__name__


def _broken(conn: Connection) -> bool:
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
        if self._conn is None or _broken(self._conn):
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
                    if attempt or not _broken(conn):
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
            f"SELECT {_COLUMNS} FROM ledger_entries WHERE log = %s AND idx = %s", (self.log, index)
        )
        return _entry(row) if row else None

    def entries(self, start: int = 0, end: int | None = None) -> Iterator[Entry]:
        """Entries start..end-1 in pages, each read in a transaction of its own, so that
        a caller who stops iterating leaves no transaction open."""
        position = start
        while end is None or position < end:
            stop = position + _PAGE if end is None else min(end, position + _PAGE)
            rows = self._all(
                f"SELECT {_COLUMNS} FROM ledger_entries WHERE log = %s AND idx >= %s "
                "AND idx < %s ORDER BY idx",
                (self.log, position, stop),
            )
            yield from map(_entry, rows)
            if len(rows) < stop - position:
                return
            position = stop

    def entry_by_serial(self, serial: int) -> Entry | None:
        row = self._one(
            f"SELECT {_COLUMNS} FROM ledger_entries WHERE log = %s AND serial = %s::numeric",
            (self.log, serial),
        )
        return _entry(row) if row else None

    def entry_by_leaf_hash(self, leaf: bytes) -> Entry | None:
        row = self._one(
            f"SELECT {_COLUMNS} FROM ledger_entries WHERE log = %s AND leaf_hash = %s "
            "ORDER BY idx LIMIT 1",
            (self.log, leaf),
        )
        return _entry(row) if row else None

    def entries_by_imprint(self, imprint: bytes, limit: int = 100, start: int = 0) -> list[Entry]:
        """At most `limit` entries with this imprint from index `start` on (pages)."""
        rows = self._all(
            f"SELECT {_COLUMNS} FROM ledger_entries WHERE log = %s AND imprint = %s "
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
            f"SELECT {_CHECKPOINT_COLUMNS} FROM ledger_checkpoints WHERE log = %s ORDER BY size",
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
            f"SELECT {_CHECKPOINT_COLUMNS} FROM ledger_checkpoints WHERE log = %s "
            "ORDER BY size DESC LIMIT 1",
            (self.log,),
        )
        return _checkpoint(row) if row else None

    def checkpoint_at(self, size: int) -> SignedCheckpoint | None:
        row = self._one(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM ledger_checkpoints WHERE log = %s AND size = %s",
            (self.log, size),
        )
        return _checkpoint(row) if row else None


_LOCK_LOG = "SELECT next_idx, last_gen_time, epoch FROM ledger_logs WHERE log = %s FOR UPDATE"
_INSERT = (
    f"INSERT INTO ledger_entries (log, {_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


class PostgresStore(PostgresReader):
    """A log's one writer. Opening it applies the migrations the database lacks and
    creates the log's row; `exclusive=False` skips the advisory lock (tests, or a
    forced take-over of a hung writer: the epoch fence still deposes it)."""

    def __init__(self, url: str, log: str = "tokens", *, exclusive: bool = True) -> None:
        self._exclusive = exclusive
        self._claimed = False
        super().__init__(url, log)

    def _open_error(self, message: str) -> LedgerError:
        return LedgerWriteError(message)

    def _prepare(self, conn: Connection) -> None:
        try:
            migrate_connection(conn, self.url)
            with conn.transaction():
                fsync, synchronous = conn.execute(
                    "SELECT current_setting('fsync'), current_setting('synchronous_commit')"
                ).fetchone() or ("", "")
                if fsync != "on" or synchronous == "off":
                    raise LedgerWriteError(
                        f"the {describe(self.url)} does not make commits durable (fsync="
                        f"{fsync}, synchronous_commit={synchronous}): refusing to write (L-06)"
                    )
                conn.execute(
                    "INSERT INTO ledger_logs (log) VALUES (%s) ON CONFLICT (log) DO NOTHING",
                    (self.log,),
                )
                if self._exclusive:
                    row = conn.execute(
                        "SELECT pg_try_advisory_lock("
                        "hashtextextended('ledger-writer:' || current_schema() || ':' || %s, 0))",
                        (self.log,),
                    ).fetchone()
                    if not row or not row[0]:
                        raise LedgerWriteError(
                            f"the ledger log {self.log!r} in the {describe(self.url)} is in "
                            "use by another writer"
                        )
        except psycopg.Error as exc:
            raise LedgerWriteError(
                f"cannot open the ledger log {self.log!r} in the {describe(self.url)}: "
                f"{_message(exc)}"
            ) from None

    def _write(self, work: Callable[[Connection], T], what: str) -> T:
        """Run `work` in a write transaction and commit it. A connection found dropped
        before COMMIT was sent is replaced and `work` runs once more: nothing of it was
        committed. A failure during COMMIT leaves the outcome unknown: LedgerWriteError."""
        with self._mutex:
            for attempt in range(2):
                conn = self._connection()
                committing = False
                try:
                    with conn.transaction():
                        result = work(conn)
                        committing = True
                    return result
                except psycopg.OperationalError as exc:
                    if committing or attempt or not _broken(conn):
                        raise LedgerWriteError(f"{what}: {_message(exc)}") from None
                except psycopg.Error as exc:
                    raise LedgerWriteError(f"{what}: {_message(exc)}") from None
            raise AssertionError("unreachable")

    # Store

    def claim_epoch(self) -> SequenceState:
        def claim(conn: Connection) -> SequenceState:
            row = conn.execute(
                "UPDATE ledger_logs SET epoch = epoch + 1 WHERE log = %s "
                "RETURNING next_idx, last_gen_time, epoch",
                (self.log,),
            ).fetchone()
            if row is None:
                raise LedgerWriteError(f"the ledger log {self.log!r} does not exist")
            next_idx, last_gen, epoch = row
            stored = conn.execute(
                "SELECT idx, gen_time, chain_hash FROM ledger_entries WHERE log = %s "
                "ORDER BY idx DESC LIMIT 1",
                (self.log,),
            ).fetchone()
            size, head = (stored[0] + 1, bytes(stored[2])) if stored else (0, CHAIN_GENESIS)
            if size != next_idx:
                raise LedgerWriteError(
                    f"ledger is inconsistent: {size} entries but the sequence says {next_idx}"
                )
            return SequenceState(size, max(last_gen, stored[1] if stored else 0), head, epoch)

        state = self._write(claim, "cannot claim the ledger")
        self._claimed = True
        return state

    def append(self, epoch: int, first_index: int, entries: list[NewEntry]) -> None:
        if not self._claimed:
            raise LedgerWriteError("append before claim_epoch")
        if not entries:
            return
        leaves = [leaf_hash(new.token) for new in entries]
        end = first_index + len(entries)

        def commit(conn: Connection) -> None:
            state = conn.execute(_LOCK_LOG, (self.log,)).fetchone()
            if state is None:
                raise LedgerWriteError(f"the ledger log {self.log!r} does not exist")
            next_idx, _, current = state
            if current != epoch:
                raise LedgerWriteError("another writer has taken over this ledger")
            if first_index != next_idx:
                raise LedgerWriteError(
                    f"ledger commit failed: the next index is {next_idx}, not {first_index}"
                )
            # Read after the lock: a statement of its own sees every committed append.
            previous = conn.execute(
                "SELECT chain_hash FROM ledger_entries WHERE log = %s AND idx = %s",
                (self.log, first_index - 1),
            ).fetchone()
            head = bytes(previous[0]) if previous else CHAIN_GENESIS
            rows = []
            for offset, (new, leaf) in enumerate(zip(entries, leaves, strict=True)):
                head = chain_hash(head, leaf)
                rows.append(
                    (
                        self.log,
                        first_index + offset,
                        new.token,
                        new.gen_time_ms,
                        new.serial,
                        new.imprint_alg,
                        new.imprint,
                        leaf,
                        head,
                    )
                )
            with conn.cursor() as cursor:
                cursor.executemany(_INSERT, rows)
            postgres_tree.integrate(conn, self.log, first_index, end)
            conn.execute(
                "UPDATE ledger_logs SET next_idx = %s, last_gen_time = %s WHERE log = %s",
                (end, entries[-1].gen_time_ms, self.log),
            )

        self._write(commit, "ledger commit failed")

    def add_checkpoint(self, checkpoint: SignedCheckpoint) -> None:
        """Archive a signed checkpoint; the database refuses one that does not advance
        (the compare-and-swap of L-08/L-12: two signers can never both win)."""

        def archive(conn: Connection) -> None:
            conn.execute(
                f"INSERT INTO ledger_checkpoints (log, {_CHECKPOINT_COLUMNS}) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (
                    self.log,
                    checkpoint.size,
                    checkpoint.root,
                    checkpoint.chain_head,
                    checkpoint.note,
                    checkpoint.signed_at,
                ),
            )

        self._write(archive, f"checkpoint {checkpoint.size} not archived")


if TYPE_CHECKING:  # the type checker proves the classes implement the protocols

    def _implements(reader: PostgresReader, store: PostgresStore) -> tuple[Reader, Store]:
        return reader, store

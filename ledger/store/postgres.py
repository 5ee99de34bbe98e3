"""PostgreSQL ledger store (docs/spec/ledger.md, "PostgreSQL, the shared store"; issue 16).

Several logs share one database, each a plain text key (`log`). `PostgresReader`
(`postgres_reader.py`) implements `ledger.store.base.Reader`, `PostgresStore` implements
`Store`, returning what the SQLite store returns for the same entries. One psycopg
(synchronous) connection per object, autocommit off: every method is one explicit
transaction, ended before it returns, under a lock so that threads sharing an object
take turns. The schema and `migrate` are in `postgres_schema.py`, the tree in
`postgres_tree.py`.

Fencing (L-08): `claim_epoch` sets the log's epoch in its row of `ledger_logs` to the
next value of the `ledger_epochs` sequence (unique across logs: serials never collide
between nodes); `append` begins with `SELECT ... FOR UPDATE` on that row and commits
only if its epoch is still the row's epoch and its first index the row's next index, so
a deposed writer's commit fails. A store also holds the log's lease
(`postgres_lease.py`), so a second writer of the same log is refused at open, as
SQLite's `.lock` file does, until the lease expires or its holder's session ends.
Commits are as durable as the server's `synchronous_commit` (on by default); a writer
refuses a server with it or fsync off.

A connection the server or the network dropped is replaced on the next call: reads are
retried once; a write is retried once only if it failed before its COMMIT was sent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import psycopg

from ledger.errors import LedgerError, LedgerWriteError
from ledger.hashing import CHAIN_GENESIS, chain_hash, leaf_hash
from ledger.store import postgres_lease, postgres_tree
from ledger.store.base import NewEntry, Reader, SequenceState, SignedCheckpoint, Store
from ledger.store.postgres_reader import (
    CHECKPOINT_COLUMNS,
    COLUMNS,
    PostgresReader,
    broken,
    message,
)
from ledger.store.postgres_schema import (
    SCHEMA_VERSION,
    Connection,
    SchemaVersionError,
    check_version,
    describe,
    end_idle_transactions,
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

_LOCK_LOG = "SELECT next_idx, last_gen_time, epoch FROM ledger_logs WHERE log = %s FOR UPDATE"
_INSERT = f"INSERT INTO ledger_entries (log, {COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"


class PostgresStore(PostgresReader):
    """A log's one writer. Opening it applies the migrations the database lacks (or, with
    `migrate=False`, refuses a schema that is not exactly this code's), creates the log's
    row and takes its lease (postgres_lease.py) for `lease_seconds`, renewed while the
    store is open; `exclusive=False` takes the lease even from a live writer (a forced
    take-over of a hung one: the epoch fence deposes it)."""

    def __init__(
        self,
        url: str,
        log: str = "tokens",
        *,
        exclusive: bool = True,
        migrate: bool = True,
        lease_seconds: float = 10.0,
    ) -> None:
        self._exclusive = exclusive
        self._migrate = migrate
        self._claimed = False
        self._epoch: int | None = None
        self._holder = postgres_lease.new_holder()
        self._lease_seconds = lease_seconds
        self._keeper: postgres_lease.Keeper | None = None
        # Set once another writer has taken the log over; `on_deposed` (from any thread)
        # is told then, e.g. for the server to stop and let its supervisor restart it.
        self.deposed = threading.Event()
        self.on_deposed: Callable[[], None] | None = None
        super().__init__(url, log)
        self._keeper = postgres_lease.Keeper(self._renew, lease_seconds / 3, log)

    def _open_error(self, message: str) -> LedgerError:
        return LedgerWriteError(message)

    def _prepare(self, conn: Connection) -> None:
        try:
            end_idle_transactions(conn, self._lease_seconds)
            if self._migrate:
                migrate_connection(conn, self.url)
            else:
                check_version(conn, self.url)
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
                postgres_lease.acquire(
                    conn, self.log, self._holder, self._lease_seconds, not self._exclusive
                )
        except psycopg.Error as exc:
            raise LedgerWriteError(
                f"cannot open the ledger log {self.log!r} in the {describe(self.url)}: "
                f"{message(exc)}"
            ) from None

    def _renew(self) -> bool:
        """The keeper's tick: extend the lease; False once another writer took the log."""
        epoch = self._epoch
        if epoch is None:
            return True  # not claimed yet: the lease taken at open lapses unless claimed
        renewed = self._write(
            lambda conn: postgres_lease.renew(
                conn, self.log, self._holder, self._lease_seconds, epoch
            ),
            "cannot renew the ledger lease",
        )
        if not renewed:
            self._taken_over()
        return renewed

    def _taken_over(self) -> LedgerWriteError:
        """Note that another writer took this log (once: `deposed`, `on_deposed`); the
        error for the caller to raise."""
        if not self.deposed.is_set():
            self.deposed.set()
            if self.on_deposed is not None:
                self.on_deposed()
        return LedgerWriteError("another writer has taken over this ledger")

    def close(self) -> None:
        if self._keeper is not None:
            self._keeper.stop()
        with self._mutex:
            if not self._closed and self._conn is not None and not broken(self._conn):
                try:
                    with self._conn.transaction():
                        postgres_lease.release(self._conn, self.log, self._holder)
                except psycopg.Error:
                    pass  # the lease expires by itself
        super().close()

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
                    if committing or attempt or not broken(conn):
                        raise LedgerWriteError(f"{what}: {message(exc)}") from None
                except psycopg.Error as exc:
                    raise LedgerWriteError(f"{what}: {message(exc)}") from None
            raise AssertionError("unreachable")

    # Store

    def claim_epoch(self) -> SequenceState:
        def claim(conn: Connection) -> SequenceState:
            postgres_lease.acquire(
                conn, self.log, self._holder, self._lease_seconds, not self._exclusive
            )
            row = conn.execute(
                "UPDATE ledger_logs SET epoch = nextval('ledger_epochs') WHERE log = %s "
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
        self._epoch = state.epoch
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
                raise self._taken_over()
            if first_index != next_idx:
                raise LedgerWriteError(
                    f"ledger commit failed: the next index is {next_idx}, not {first_index}"
                )
            postgres_lease.renew(conn, self.log, self._holder, self._lease_seconds, epoch)
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
        (the compare-and-swap of L-08/L-12: two signers can never both win), and a writer
        that another has deposed (the epoch fence, as for appends) archives none."""

        def archive(conn: Connection) -> None:
            if self._epoch is not None:  # a deposed writer signs no more checkpoints
                state = conn.execute(_LOCK_LOG, (self.log,)).fetchone()
                if state is None or state[2] != self._epoch:
                    raise self._taken_over()
            conn.execute(
                f"INSERT INTO ledger_checkpoints (log, {CHECKPOINT_COLUMNS}) "
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

"""The SQLite engine of `Database` (WAL, synchronous=FULL: durable on every commit):
private file mode, one connection per thread, BEGIN IMMEDIATE transactions.

Several processes may open the same file (the server and `tsa accounts`): writes take
SQLite's write lock with BEGIN IMMEDIATE and wait up to `busy_timeout` for it. Within a
process every thread gets a connection of its own (SQLite's one connection per thread:
a transaction never interleaves with another thread's statements), so the server does
its writes in worker threads, off the event loop, while the loop reads.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ledger.store.sqlite import connect as durable_connect

#: makes the tables and rules where missing, on a fresh connection to the file
CreateSchema = Callable[[sqlite3.Connection], None]


def connect(path: Path | str) -> sqlite3.Connection:
    conn = durable_connect(path)
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _create_private(path: Path) -> None:
    """Create the database file 0600: it holds key hashes and customers' metadata.
    SQLite gives its -wal and -shm files the database file's permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


class SqliteDatabase:
    """One SQLite file: per-thread connections and BEGIN IMMEDIATE write transactions.
    Opening it makes the schema where missing (`create_schema`)."""

    def __init__(self, path: Path | str, create_schema: CreateSchema | None = None) -> None:
        self.path = Path(path)
        _create_private(self.path)
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._opened_lock = threading.Lock()
        if create_schema is not None:
            create_schema(self.connection())

    @property
    def description(self) -> str:
        return str(self.path)

    def connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            with self._opened_lock:
                self._opened.append(conn)
            self._local.conn = conn
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()

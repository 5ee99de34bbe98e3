"""The SQLite file of accounts and evidence (WAL, synchronous=FULL: durable on every
commit): private file mode, one connection per thread, BEGIN IMMEDIATE transactions.

Every store over that file (accounts/store.py, the stores of evidence/store/) is a
`SqliteFile`. Several processes may open the same file (the server and `tsa accounts`):
writes take SQLite's write lock with BEGIN IMMEDIATE and wait up to `busy_timeout` for
it. Within a process every thread gets a connection of its own (SQLite's one connection
per thread: a transaction never interleaves with another thread's statements), so the
server does its writes in worker threads, off the event loop, while the loop reads.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from ledger.store.sqlite import connect as durable_connect
from tsa_server.accounts.times import utc_now

Now = Callable[[], datetime]


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


class SqliteFile:
    """One SQLite file: per-thread connections, row helpers and write transactions.
    A subclass makes its part of the schema in `_create_schema`."""

    def __init__(self, path: Path | str, *, now: Now = utc_now) -> None:
        self.path = Path(path)
        self.now = now
        _create_private(self.path)
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._opened_lock = threading.Lock()
        self._create_schema(self._conn)

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        """Make this store's tables and rules where missing (nothing here)."""

    @property
    def _conn(self) -> sqlite3.Connection:
        """This thread's connection (opened on its first use)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            with self._opened_lock:
                self._opened.append(conn)
            self._local.conn = conn
        return conn

    def close(self) -> None:
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor = self._conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def _row(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One BEGIN IMMEDIATE ... COMMIT: all of it or nothing."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

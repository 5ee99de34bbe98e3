"""The base class of the stores over a `Database` (accounts, evidence): row helpers and
write transactions, whichever engine holds the tables."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any

from tsa_server.accounts.times import utc_now
from tsa_server.database import Database, SqlConnection
from tsa_server.database.sqlite import SqliteDatabase

Now = Callable[[], datetime]


class Tables:
    """Stores over one database. Given a path, it opens (and owns) that SQLite file and
    makes its schema with `_create_schema`; given a `Database`, it uses it (its schema is
    the database's: PostgreSQL's migrations, or the SQLite file's opener's) and closes
    it only if `owns`."""

    def __init__(
        self, where: Path | str | Database, *, now: Now = utc_now, owns: bool = False
    ) -> None:
        self.now = now
        if isinstance(where, (str, Path)):
            self.db: Database = SqliteDatabase(where, self._create_schema)
            self._owned = True
        else:
            self.db = where
            self._owned = owns

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        """Make this store's tables and rules where missing in a SQLite file."""

    @property
    def _conn(self) -> SqlConnection:
        """This thread's connection."""
        return self.db.connection()

    def _write(self) -> AbstractContextManager[SqlConnection]:
        """One write transaction: all of it or nothing."""
        return self.db.write()

    def close(self) -> None:
        """Close the database if this store opened it."""
        if self._owned:
            self.db.close()

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor = self._conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def _row(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

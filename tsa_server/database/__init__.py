"""The SQL database the accounts, evidence and names stores keep their tables in: one
SQLite file (the embedded default) or a PostgreSQL database ([database] url, issue 16).

The stores are written once, in the SQL both engines speak, against two small
interfaces: a `Database` gives each thread its `SqlConnection` and runs write
transactions; `tables.Tables` is the stores' base class (row helpers, `_write`).
`sqlite.SqliteDatabase` and `postgres.PostgresDatabase` are the two engines; the wiring
module picks one. What differs between them lives only there:

- a write transaction holds the database's only write lock (SQLite's BEGIN IMMEDIATE;
  on PostgreSQL a transaction-scoped advisory lock per database and schema), so a
  store's check-then-write (a credit balance, an idempotency key) is atomic across
  every process and node writing the same tables;
- a broken rule (a constraint or a trigger of the schema) raises
  `sqlite3.IntegrityError` from both engines: the stores' one exception for it;
- placeholders are `?`; PostgreSQL's engine rewrites them.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol


class SqlCursor(Protocol):
    """What the stores read from an executed statement."""

    @property
    def rowcount(self) -> int: ...
    @property
    def description(self) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class SqlConnection(Protocol):
    """One thread's connection: `?` placeholders, rows as tuples."""

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> SqlCursor: ...
    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any: ...


class Database(Protocol):
    """Where a set of stores keeps its tables."""

    @property
    def description(self) -> str:
        """What it is, for messages (never a password)."""
        ...

    def connection(self) -> SqlConnection:
        """This thread's connection (opened on first use): reads outside a write
        transaction see every committed write."""
        ...

    def write(self) -> AbstractContextManager[SqlConnection]:
        """One write transaction, holding the database's write lock: all of it or
        nothing."""
        ...

    def close(self) -> None:
        """Close every thread's connection."""
        ...


def database_errors() -> tuple[type[Exception], ...]:
    """What a call into either engine raises when the database fails (busy, gone, disk):
    sqlite3's and OS errors, and psycopg's once it is loaded ([database] url only)."""
    psycopg = sys.modules.get("psycopg")
    return (sqlite3.Error, OSError, *((psycopg.Error,) if psycopg else ()))


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be used right now (a locked SQLite file, a
    PostgreSQL server gone or failing over), not that a request was wrong: worth a retry."""
    psycopg = sys.modules.get("psycopg")
    kinds = (sqlite3.OperationalError, *((psycopg.OperationalError,) if psycopg else ()))
    return isinstance(exc, kinds)

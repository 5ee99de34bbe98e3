"""The PostgreSQL engine of `Database` ([database] url; issue 16): the stores' tables in
a database every node shares, versioned by `ledger.store.postgres_schema.Schema`
migrations (`tsa init`, `tsa db upgrade`; the server refuses a schema it does not know).

Each thread gets its own psycopg connection in autocommit mode: a read outside a write
transaction is one statement that sees every committed write, as on SQLite. `write()`
opens a transaction and first takes a transaction-scoped advisory lock named after the
schema set and the PostgreSQL schema: writers take turns across every process and node,
as SQLite's BEGIN IMMEDIATE makes them take turns on one machine, so a store's
check-then-write (the credit balance a deposit spends, an Idempotency-Key's claim) is
atomic cluster-wide. Writes are short; the lock is released at COMMIT or ROLLBACK.

A connection the server or the network dropped is replaced at the next use (after a
failover, `target_session_attrs=read-write` in the URL finds the new primary). A broken
rule raises `sqlite3.IntegrityError` (tsa_server/database/__init__.py); the stores' SQL
uses `?` placeholders, rewritten here to psycopg's `%s`. A session idle inside a
transaction for `IDLE_TRANSACTION_SECONDS` (its node paused or cut off mid-write) is ended
by the server, which releases the lock for the other nodes.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from ledger.store.postgres_schema import (
    Connection,
    Schema,
    SchemaVersionError,
    check_version,
    describe,
    end_idle_transactions,
    migrate_connection,
)

# A quoted string, or a `?` placeholder, or a `%` (psycopg's placeholder character).
_TOKEN = re.compile(r"'(?:[^']|'')*'|\?|%|\binstr\(")
_REPLACE = {"?": "%s", "%": "%%", "instr(": "strpos("}  # strpos: instr's PostgreSQL name

# A node paused inside a write would hold the cluster's write lock until it resumed: the
# server ends such a session after this long (writes take milliseconds).
IDLE_TRANSACTION_SECONDS = 10.0


def to_psycopg(sql: str) -> str:
    """The stores' SQL for psycopg: `?` -> `%s`, a literal `%` doubled, instr -> strpos
    (outside quoted strings, where a `?` or `%` is text)."""
    return _TOKEN.sub(
        lambda m: m.group(0) if m.group(0).startswith("'") else _REPLACE[m.group(0)], sql
    )


class PostgresConnection:
    """A psycopg connection speaking the stores' dialect (`SqlConnection`)."""

    def __init__(self, conn: Connection) -> None:
        self.raw = conn

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> psycopg.Cursor[Any]:
        try:
            return self.raw.execute(to_psycopg(sql), tuple(parameters))
        except psycopg.errors.IntegrityError as exc:
            raise sqlite3.IntegrityError(exc.diag.message_primary or str(exc)) from None

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> None:
        try:
            with self.raw.cursor() as cursor:
                cursor.executemany(to_psycopg(sql), [tuple(p) for p in parameters])
        except psycopg.errors.IntegrityError as exc:
            raise sqlite3.IntegrityError(exc.diag.message_primary or str(exc)) from None


class PostgresDatabase:
    """The tables of `schema` in the database at `url`. Opening it applies the
    migrations the database lacks (`migrate=True`: `tsa init` and the CLI) or refuses a
    schema that is not exactly this code's (`migrate=False`: the server)."""

    def __init__(self, url: str, schema: Schema, *, migrate: bool = True) -> None:
        self.url = url
        self.schema = schema
        self._lock_key = f"{schema.name}-write"
        self._local = threading.local()
        self._opened: list[Connection] = []
        self._opened_lock = threading.Lock()
        conn = self.connection().raw
        try:
            with conn.transaction():
                fsync, synchronous = conn.execute(
                    "SELECT current_setting('fsync'), current_setting('synchronous_commit')"
                ).fetchone() or ("", "")
            if fsync != "on" or synchronous == "off":
                raise SchemaVersionError(
                    f"the {describe(url)} does not make commits durable (fsync={fsync}, "
                    f"synchronous_commit={synchronous}): refusing to store {schema.name} there"
                )
            if migrate:
                migrate_connection(conn, url, schema)
            else:
                check_version(conn, url, schema)
        except BaseException:
            self.close()
            raise

    @property
    def description(self) -> str:
        return describe(self.url)

    def connection(self) -> PostgresConnection:
        conn: PostgresConnection | None = getattr(self._local, "conn", None)
        if conn is None or conn.raw.closed or conn.raw.broken:
            raw: Connection = psycopg.connect(self.url, autocommit=True)
            end_idle_transactions(raw, IDLE_TRANSACTION_SECONDS)
            with self._opened_lock:
                self._opened.append(raw)
            conn = PostgresConnection(raw)
            self._local.conn = conn
        return conn

    @contextmanager
    def write(self) -> Iterator[PostgresConnection]:
        conn = self.connection()
        with conn.raw.transaction():
            conn.raw.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s || ':' || current_schema(), 0))",
                (self._lock_key,),
            )
            yield conn

    def close(self) -> None:
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()

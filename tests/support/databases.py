"""The server's SQL tables on either engine, for tests that run on both (issue 16): a
SQLite file, or a schema of its own in the session's PostgreSQL server.

`open()` gives a new evidence store over the same tables (a second process, the CLI
beside the server, another node), `names()` a names registry store; `raw()` a
connection that bypasses the stores, as an operator's sqlite3 or psql shell would
(autocommit; `?` placeholders on both; a broken rule raises sqlite3.IntegrityError on
both), to show that the schema's own rules hold.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from tsa_server.accounts.times import utc_now
from tsa_server.database.postgres import PostgresConnection, PostgresDatabase
from tsa_server.database.tables import Now
from tsa_server.evidence.schema_postgres import EVIDENCE
from tsa_server.evidence.store import EvidenceStore
from tsa_server.names.schema_postgres import NAMES
from tsa_server.names.sql_store import SqlNameStore

ENGINES = ("sqlite", "postgresql")


class RawConnection:
    """An operator's shell on the database."""

    def __init__(self, engine: str, where: str) -> None:
        if engine == "sqlite":
            self._sqlite: sqlite3.Connection | None = sqlite3.connect(where, isolation_level=None)
            self._pg: PostgresConnection | None = None
        else:
            self._sqlite = None
            self._pg = PostgresConnection(psycopg.connect(where, autocommit=True))

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        if self._sqlite is not None:
            return self._sqlite.execute(sql, params)
        assert self._pg is not None
        return self._pg.execute(sql, params)

    def drop_trigger(self, name: str, table: str) -> None:
        self.execute(f"DROP TRIGGER {name}" + ("" if self._sqlite else f" ON {table}"))

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
        elif self._pg is not None:
            self._pg.raw.close()


@dataclass(frozen=True)
class EngineDatabase:
    """Where a test's tables are: `engine` and a SQLite path or PostgreSQL URL."""

    engine: str
    where: str

    def open(self, now: Now = utc_now) -> EvidenceStore:
        if self.engine == "sqlite":
            return EvidenceStore(Path(self.where), now=now)
        return EvidenceStore(PostgresDatabase(self.where, EVIDENCE), now=now, owns=True)

    def names(self) -> SqlNameStore:
        if self.engine == "sqlite":
            return SqlNameStore(self._names_file)
        return SqlNameStore(PostgresDatabase(self.where, NAMES), owns=True)

    def raw(self, *, names: bool = False) -> RawConnection:
        """A shell on the evidence tables (or the names tables: another SQLite file)."""
        where = str(self._names_file) if names and self.engine == "sqlite" else self.where
        return RawConnection(self.engine, where)

    @property
    def _names_file(self) -> Path:
        return Path(self.where).with_name("names.sqlite")

"""The administrators' policy overlay, in the [names] database (SQLite file or the
[database] PostgreSQL database: names/schema_postgres.py).

Tables, next to the registry's (sql_store.py), in the same database:

- ``policy_words``    (list, word, op): words added to or removed from a conf list
- ``policy_weights``  (metric, value): dispute weights overriding conf/names.toml
- ``policy_changes``  one row per change: version, canonical record, its SHA-256, the
  RFC 3161 token over it with its genTime, the operations-log index. Append-only:
  triggers refuse UPDATE and DELETE, and a change must carry its token.

`commit` writes the new overlay and the change row in one write transaction: durable
together or not at all. The version is
the number of changes, so a commit for another version than last + 1 is refused.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from tsa_server.database import Database
from tsa_server.database.tables import Tables

from .policy_edits import LISTS, Overlay

POLICY_SCHEMA = """
CREATE TABLE IF NOT EXISTS policy_words (
    list TEXT NOT NULL, word TEXT NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('add', 'remove')),
    PRIMARY KEY (list, word));
CREATE TABLE IF NOT EXISTS policy_weights (metric TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS policy_changes (
    version INTEGER PRIMARY KEY, at TEXT NOT NULL, by_org TEXT NOT NULL,
    by_key TEXT NOT NULL, canonical BLOB NOT NULL, sha256 TEXT NOT NULL,
    token BLOB NOT NULL, gen_time TEXT NOT NULL, ops_index INTEGER);
CREATE TRIGGER IF NOT EXISTS policy_changes_no_update BEFORE UPDATE ON policy_changes
BEGIN SELECT RAISE(ABORT, 'policy changes are append-only'); END;
CREATE TRIGGER IF NOT EXISTS policy_changes_no_delete BEFORE DELETE ON policy_changes
BEGIN SELECT RAISE(ABORT, 'policy changes are append-only'); END;
CREATE TRIGGER IF NOT EXISTS policy_changes_need_token BEFORE INSERT ON policy_changes
WHEN length(NEW.token) = 0
BEGIN SELECT RAISE(ABORT, 'a policy change is stored with its time-stamp token'); END;
"""


@dataclass(frozen=True)
class PolicyChange:
    """One row of policy_changes."""

    version: int
    at: str
    by_org: str
    by_key: str
    canonical: bytes
    sha256: str
    token: bytes
    gen_time: str
    ops_index: int | None


class PolicyStore(Tables):
    """The overlay and its change history; one writer (the server), readers may share.
    Open it on the registry store's database (`PolicyStore(store.db)`) to share it."""

    def __init__(self, where: Path | str | Database) -> None:
        super().__init__(where)
        self._lock = threading.Lock()

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        conn.executescript(POLICY_SCHEMA)

    def load(self) -> tuple[int, Overlay]:
        """The current version and overlay."""
        conn = self._conn
        added: dict[str, set[str]] = {n: set() for n in LISTS}
        removed: dict[str, set[str]] = {n: set() for n in LISTS}
        for name, word, op in conn.execute("SELECT list, word, op FROM policy_words"):
            if name in LISTS:
                (added if op == "add" else removed)[name].add(word)
        weights = {
            m: Fraction(v) for m, v in conn.execute("SELECT metric, value FROM policy_weights")
        }
        return self.version(), Overlay(added, removed, weights)

    def version(self) -> int:
        row = self._conn.execute("SELECT max(version) FROM policy_changes").fetchone()
        return int(row[0] or 0)

    def commit(self, change: PolicyChange, overlay: Overlay) -> None:
        """Store `overlay` and `change` atomically (version must be last + 1)."""
        words = [
            (n, w, op)
            for op, table in (("add", overlay.added), ("remove", overlay.removed))
            for n in LISTS
            for w in sorted(table[n])
        ]
        with self._lock, self._write() as conn:
            last = self.version()
            if change.version != last + 1:
                raise ValueError(f"policy version gap: {change.version} after {last}")
            conn.execute("DELETE FROM policy_words")
            conn.executemany("INSERT INTO policy_words (list, word, op) VALUES (?, ?, ?)", words)
            conn.execute("DELETE FROM policy_weights")
            conn.executemany(
                "INSERT INTO policy_weights (metric, value) VALUES (?, ?)",
                [(m, str(v)) for m, v in sorted(overlay.weights.items())],
            )
            conn.execute(
                "INSERT INTO policy_changes (version, at, by_org, by_key, canonical, sha256,"
                " token, gen_time, ops_index) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    change.version,
                    change.at,
                    change.by_org,
                    change.by_key,
                    change.canonical,
                    change.sha256,
                    change.token,
                    change.gen_time,
                    change.ops_index,
                ),
            )

    def changes(self) -> list[PolicyChange]:
        cursor = self._conn.execute("SELECT * FROM policy_changes ORDER BY version")
        names = [d[0] for d in cursor.description]
        return [PolicyChange(**dict(zip(names, row, strict=True))) for row in cursor.fetchall()]


def read_overlay(where: Path | str | Database) -> tuple[int, Overlay]:
    """The overlay of an existing database, for read-only tools (`tsa names check`)."""
    if isinstance(where, (str, Path)) and not Path(where).exists():
        return 0, Overlay()
    try:
        store = PolicyStore(where)
    except sqlite3.Error:
        return 0, Overlay()
    try:
        return store.load()
    finally:
        store.close()

"""The handle registry's `NameStore` over a `Database`: the [names] path SQLite file of
conf/tsa.toml (WAL, `synchronous=FULL`, schema made with sqlite-utils), or the
[database] PostgreSQL database (names/schema_postgres.py: the same tables and rules).

- ``records``  one row per handle key: status and the whole `HandleRecord` as JSON
- ``bindings`` (shop_id, key) of every live record, so `by_shop` is one lookup
- ``meta``     the last event sequence number
- ``events``   the registry's events: canonical bytes, their SHA-256, and the RFC 3161
  token over that digest with its genTime. Append-only: triggers refuse UPDATE and
  DELETE, and an event must carry its token.

`commit(seq, put, delete)` runs in one write transaction: the staged
event of `seq` (see `stage_event`, called by the time-stamping sink), the record
writes and the new sequence number are durable together or not at all. Records are kept
as JSON (names/record_json.py; `record_to_json` and `record_from_json` stay importable
from here).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from tsa_server.database import Database
from tsa_server.database.tables import Tables

from .policy_store import POLICY_SCHEMA
from .record_json import record_from_json, record_to_json
from .store import HandleRecord, HandleStatus

__all__ = ["SqlNameStore", "StoredEvent", "create_schema", "record_from_json", "record_to_json"]

LIVE = (HandleStatus.PENDING, HandleStatus.CONTESTED, HandleStatus.ACTIVE)

_TRIGGERS = """
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_need_token BEFORE INSERT ON events
WHEN NEW.token IS NULL OR length(NEW.token) = 0
BEGIN SELECT RAISE(ABORT, 'an event is stored with its time-stamp token'); END;
"""


@dataclass(frozen=True)
class StoredEvent:
    """One row of the events table."""

    seq: int
    kind: str
    key: str
    handle: str
    at: str
    canonical: bytes
    sha256: str
    token: bytes
    gen_time: str
    ops_index: int | None


# ------------------------------------------------------------------ the store
def create_schema(conn: sqlite3.Connection) -> None:
    db = sqlite_utils.Database(conn)
    if "records" not in db.table_names():
        columns = {"key": str, "handle": str, "status": str, "record": str}
        db.table("records").create(columns, pk="key")
    if "bindings" not in db.table_names():
        db.table("bindings").create({"shop_id": str, "key": str}, pk=("shop_id", "key"))
        db.table("bindings").create_index(["key"])
    if "meta" not in db.table_names():
        db.table("meta").create({"name": str, "value": int}, pk="name")
        db.table("meta").insert({"name": "last_seq", "value": 0})
    if "events" not in db.table_names():
        db.table("events").create(
            {
                "seq": int,
                "kind": str,
                "key": str,
                "handle": str,
                "at": str,
                "canonical": bytes,
                "sha256": str,
                "token": bytes,
                "gen_time": str,
                "ops_index": int,
            },
            pk="seq",
            not_null={"kind", "key", "handle", "at", "canonical", "sha256", "token", "gen_time"},
        )
        db.table("events").create_index(["key"])
    conn.executescript(_TRIGGERS)


class SqlNameStore(Tables):
    """A durable `NameStore`. One process writes (the server); readers may share it."""

    def __init__(self, where: Path | str | Database, *, owns: bool = False) -> None:
        super().__init__(where, owns=owns)
        self._lock = threading.Lock()
        self._staged: dict[int, StoredEvent] = {}

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        create_schema(conn)
        conn.executescript(POLICY_SCHEMA)  # the overlay's tables share the file

    # ------------------------------------------------------------- NameStore
    def get(self, key: str) -> HandleRecord | None:
        row = self._conn.execute("SELECT record FROM records WHERE key = ?", (key,)).fetchone()
        return None if row is None else record_from_json(json.loads(row[0]))

    def by_shop(self, shop_id: str) -> HandleRecord | None:
        rows = self._conn.execute(
            "SELECT r.record FROM bindings b JOIN records r ON r.key = b.key "
            "WHERE b.shop_id = ? ORDER BY r.key",
            (shop_id,),
        ).fetchall()
        for (raw,) in rows:
            rec = record_from_json(json.loads(raw))
            if rec.status in LIVE and shop_id in rec.shop_ids():
                return rec
        return None

    def records(self) -> Iterator[HandleRecord]:
        rows = self._conn.execute("SELECT record FROM records ORDER BY key").fetchall()
        return iter([record_from_json(json.loads(raw)) for (raw,) in rows])

    def last_seq(self) -> int:
        row = self._conn.execute("SELECT value FROM meta WHERE name = 'last_seq'").fetchone()
        return int(row[0])

    def stage_event(self, event: StoredEvent) -> None:
        """HandleHold the event row of the next `commit` (the sink calls this: write-ahead)."""
        self._staged = {event.seq: event}

    def commit(self, seq: int, put: Iterable[HandleRecord], delete: Iterable[str]) -> None:
        put, delete = list(put), list(delete)
        with self._lock:
            staged = self._staged.pop(seq, None)
            self._staged.clear()
            with self._write() as conn:
                last = conn.execute("SELECT value FROM meta WHERE name = 'last_seq'").fetchone()
                if seq != last[0] + 1:
                    raise ValueError(f"sequence gap: {seq} after {last[0]}")
                if staged is not None:
                    conn.execute(
                        "INSERT INTO events (seq, kind, key, handle, at, canonical, sha256, "
                        "token, gen_time, ops_index) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            staged.seq,
                            staged.kind,
                            staged.key,
                            staged.handle,
                            staged.at,
                            staged.canonical,
                            staged.sha256,
                            staged.token,
                            staged.gen_time,
                            staged.ops_index,
                        ),
                    )
                for key in delete:
                    conn.execute("DELETE FROM bindings WHERE key = ?", (key,))
                    conn.execute("DELETE FROM records WHERE key = ?", (key,))
                for rec in put:
                    raw = json.dumps(record_to_json(rec), ensure_ascii=False, sort_keys=True)
                    conn.execute(
                        "INSERT INTO records (key, handle, status, record) VALUES (?, ?, ?, ?)"
                        " ON CONFLICT (key) DO UPDATE SET handle = excluded.handle,"
                        " status = excluded.status, record = excluded.record",
                        (rec.key, rec.handle, rec.status.value, raw),
                    )
                    conn.execute("DELETE FROM bindings WHERE key = ?", (rec.key,))
                    if rec.status in LIVE:
                        conn.executemany(
                            "INSERT INTO bindings (shop_id, key) VALUES (?, ?)",
                            [(s, rec.key) for s in sorted(rec.shop_ids())],
                        )
                conn.execute("UPDATE meta SET value = ? WHERE name = 'last_seq'", (seq,))

    # ----------------------------------------------------------------- events
    def events(self, key: str | None = None) -> list[StoredEvent]:
        sql = "SELECT * FROM events" + (" WHERE key = ?" if key is not None else "")
        cursor = self._conn.execute(sql + " ORDER BY seq", () if key is None else (key,))
        names = [d[0] for d in cursor.description]
        return [StoredEvent(**dict(zip(names, row, strict=True))) for row in cursor.fetchall()]

    def events_touching(self, key: str, key_of: Callable[[str], str]) -> list[StoredEvent]:
        """Events of `key`, plus handle changes away from it (`key_of` maps a handle to
        its comparison key)."""
        out = []
        for e in self.events():
            if e.key == key:
                out.append(e)
            elif e.kind == "handle_changed":
                old = json.loads(e.canonical)["data"].get("old")
                if isinstance(old, str) and key_of(old) == key:
                    out.append(e)
        return out

"""The handle registry's `NameStore` on SQLite (the [names] path of conf/tsa.toml).

One file, WAL, `synchronous=FULL`, schema made with sqlite-utils:

- ``records``  one row per handle key: status and the whole `HandleRecord` as JSON
- ``bindings`` (shop_id, key) of every live record, so `by_shop` is one lookup
- ``meta``     the last event sequence number
- ``events``   the registry's events: canonical bytes, their SHA-256, and the RFC 3161
  token over that digest with its genTime. Append-only: triggers refuse UPDATE and
  DELETE, and an event must carry its token.

`commit(seq, put, delete)` runs in one ``BEGIN IMMEDIATE`` transaction: the staged
event of `seq` (see `stage_event`, called by the time-stamping sink), the record
writes and the new sequence number are durable together or not at all.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import sqlite_utils

from ledger.store.sqlite import connect
from tsa_server.beijing_calendar import Interval, parse_utc_text, utc_text

from .applicants import BrandProof, Group, Mark, MarkKind
from .disputes import Metrics, Ranking, Standing
from .holds import Hold, HoldKind
from .quota import ChangeHistory
from .store import (
    Application,
    Contest,
    HandleRecord,
    HandleStatus,
    Holding,
    Objection,
)
from .trademark import Complaint

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


# ------------------------------------------------------------ JSON of a record
def _t(t: datetime | None) -> str | None:
    return None if t is None else utc_text(t)


def _pt(s: str | None) -> datetime | None:
    return None if s is None else parse_utc_text(s)


def _frac(f: Fraction) -> str:
    return str(Fraction(f))


def _metrics(m: Metrics) -> dict[str, Any]:
    return {
        "search_rate": _frac(m.search_rate),
        "usage_days": m.usage_days,
        "wangwang": m.wangwang,
        "repeat_rate": _frac(m.repeat_rate),
        "transactions": _frac(m.transactions),
        "star_level": m.star_level,
        "continuous_days": m.continuous_days,
    }


def _metrics_from(d: dict[str, Any]) -> Metrics:
    return Metrics(
        Fraction(d["search_rate"]),
        d["usage_days"],
        d["wangwang"],
        Fraction(d["repeat_rate"]),
        Fraction(d["transactions"]),
        d["star_level"],
        d["continuous_days"],
    )


def _mark_json(m: Mark) -> dict[str, Any]:
    return {"kind": m.kind.value, "text": m.text, "filed_at": _t(m.filed_at), "listed": m.listed}


def _mark_from(m: dict[str, Any] | None) -> Mark | None:
    if m is None:
        return None
    return Mark(MarkKind(m["kind"]), m["text"], parse_utc_text(m["filed_at"]), m["listed"])


def _brand_json(a: Application) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if a.mark is not None:
        out["mark"] = _mark_json(a.mark)
    if a.proof is not None:
        out["proof"] = a.proof.to_json()
    return out


def _brand_from(a: dict[str, Any]) -> tuple[Mark | None, BrandProof | None]:
    p = a.get("proof")
    return _mark_from(a.get("mark")), None if p is None else BrandProof(**p)


def _complaint_json(c: Complaint) -> dict[str, Any]:
    return {
        "shop_id": c.shop_id,
        "account_id": c.account_id,
        "handle": c.handle,
        "shop_name": c.shop_name,
        "mark": _mark_json(c.mark),
        "proof": c.proof.to_json(),
        "filed_at": _t(c.filed_at),
        "statement": c.statement,
    }


def _complaint_from(c: dict[str, Any]) -> Complaint:
    mark = _mark_from(c["mark"])
    assert mark is not None
    return Complaint(
        c["shop_id"],
        c["account_id"],
        c["handle"],
        c["shop_name"],
        mark,
        BrandProof(**c["proof"]),
        parse_utc_text(c["filed_at"]),
        c["statement"],
    )


def record_to_json(r: HandleRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"key": r.key, "handle": r.handle, "status": r.status.value}
    out["applications"] = [
        {
            "shop_id": a.shop_id,
            "account_id": a.account_id,
            "handle": a.handle,
            "shop_name": a.shop_name,
            "group": int(a.group),
            "applied_at": _t(a.applied_at),
            **_brand_json(a),
        }
        for a in r.applications
    ]
    c = r.contest
    out["contest"] = (
        None
        if c is None
        else {
            "window": [_t(c.window.start), _t(c.window.end)],
            "standings": [
                {
                    "contender": s.contender,
                    "score": _frac(s.score),
                    "metrics": _metrics(s.metrics),
                    "rank": s.rank,
                }
                for s in c.ranking.standings
            ],
            "leader": c.ranking.leader,
            "decided_by": c.ranking.decided_by,
            "objections": [
                {
                    "shop_id": o.shop_id,
                    "account_id": o.account_id,
                    "at": _t(o.at),
                    "statement": o.statement,
                }
                for o in c.objections
            ],
        }
    )
    h = r.holding
    out["holding"] = (
        None
        if h is None
        else {
            "shop_id": h.shop_id,
            "account_id": h.account_id,
            "handle": h.handle,
            "custom": h.custom,
            "approved_at": _t(h.history.approved_at),
            "changes": [_t(t) for t in h.history.changes],
            **({"mark": _mark_json(h.mark)} if h.mark is not None else {}),
        }
    )
    d = r.hold
    out["hold"] = (
        None
        if d is None
        else {
            "kind": d.kind.value,
            "former_account": d.former_account,
            "former_shop": d.former_shop,
            "since": _t(d.since),
            "available_at": _t(d.available_at),
        }
    )
    if r.complaints:  # H-13 (absent when none: older rows read the same)
        out["complaints"] = [_complaint_json(c) for c in r.complaints]
    return out


def record_from_json(o: dict[str, Any]) -> HandleRecord:
    apps = tuple(
        Application(
            a["shop_id"],
            a["account_id"],
            a["handle"],
            a["shop_name"],
            Group(a["group"]),
            parse_utc_text(a["applied_at"]),
            *_brand_from(a),
        )
        for a in o["applications"]
    )
    contest = None
    if (c := o["contest"]) is not None:
        ranking = Ranking(
            tuple(
                Standing(
                    s["contender"], Fraction(s["score"]), _metrics_from(s["metrics"]), s["rank"]
                )
                for s in c["standings"]
            ),
            c["leader"],
            c["decided_by"],
        )
        objections = tuple(
            Objection(x["shop_id"], x["account_id"], parse_utc_text(x["at"]), x["statement"])
            for x in c["objections"]
        )
        window = Interval(parse_utc_text(c["window"][0]), parse_utc_text(c["window"][1]))
        contest = Contest(window, ranking, objections)
    holding = None
    if (h := o["holding"]) is not None:
        history = ChangeHistory(
            parse_utc_text(h["approved_at"]), tuple(parse_utc_text(t) for t in h["changes"])
        )
        holding = Holding(
            h["shop_id"],
            h["account_id"],
            h["handle"],
            h["custom"],
            history,
            _mark_from(h.get("mark")),
        )
    hold = None
    if (d := o["hold"]) is not None:
        hold = Hold(
            HoldKind(d["kind"]),
            d["former_account"],
            d["former_shop"],
            parse_utc_text(d["since"]),
            _pt(d["available_at"]),
        )
    complaints = tuple(_complaint_from(c) for c in o.get("complaints", ()))
    return HandleRecord(
        o["key"], o["handle"], HandleStatus(o["status"]), apps, contest, holding, hold, complaints
    )


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


class SqliteNameStore:
    """A durable `NameStore`. One process writes (the server); readers may share the file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = connect(self.path)
        self._lock = threading.Lock()
        create_schema(self._conn)
        self._staged: dict[int, StoredEvent] = {}

    def close(self) -> None:
        self._conn.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """The open connection (policy_store.PolicyStore shares it)."""
        return self._conn

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
        """Hold the event row of the next `commit` (the sink calls this: write-ahead)."""
        self._staged = {event.seq: event}

    def commit(self, seq: int, put: Iterable[HandleRecord], delete: Iterable[str]) -> None:
        put, delete = list(put), list(delete)
        with self._lock:
            staged = self._staged.pop(seq, None)
            self._staged.clear()
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
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
                        "INSERT OR REPLACE INTO records (key, handle, status, record) "
                        "VALUES (?, ?, ?, ?)",
                        (rec.key, rec.handle, rec.status.value, raw),
                    )
                    conn.execute("DELETE FROM bindings WHERE key = ?", (rec.key,))
                    if rec.status in LIVE:
                        conn.executemany(
                            "INSERT INTO bindings (shop_id, key) VALUES (?, ?)",
                            [(s, rec.key) for s in sorted(rec.shop_ids())],
                        )
                conn.execute("UPDATE meta SET value = ? WHERE name = 'last_seq'", (seq,))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

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

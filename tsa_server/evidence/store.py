"""The evidence store: organisations, members, API keys, items and credit entries in one
SQLite file (WAL, synchronous=FULL: durable on every commit).

Isolation is structural: every method that reads or changes items takes the
organisation id first and puts it in the WHERE clause, so one account's id for another
account's item finds nothing (and reports exactly what a missing id reports). There is
no method that reads an item by id alone. Blob reference counts (for deleting a shared,
deduplicated original) return a number, never an item.

Several processes may open the same file (the server and `tsa accounts`): writes take
SQLite's write lock with BEGIN IMMEDIATE and wait up to `busy_timeout` for it. Within a
process every thread gets a connection of its own (SQLite's one connection per thread:
a transaction never interleaves with another thread's statements), so the server does
its evidence writes in worker threads, off the event loop, while the loop reads.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from ledger.store.sqlite import connect as durable_connect
from tsa_server.evidence.accounts import (
    ApiKey,
    Member,
    Now,
    Organisation,
    Role,
    new_id,
)
from tsa_server.evidence.errors import (
    EvidenceError,
    IdempotencyConflict,
    InvalidInput,
    ItemImmutable,
    ItemNotFound,
    OrganisationNotFound,
    PermissionDenied,
)
from tsa_server.evidence.key_schema import CREATOR_BOUND
from tsa_server.evidence.records import (
    Appended,
    Certified,
    CreditEntry,
    Item,
    ItemMode,
    NewCreditEntry,
    NewItem,
    StorageState,
    StoredNotice,
    canonical_json,
)
from tsa_server.evidence.rows import (
    CHAIN_GENESIS,
    api_key_from_row,
    credit_chain_hash,
    credit_from_row,
    item_column_value,
    item_from_row,
)
from tsa_server.evidence.schema import create_schema
from tsa_server.evidence.times import dt, ts, utc_now

#: Item columns update_item may change; the schema's triggers decide which changes hold.
UPDATABLE_ITEM_FIELDS = frozenset(
    {
        "tags",
        "token",
        "ledger_index",
        "serial",
        "certified_at",
        "blob_key",
        "storage_state",
        "file_name",
        "media_type",
        "title",
        "statement",
        "depositor",
    }
)
MAX_PAGE = 1000
#: Columns of item_terms a caller sets (item_id, org_id and updated_at are the store's).
#: item_terms columns of a stored item's storage term (all NULL for hash-only items).
STORAGE_COLUMNS = (
    "term_number",
    "anchor",
    "base_months",
    "period_months",
    "fee",
    "prepaid",
    "period",
    "status",
    "since",
    "auto_renew",
    "expires_at",
)
TERMS_COLUMNS = frozenset(
    {"epoch", "work_content", "handle", "record_sha256", "ops_index", *STORAGE_COLUMNS}
)
_TERMS_INSTANTS = ("anchor", "since", "expires_at")


#: SQL: the webhook w's events (space-separated kinds; NULL: all) include notice n's.
_WEBHOOK_WANTS = "(w.events IS NULL OR instr(' ' || w.events || ' ', ' ' || n.kind || ' ') > 0)"


def notice_from_row(r: dict[str, Any]) -> StoredNotice:
    return StoredNotice(
        r["org_id"],
        r["key"],
        r["kind"],
        dt(r["at"]),
        r["subject"],
        dt(r["target"]),
        r["units"] or 0,
        None if r["covered"] is None else bool(r["covered"]),
        r["detail"] or "",
        dt(r["created_at"]),
    )


def _terms(row: dict[str, Any]) -> dict[str, Any]:
    out = {c: row.get(c) for c in TERMS_COLUMNS}
    for name in _TERMS_INSTANTS:
        out[name] = dt(out[name])
    return out


#: check(org_id, earlier entries, added entries): raise to refuse (see append_credit_entries)
CreditCheck = Callable[[str, list[CreditEntry], list[CreditEntry]], None]


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


class EvidenceStore:
    """The accounts, items and credit entries of every organisation (one SQLite file)."""

    def __init__(self, path: Path | str, *, now: Now = utc_now) -> None:
        self.path = Path(path)
        self.now = now
        _create_private(self.path)
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._opened_lock = threading.Lock()
        create_schema(self._conn)

    @property
    def _conn(self) -> sqlite3.Connection:
        """This thread's connection (opened on its first use)."""
        conn = getattr(self._local, "conn", None)
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

    # plumbing

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

    # organisations and members

    def insert_organisation(self, org: Organisation) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO organisations (id, name, created_at) VALUES (?, ?, ?)",
                (org.id, org.name, ts(org.created_at)),
            )

    def organisation(self, org_id: str) -> Organisation | None:
        row = self._row("SELECT * FROM organisations WHERE id = ?", (org_id,))
        return Organisation(row["id"], row["name"], dt(row["created_at"])) if row else None

    def organisations(self) -> list[Organisation]:
        rows = self._rows("SELECT * FROM organisations ORDER BY created_at, id")
        return [Organisation(r["id"], r["name"], dt(r["created_at"])) for r in rows]

    def insert_member(self, member: Member) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO members (id, org_id, name, role, created_at) VALUES (?, ?, ?, ?, ?)",
                (member.id, member.org_id, member.name, member.role, ts(member.created_at)),
            )

    def member(self, org_id: str, member_id: str) -> Member | None:
        row = self._row("SELECT * FROM members WHERE org_id = ? AND id = ?", (org_id, member_id))
        if row is None:
            return None
        return Member(row["id"], org_id, row["name"], Role(row["role"]), dt(row["created_at"]))

    def members(self, org_id: str) -> list[Member]:
        rows = self._rows(
            "SELECT * FROM members WHERE org_id = ? ORDER BY created_at, id", (org_id,)
        )
        return [
            Member(r["id"], org_id, r["name"], Role(r["role"]), dt(r["created_at"])) for r in rows
        ]

    # API keys

    def insert_api_key(self, key: ApiKey, secret_hash: bytes) -> None:
        """Store a new key (PermissionDenied when its creator was revoked meanwhile, or it
        would outrank or outlive its creator: the schema's last line of defence)."""
        try:
            self._insert_api_key(key, secret_hash)
        except sqlite3.IntegrityError as exc:
            if CREATOR_BOUND in str(exc):
                raise PermissionDenied(f"{CREATOR_BOUND} (is it still active?)") from None
            raise

    def _insert_api_key(self, key: ApiKey, secret_hash: bytes) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO api_keys (id, org_id, name, role, scopes, secret_hash, created_at,"
                " created_by, member_id, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key.id,
                    key.org_id,
                    key.name,
                    key.role,
                    " ".join(sorted(key.scopes)),
                    secret_hash,
                    ts(key.created_at),
                    key.created_by,
                    key.member_id,
                    ts(key.expires_at),
                ),
            )

    def api_key_for_authentication(self, key_id: str) -> tuple[ApiKey, bytes] | None:
        """The key and its secret's hash: for Accounts.authenticate only."""
        row = self._row("SELECT * FROM api_keys WHERE id = ?", (key_id,))
        return (api_key_from_row(row), row["secret_hash"]) if row else None

    def api_key_org(self, key_id: str) -> str | None:
        """The organisation of a key id (operator CLI)."""
        row = self._row("SELECT org_id FROM api_keys WHERE id = ?", (key_id,))
        return row["org_id"] if row else None

    def api_key(self, org_id: str, key_id: str) -> ApiKey | None:
        row = self._row("SELECT * FROM api_keys WHERE org_id = ? AND id = ?", (org_id, key_id))
        return api_key_from_row(row) if row else None

    def api_keys(self, org_id: str) -> list[ApiKey]:
        rows = self._rows(
            "SELECT * FROM api_keys WHERE org_id = ? ORDER BY created_at, id", (org_id,)
        )
        return [api_key_from_row(r) for r in rows]

    def count_active_api_keys(self, org_id: str, now: datetime) -> int:
        """Keys of the organisation neither revoked nor expired at `now`."""
        row = self._row(
            "SELECT COUNT(*) AS n FROM api_keys WHERE org_id = ? AND revoked_at IS NULL"
            " AND (expires_at IS NULL OR expires_at > ?)",
            (org_id, ts(now)),
        )
        return row["n"] if row else 0

    def revoke_api_key(
        self, org_id: str, key_id: str, at: datetime, by: str
    ) -> tuple[ApiKey, list[ApiKey]] | None:
        """Revoke the key (unless it is already) and, in the same transaction, every key
        it created, transitively, that is not revoked yet: each gets the same instant and
        `by`, and `revoked_via` its creator. The key, and the keys revoked with it now."""
        with self._write() as conn:
            conn.execute(
                "UPDATE api_keys SET revoked_at = ?, revoked_by = ?"
                " WHERE org_id = ? AND id = ? AND revoked_at IS NULL",
                (ts(at), by, org_id, key_id),
            )
            cascaded = [
                row[0]
                for row in conn.execute(
                    "WITH RECURSIVE tree(id) AS ("
                    " SELECT id FROM api_keys WHERE created_by = ?1 AND org_id = ?2"
                    " UNION SELECT k.id FROM api_keys k JOIN tree ON k.created_by = tree.id)"
                    " UPDATE api_keys SET revoked_at = ?3, revoked_by = ?4,"
                    " revoked_via = created_by"
                    " WHERE id IN tree AND org_id = ?2 AND revoked_at IS NULL RETURNING id",
                    (key_id, org_id, ts(at), by),
                ).fetchall()
            ]
        key = self.api_key(org_id, key_id)
        if key is None:
            return None
        return key, [k for k in self.api_keys(org_id) if k.id in set(cascaded)]

    def touch_api_keys(self, uses: Mapping[str, datetime]) -> None:
        """Record keys' last uses in one transaction; a recorded later use is kept."""
        with self._write() as conn:
            conn.executemany(
                "UPDATE api_keys SET last_used_at = ?1"
                " WHERE id = ?2 AND (last_used_at IS NULL OR last_used_at < ?1)",
                [(ts(at), key_id) for key_id, at in uses.items()],
            )

    # items: every method takes the organisation first

    def insert_item(
        self,
        org_id: str,
        new: NewItem,
        *,
        created_at: datetime | None = None,
        item_id: str | None = None,
    ) -> Item:
        """Insert an uncertified item (`item_id`: one chosen ahead, e.g. reserved for)."""
        if self.organisation(org_id) is None:
            raise OrganisationNotFound(f"no organisation {org_id}")
        item_id = item_id or new_id("itm")
        with self._write() as conn:
            self._insert_item_locked(conn, org_id, item_id, new, created_at)
        item = self.item(org_id, item_id)
        assert item is not None
        return item

    def _insert_item_locked(
        self,
        conn: sqlite3.Connection,
        org_id: str,
        item_id: str,
        new: NewItem,
        created_at: datetime | None,
        certified: Certified | None = None,
    ) -> None:
        state = StorageState.ACTIVE if new.mode is ItemMode.STORED else None
        c = certified
        try:
            conn.execute(
                "INSERT INTO items (id, org_id, mode, sha256, sha512, sm3, size, file_name,"
                " media_type, title, statement, depositor, tags, created_at, blob_key,"
                " storage_state, token, ledger_index, serial, certified_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    item_id,
                    org_id,
                    new.mode,
                    new.sha256,
                    new.sha512,
                    new.sm3,
                    new.size,
                    new.file_name,
                    new.media_type,
                    new.title,
                    new.statement,
                    new.depositor,
                    json.dumps(list(new.tags), ensure_ascii=False),
                    ts(created_at or self.now()),
                    new.blob_key,
                    state,
                    None if c is None else c.token,
                    None if c is None else c.ledger_index,
                    None if c is None else item_column_value("serial", c.serial),
                    None if c is None else ts(c.certified_at),
                ),
            )
        except sqlite3.IntegrityError as exc:
            raise ItemImmutable(str(exc)) from None

    def item(self, org_id: str, item_id: str) -> Item | None:
        row = self._row("SELECT * FROM items WHERE org_id = ? AND id = ?", (org_id, item_id))
        return item_from_row(row) if row else None

    def items(self, org_id: str, *, limit: int = 100, offset: int = 0) -> list[Item]:
        """The organisation's items, newest first."""
        if not (1 <= limit <= MAX_PAGE) or offset < 0:
            raise InvalidInput(f"limit is 1-{MAX_PAGE} and offset non-negative")
        rows = self._rows(
            "SELECT * FROM items WHERE org_id = ? ORDER BY created_at DESC, id DESC"
            " LIMIT ? OFFSET ?",
            (org_id, limit, offset),
        )
        return [item_from_row(r) for r in rows]

    def items_by_sha256(self, org_id: str, sha256: str) -> list[Item]:
        rows = self._rows(
            "SELECT * FROM items WHERE org_id = ? AND sha256 = ? ORDER BY created_at, id",
            (org_id, sha256.lower()),
        )
        return [item_from_row(r) for r in rows]

    def count_items(self, org_id: str) -> int:
        row = self._row("SELECT COUNT(*) AS n FROM items WHERE org_id = ?", (org_id,))
        return row["n"] if row else 0

    def count_certified(self, org_id: str, start: datetime, end: datetime) -> int:
        """Items of the organisation certified (token genTime) within `[start, end)`:
        the REC-10 monthly quota's use (index items(org_id, certified_at))."""
        row = self._row(
            "SELECT COUNT(*) AS n FROM items WHERE org_id = ? AND certified_at >= ?"
            " AND certified_at < ?",
            (org_id, ts(start), ts(end)),
        )
        return row["n"] if row else 0

    # idempotency keys of deposit requests (tsa_server/evidence/idempotency.py)

    def claim_idempotency_key(
        self, org_id: str, key: str, request_sha256: str, now: datetime, expires_at: datetime
    ) -> dict[str, Any] | None:
        """In one transaction: forget expired keys, then either record `key` as in
        progress (None: the caller runs the request) or return the row already there
        (request_sha256, status: None while in progress, body)."""
        with self._write() as conn:
            conn.execute("DELETE FROM idempotency_keys WHERE expires_at <= ?", (ts(now),))
            row = self._row(
                "SELECT request_sha256, status, body FROM idempotency_keys"
                " WHERE org_id = ? AND key = ?",
                (org_id, key),
            )
            if row is not None:
                return row
            conn.execute(
                "INSERT INTO idempotency_keys (org_id, key, request_sha256, created_at,"
                " expires_at) VALUES (?, ?, ?, ?, ?)",
                (org_id, key, request_sha256, ts(now), ts(expires_at)),
            )
            return None

    def idempotency_key(self, org_id: str, key: str, now: datetime) -> dict[str, Any] | None:
        """The key's unexpired row (request_sha256, status: None while in progress,
        body), or None: a look only, nothing claimed."""
        return self._row(
            "SELECT request_sha256, status, body FROM idempotency_keys"
            " WHERE org_id = ? AND key = ? AND expires_at > ?",
            (org_id, key, ts(now)),
        )

    def finish_idempotency_key(self, org_id: str, key: str, status: int, body: str) -> None:
        """Keep the answer of a claimed key (replayed to retries until it expires)."""
        with self._write() as conn:
            conn.execute(
                "UPDATE idempotency_keys SET status = ?, body = ?"
                " WHERE org_id = ? AND key = ? AND status IS NULL",
                (status, body, org_id, key),
            )

    def release_idempotency_key(self, org_id: str, key: str) -> None:
        """Forget a claimed key whose request was refused (a retry runs again)."""
        with self._write() as conn:
            conn.execute(
                "DELETE FROM idempotency_keys WHERE org_id = ? AND key = ? AND status IS NULL",
                (org_id, key),
            )

    def update_item(self, org_id: str, item_id: str, /, **changes: Any) -> Item:
        """Change some of UPDATABLE_ITEM_FIELDS of one of the organisation's items.
        ItemNotFound for another organisation's id; ItemImmutable when the schema's rules
        refuse (a certified item's token or statement, a blob that is not the item's
        content, a storage state the mode does not have)."""
        unknown = set(changes) - UPDATABLE_ITEM_FIELDS
        if unknown:
            raise InvalidInput(f"cannot update {', '.join(sorted(unknown))}")
        if not changes:
            raise InvalidInput("nothing to update")
        values = {name: item_column_value(name, value) for name, value in changes.items()}
        assignments = ", ".join(f"{name} = ?" for name in values)
        try:
            with self._write() as conn:
                updated = conn.execute(
                    f"UPDATE items SET {assignments} WHERE org_id = ? AND id = ?",
                    (*values.values(), org_id, item_id),
                ).rowcount
        except sqlite3.IntegrityError as exc:
            raise ItemImmutable(str(exc)) from None
        if updated != 1:
            raise ItemNotFound(f"no item {item_id}")
        item = self.item(org_id, item_id)
        assert item is not None
        return item

    def blob_references(self, blob_key: str) -> int:
        """How many items (of any organisation) hold this original: delete the blob only
        at zero. A count, never an item."""
        row = self._row("SELECT COUNT(*) AS n FROM items WHERE blob_key = ?", (blob_key,))
        return row["n"] if row else 0

    # credit entries: append-only

    def append_credit_entries(
        self, entries: Iterable[NewCreditEntry], *, check: CreditCheck | None = None
    ) -> list[Appended]:
        """Store the entries in one BEGIN IMMEDIATE transaction, all or none.

        An entry whose idempotency key its organisation already used is not stored again:
        the earlier entry comes back with inserted=False, or IdempotencyConflict when the
        key now names a different movement. `check(org_id, existing, added)` runs inside
        the transaction for each organisation that gains entries, with its earlier and
        its new entries; whatever it raises rolls everything back. That is where the fee
        rules' fold refuses a negative balance atomically: no other writer can slip an
        entry in between the check and the commit."""
        with self._write() as conn:
            return self._append_locked(conn, entries, check)

    def _append_locked(
        self,
        conn: sqlite3.Connection,
        entries: Iterable[NewCreditEntry],
        check: CreditCheck | None,
    ) -> list[Appended]:
        """append_credit_entries inside a transaction the caller holds."""
        entries = list(entries)
        results: list[Appended] = []
        last = self._row("SELECT id, chain_hash FROM credit_entries ORDER BY id DESC LIMIT 1")
        next_id, head = (last["id"] + 1, last["chain_hash"]) if last else (1, CHAIN_GENESIS)
        added: dict[str, list[CreditEntry]] = {}
        for new in entries:
            existing = self._row(
                "SELECT * FROM credit_entries WHERE org_id = ? AND idempotency_key = ?",
                (new.org_id, new.idempotency_key),
            )
            if existing is not None:
                stored = credit_from_row(existing)
                if not new.same_movement(stored):
                    raise IdempotencyConflict(
                        f"idempotency key {new.idempotency_key!r} was used for another entry"
                    )
                results.append(Appended(stored, inserted=False))
                continue
            self._check_references(new)
            entry = CreditEntry(
                id=next_id,
                org_id=new.org_id,
                kind=new.kind,
                units=new.units,
                idempotency_key=new.idempotency_key,
                lot_id=new.lot_id,
                item_id=new.item_id,
                period=new.period,
                note=new.note,
                created_at=dt(ts(new.created_at or self.now())),
                record=None if new.record is None else dict(new.record),
            )
            head = credit_chain_hash(head, entry)
            entry = replace(entry, chain_hash=head)
            conn.execute(
                "INSERT INTO credit_entries (id, org_id, kind, units, lot_id, item_id, period,"
                " idempotency_key, created_at, note, record, chain_hash)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.id,
                    entry.org_id,
                    entry.kind,
                    entry.units,
                    entry.lot_id,
                    entry.item_id,
                    entry.period,
                    entry.idempotency_key,
                    ts(entry.created_at),
                    entry.note,
                    None if entry.record is None else canonical_json(entry.record),
                    head,
                ),
            )
            results.append(Appended(entry, inserted=True))
            added.setdefault(new.org_id, []).append(entry)
            next_id += 1
        if check is not None:
            for org_id, new_entries in added.items():
                first_new = new_entries[0].id
                earlier = [e for e in self.credit_entries(org_id) if e.id < first_new]
                check(org_id, earlier, list(new_entries))
        return results

    # one change of the fee layer: entries, item, storage record and notices together

    def commit_change(
        self,
        org_id: str,
        *,
        entries: Iterable[NewCreditEntry] = (),
        check: CreditCheck | None = None,
        new_item: tuple[str, NewItem, Certified] | None = None,
        item_id: str | None = None,
        item_changes: dict[str, Any] | None = None,
        terms: dict[str, Any] | None = None,
        notices: Iterable[StoredNotice] = (),
    ) -> list[Appended]:
        """One BEGIN IMMEDIATE transaction (REC-3 "one transaction per item"): insert a
        certified item (`new_item`: id, values, certification) or change one
        (`item_changes` of UPDATABLE_ITEM_FIELDS on `item_id`), insert or update its
        storage record (`terms`: item_terms columns), append credit entries under
        `check`, and keep notices not sent before. All of it or none."""
        with self._write() as conn:
            if new_item is not None:
                nid, values, certified = new_item
                self._insert_item_locked(conn, org_id, nid, values, None, certified)
                item_id = nid
            if item_changes:
                assert item_id is not None
                unknown = set(item_changes) - UPDATABLE_ITEM_FIELDS
                if unknown:
                    raise InvalidInput(f"cannot update {', '.join(sorted(unknown))}")
                values = {n: item_column_value(n, v) for n, v in item_changes.items()}
                assignments = ", ".join(f"{name} = ?" for name in values)
                try:
                    updated = conn.execute(
                        f"UPDATE items SET {assignments} WHERE org_id = ? AND id = ?",
                        (*values.values(), org_id, item_id),
                    ).rowcount
                except sqlite3.IntegrityError as exc:
                    raise ItemImmutable(str(exc)) from None
                if updated != 1:
                    raise ItemNotFound(f"no item {item_id}")
            if terms is not None:
                assert item_id is not None
                self._put_terms_locked(conn, org_id, item_id, terms)
            appended = self._append_locked(conn, entries, check)
            for notice in notices:
                self._put_notice_locked(conn, notice)
            return appended

    def _put_terms_locked(
        self, conn: sqlite3.Connection, org_id: str, item_id: str, terms: dict[str, Any]
    ) -> None:
        unknown = set(terms) - TERMS_COLUMNS
        if unknown:
            raise InvalidInput(f"unknown storage columns {', '.join(sorted(unknown))}")
        values = {k: ts(v) if isinstance(v, datetime) else v for k, v in terms.items()}
        values["updated_at"] = ts(self.now())
        try:
            exists = self._row("SELECT org_id FROM item_terms WHERE item_id = ?", (item_id,))
            if exists is None:
                names = ["item_id", "org_id", *values]
                conn.execute(
                    f"INSERT INTO item_terms ({', '.join(names)})"
                    f" VALUES ({', '.join('?' for _ in names)})",
                    (item_id, org_id, *values.values()),
                )
            elif exists["org_id"] != org_id:
                raise ItemNotFound(f"no item {item_id}")
            else:
                assignments = ", ".join(f"{name} = ?" for name in values)
                conn.execute(
                    f"UPDATE item_terms SET {assignments} WHERE org_id = ? AND item_id = ?",
                    (*values.values(), org_id, item_id),
                )
        except sqlite3.IntegrityError as exc:
            raise ItemImmutable(str(exc)) from None

    def _put_notice_locked(self, conn: sqlite3.Connection, n: StoredNotice) -> None:
        conn.execute(
            "INSERT OR IGNORE INTO notices (org_id, key, kind, at, subject, target, units,"
            " covered, detail, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                n.org_id,
                n.key,
                n.kind,
                ts(n.at),
                n.subject,
                ts(n.target),
                n.units,
                None if n.covered is None else int(n.covered),
                n.detail,
                ts(n.created_at or self.now()),
            ),
        )

    def item_terms(self, org_id: str, item_id: str) -> dict[str, Any] | None:
        """The item's storage record (item_terms columns, instants as datetimes)."""
        row = self._row(
            "SELECT * FROM item_terms WHERE org_id = ? AND item_id = ?", (org_id, item_id)
        )
        return _terms(row) if row else None

    def items_with_terms(
        self, org_id: str, *, holding_original: bool = False
    ) -> list[tuple[Item, dict[str, Any] | None]]:
        """Every certified item of the organisation with its storage record, oldest first;
        `holding_original`: only STORED items whose original is held (ACTIVE/EXPIRED)."""
        sql = (
            "SELECT i.*, t.item_id AS t_item_id, "
            + ", ".join(f"t.{c} AS t_{c}" for c in sorted(TERMS_COLUMNS))
            + " FROM items i LEFT JOIN item_terms t ON t.item_id = i.id"
            " WHERE i.org_id = ? AND i.token IS NOT NULL"
        )
        if holding_original:
            sql += " AND i.storage_state IN ('active', 'expired')"
        rows = self._rows(sql + " ORDER BY i.created_at, i.id", (org_id,))
        out: list[tuple[Item, dict[str, Any] | None]] = []
        for row in rows:
            terms = {c: row.pop(f"t_{c}") for c in TERMS_COLUMNS}
            has = row.pop("t_item_id") is not None
            out.append((item_from_row(row), _terms(terms) if has else None))
        return out

    def notices(self, org_id: str, *, limit: int = 100) -> list[StoredNotice]:
        """The organisation's notices, newest first."""
        rows = self._rows(
            "SELECT * FROM notices WHERE org_id = ? ORDER BY id DESC LIMIT ?", (org_id, limit)
        )
        return [notice_from_row(r) for r in rows]

    # webhooks (REC-10; delivery in evidence/webhooks.py)

    def put_webhook(
        self, org_id: str, url: str, events: str | None, secret: str, now: datetime
    ) -> bool:
        """Set the organisation's webhook (True: made now). A new one delivers notices
        made from now on; a replaced one keeps its pending deliveries (to the new URL,
        signed with the new secret)."""
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE webhooks SET url = ?, events = ?, secret = ?, updated_at = ?"
                " WHERE org_id = ?",
                (url, events, secret, ts(now), org_id),
            )
            if cursor.rowcount == 1:
                return False
            conn.execute(
                "INSERT INTO webhooks (org_id, url, events, secret, after_notice_id,"
                " created_at, updated_at) VALUES (?, ?, ?, ?,"
                " (SELECT COALESCE(MAX(id), 0) FROM notices), ?, ?)",
                (org_id, url, events, secret, ts(now), ts(now)),
            )
            return True

    def webhook(self, org_id: str) -> dict[str, Any] | None:
        """The organisation's webhook without its secret, with delivery counts
        (delivered, pending, given_up) and the last attempt's outcome."""
        row = self._row(
            "SELECT org_id, url, events, after_notice_id, created_at, updated_at"
            " FROM webhooks WHERE org_id = ?",
            (org_id,),
        )
        if row is None:
            return None
        counts = self._row(
            "SELECT"
            " COUNT(d.delivered_at) AS delivered,"
            " COUNT(d.given_up_at) AS given_up,"
            " SUM(d.delivered_at IS NULL AND d.given_up_at IS NULL) AS pending"
            " FROM webhooks w JOIN notices n ON n.org_id = w.org_id AND n.id > w.after_notice_id"
            " LEFT JOIN webhook_deliveries d ON d.notice_id = n.id"
            " WHERE w.org_id = ? AND " + _WEBHOOK_WANTS,
            (org_id,),
        )
        last = self._row(
            "SELECT last_attempt_at, last_status, last_error FROM webhook_deliveries"
            " WHERE org_id = ? ORDER BY last_attempt_at DESC, notice_id DESC LIMIT 1",
            (org_id,),
        )
        row.update({k: (counts or {}).get(k) or 0 for k in ("delivered", "given_up", "pending")})
        row["last_attempt"] = last
        return row

    def webhook_orgs(self) -> list[str]:
        """The organisations that have a webhook (the dispatcher's round)."""
        return [r["org_id"] for r in self._rows("SELECT org_id FROM webhooks ORDER BY org_id")]

    def delete_webhook(self, org_id: str) -> bool:
        with self._write() as conn:
            return conn.execute("DELETE FROM webhooks WHERE org_id = ?", (org_id,)).rowcount == 1

    def due_deliveries(self, org_id: str, now: datetime, limit: int) -> list[dict[str, Any]]:
        """The organisation's notices its webhook still has to deliver whose next attempt
        is due, oldest first: the notice's columns plus webhook_url, webhook_secret,
        attempts, first_attempt_at."""
        rows = self._rows(
            "SELECT n.*, w.url AS webhook_url, w.secret AS webhook_secret,"
            " COALESCE(d.attempts, 0) AS attempts, d.first_attempt_at"
            " FROM webhooks w JOIN notices n ON n.org_id = w.org_id AND n.id > w.after_notice_id"
            " LEFT JOIN webhook_deliveries d ON d.notice_id = n.id"
            " WHERE w.org_id = ? AND d.delivered_at IS NULL AND d.given_up_at IS NULL"
            " AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= ?)"
            " AND " + _WEBHOOK_WANTS + " ORDER BY n.id LIMIT ?",
            (org_id, ts(now), limit),
        )
        return rows

    def record_delivery(
        self,
        org_id: str,
        notice_id: int,
        at: datetime,
        *,
        status: int | None,
        error: str,
        delivered: bool,
        next_attempt_at: datetime | None,
        given_up: bool,
    ) -> None:
        """One attempt's outcome: attempts + 1, and delivered, given up, or the next try."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO webhook_deliveries (notice_id, org_id, attempts, first_attempt_at,"
                " last_attempt_at, next_attempt_at, last_status, last_error, delivered_at,"
                " given_up_at) VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (notice_id) DO UPDATE SET attempts = attempts + 1,"
                " last_attempt_at = excluded.last_attempt_at,"
                " next_attempt_at = excluded.next_attempt_at,"
                " last_status = excluded.last_status, last_error = excluded.last_error,"
                " delivered_at = excluded.delivered_at, given_up_at = excluded.given_up_at",
                (
                    notice_id,
                    org_id,
                    ts(at),
                    ts(at),
                    ts(next_attempt_at),
                    status,
                    error,
                    ts(at) if delivered else None,
                    ts(at) if given_up else None,
                ),
            )

    def _check_references(self, new: NewCreditEntry) -> None:
        if self.organisation(new.org_id) is None:
            raise OrganisationNotFound(f"no organisation {new.org_id}")
        if new.item_id is not None:
            row = self._row("SELECT org_id FROM items WHERE id = ?", (new.item_id,))
            if row is not None and row["org_id"] != new.org_id:
                # Reported like a missing item: ids reveal nothing across organisations.
                raise ItemNotFound(f"no item {new.item_id}")

    def credit_entries(
        self, org_id: str, *, after_id: int = 0, limit: int | None = None
    ) -> list[CreditEntry]:
        rows = self._rows(
            "SELECT * FROM credit_entries WHERE org_id = ? AND id > ? ORDER BY id LIMIT ?",
            (org_id, after_id, -1 if limit is None else limit),
        )
        return [credit_from_row(r) for r in rows]

    def verify_credit_chain(self) -> int:
        """Recompute the chain over every entry; the number of entries, or EvidenceError
        naming the first entry that does not match."""
        head, count = CHAIN_GENESIS, 0
        cursor = self._conn.execute("SELECT * FROM credit_entries ORDER BY id")
        names = [d[0] for d in cursor.description]
        for row in cursor:
            entry = credit_from_row(dict(zip(names, row, strict=True)))
            count += 1
            if entry.id != count:
                raise EvidenceError(f"credit entry ids jump to {entry.id} after {count - 1}")
            head = credit_chain_hash(head, entry)
            if head != entry.chain_hash:
                raise EvidenceError(f"credit entry {entry.id} does not match the chain")
        return count

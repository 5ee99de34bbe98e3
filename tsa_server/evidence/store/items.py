"""Evidence items and their storage records (item_terms): the `ItemStore` protocol and
its SQLite implementation.

Isolation is structural: every method that reads or changes items takes the
organisation id first and puts it in the WHERE clause, so one account's id for another
account's item finds nothing (and reports exactly what a missing id reports). There is
no method that reads an item by id alone. Blob reference counts (for deleting a shared,
deduplicated original) return a number, never an item.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any, Protocol

from tsa_server.accounts.errors import OrganisationNotFound
from tsa_server.accounts.keys import new_id
from tsa_server.accounts.times import dt, ts
from tsa_server.database import SqlConnection
from tsa_server.evidence.errors import InvalidInput, ItemImmutable, ItemNotFound
from tsa_server.evidence.records import (
    Certified,
    Item,
    ItemMode,
    NewItem,
    StorageState,
)
from tsa_server.evidence.rows import (
    item_column_value,
    item_from_row,
)
from tsa_server.evidence.store.base import EvidenceFile

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


def _terms(row: dict[str, Any]) -> dict[str, Any]:
    out = {c: row.get(c) for c in TERMS_COLUMNS}
    for name in _TERMS_INSTANTS:
        out[name] = dt(out[name])
    return out


class ItemStore(Protocol):
    """An organisation's items and their storage records."""

    def insert_item(
        self,
        org_id: str,
        new: NewItem,
        *,
        created_at: datetime | None = None,
        item_id: str | None = None,
    ) -> Item: ...
    def item(self, org_id: str, item_id: str) -> Item | None: ...
    def items(self, org_id: str, *, limit: int = 100, offset: int = 0) -> list[Item]: ...
    def items_by_sha256(self, org_id: str, sha256: str) -> list[Item]: ...
    def count_items(self, org_id: str) -> int: ...
    def count_certified(self, org_id: str, start: datetime, end: datetime) -> int: ...
    def update_item(self, org_id: str, item_id: str, /, **changes: Any) -> Item: ...
    def blob_references(self, blob_key: str) -> int: ...
    def item_terms(self, org_id: str, item_id: str) -> dict[str, Any] | None: ...
    def items_with_terms(
        self, org_id: str, *, holding_original: bool = False
    ) -> list[tuple[Item, dict[str, Any] | None]]: ...


class SqlItemStore(EvidenceFile):
    """The items and storage records of the evidence database."""

    def insert_item(
        self,
        org_id: str,
        new: NewItem,
        *,
        created_at: datetime | None = None,
        item_id: str | None = None,
    ) -> Item:
        """Insert an uncertified item (`item_id`: one chosen ahead, e.g. reserved for)."""
        if not self._organisation_exists(org_id):
            raise OrganisationNotFound(f"no organisation {org_id}")
        item_id = item_id or new_id("itm")
        with self._write() as conn:
            self._insert_item_locked(conn, org_id, item_id, new, created_at)
        item = self.item(org_id, item_id)
        assert item is not None
        return item

    def _insert_item_locked(
        self,
        conn: SqlConnection,
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

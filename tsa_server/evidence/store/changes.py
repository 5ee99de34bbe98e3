"""One change of the fee layer in one transaction: a certified item inserted or an item
changed, its storage record, credit entries under the wallet check and notices together
(REC-3 "one transaction per item"). The `ChangeStore` protocol and its SQLite
implementation, built on the item, credit and notice stores."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

from tsa_server.accounts.times import ts
from tsa_server.database import SqlConnection
from tsa_server.evidence.errors import InvalidInput, ItemImmutable, ItemNotFound
from tsa_server.evidence.records import (
    Appended,
    Certified,
    NewCreditEntry,
    NewItem,
    StoredNotice,
)
from tsa_server.evidence.rows import (
    item_column_value,
)
from tsa_server.evidence.store.credits import CreditCheck, SqlCreditStore
from tsa_server.evidence.store.items import TERMS_COLUMNS, UPDATABLE_ITEM_FIELDS, SqlItemStore
from tsa_server.evidence.store.notices import SqlNoticeStore


class ChangeStore(Protocol):
    """Several aggregates changed in one transaction."""

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
    ) -> list[Appended]: ...


class SqlChangeStore(SqlItemStore, SqlCreditStore, SqlNoticeStore):
    """commit_change over the item, credit and notice tables."""

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
                columns = {n: item_column_value(n, v) for n, v in item_changes.items()}
                assignments = ", ".join(f"{name} = ?" for name in columns)
                try:
                    updated = conn.execute(
                        f"UPDATE items SET {assignments} WHERE org_id = ? AND id = ?",
                        (*columns.values(), org_id, item_id),
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
        self, conn: SqlConnection, org_id: str, item_id: str, terms: dict[str, Any]
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

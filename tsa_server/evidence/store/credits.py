"""Credit entries, append-only and chained (G-6): the `CreditStore` protocol and its
SQLite implementation."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Protocol

from tsa_server.accounts.errors import OrganisationNotFound
from tsa_server.accounts.times import dt, ts
from tsa_server.database import SqlConnection
from tsa_server.evidence.errors import EvidenceError, IdempotencyConflict, ItemNotFound
from tsa_server.evidence.records import (
    Appended,
    CreditEntry,
    NewCreditEntry,
    canonical_json,
)
from tsa_server.evidence.rows import (
    CHAIN_GENESIS,
    credit_chain_hash,
    credit_from_row,
)
from tsa_server.evidence.store.base import EvidenceFile

#: check(org_id, earlier entries, added entries): raise to refuse (see append_credit_entries)
CreditCheck = Callable[[str, list[CreditEntry], list[CreditEntry]], None]


class CreditStore(Protocol):
    """An organisation's append-only credit entries."""

    def append_credit_entries(
        self, entries: Iterable[NewCreditEntry], *, check: CreditCheck | None = None
    ) -> list[Appended]: ...
    def credit_entries(
        self, org_id: str, *, after_id: int = 0, limit: int | None = None
    ) -> list[CreditEntry]: ...
    def verify_credit_chain(self) -> int: ...


class SqlCreditStore(EvidenceFile):
    """The chained credit_entries table."""

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
        conn: SqlConnection,
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

    def _check_references(self, new: NewCreditEntry) -> None:
        if not self._organisation_exists(new.org_id):
            raise OrganisationNotFound(f"no organisation {new.org_id}")
        if new.item_id is not None:
            row = self._row("SELECT org_id FROM items WHERE id = ?", (new.item_id,))
            if row is not None and row["org_id"] != new.org_id:
                # Reported like a missing item: ids reveal nothing across organisations.
                raise ItemNotFound(f"no item {new.item_id}")

    def credit_entries(
        self, org_id: str, *, after_id: int = 0, limit: int | None = None
    ) -> list[CreditEntry]:
        sql = "SELECT * FROM credit_entries WHERE org_id = ? AND id > ? ORDER BY id"
        if limit is None:
            rows = self._rows(sql, (org_id, after_id))
        else:
            rows = self._rows(sql + " LIMIT ?", (org_id, after_id, limit))
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

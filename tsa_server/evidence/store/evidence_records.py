"""The RFC 4998 evidence record of each certified item (evidence/ers/): the
`EvidenceRecordStore` protocol and its SQL implementation over the `evidence_records`
table (SQLite: evidence/schema.py; PostgreSQL: migration 4 of schema_postgres.py).

One row per item: the record (DER), its current hash algorithm, `group_key` (SHA-256 of
its last ArchiveTimeStamp's timeStamp: the records one timestamp renewal renews
together), `renew_by` (the end of that timestamp's TSA certificate), and how many chains
and archive timestamps it has. A record is replaced only by its renewal (the schema
refuses fewer archive timestamps, and deleting one); isolation as in items.py: every
method takes the organisation id first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from tsa_server.accounts.times import dt, ts
from tsa_server.evidence.store.base import EvidenceFile


@dataclass(frozen=True)
class RecordCandidate:
    """A certified item and its digests (what a record's leaves are made of)."""

    item_id: str
    sha256: str
    sha512: str | None


@dataclass(frozen=True)
class RecordRow:
    """One item's evidence record as stored."""

    item_id: str
    record: bytes
    algorithm: str
    group_key: str
    renew_by: datetime | None
    chains: int
    stamps: int
    sha256: str = ""  # the item's digests, filled when read (hash-tree renewal)
    sha512: str | None = None


class EvidenceRecordStore(Protocol):
    """Evidence records of an organisation's items."""

    def items_without_record(self, org_id: str, limit: int) -> list[RecordCandidate]: ...

    def put_evidence_records(self, org_id: str, rows: Sequence[RecordRow]) -> None: ...

    def evidence_record(self, org_id: str, item_id: str) -> bytes | None: ...

    def records_renew_by(self, org_id: str, before: datetime, limit: int) -> list[RecordRow]: ...

    def records_to_rehash(
        self, org_id: str, algorithms: Sequence[str], limit: int
    ) -> list[RecordRow]: ...


_COLUMNS = (
    "r.item_id, r.record, r.algorithm, r.group_key, r.renew_by, r.chains, r.stamps,"
    " i.sha256, i.sha512"
)


def _row(row: dict[str, Any]) -> RecordRow:
    return RecordRow(
        item_id=row["item_id"],
        record=bytes(row["record"]),
        algorithm=row["algorithm"],
        group_key=row["group_key"],
        renew_by=dt(row["renew_by"]),
        chains=row["chains"],
        stamps=row["stamps"],
        sha256=row["sha256"],
        sha512=row["sha512"],
    )


class SqlEvidenceRecordStore(EvidenceFile):
    """The evidence_records table."""

    def items_without_record(self, org_id: str, limit: int) -> list[RecordCandidate]:
        """Certified items of the organisation without a record, oldest first."""
        rows = self._rows(
            "SELECT i.id, i.sha256, i.sha512 FROM items i"
            " LEFT JOIN evidence_records r ON r.item_id = i.id"
            " WHERE i.org_id = ? AND i.token IS NOT NULL AND r.item_id IS NULL"
            " ORDER BY i.certified_at, i.id LIMIT ?",
            (org_id, limit),
        )
        return [RecordCandidate(r["id"], r["sha256"], r["sha512"]) for r in rows]

    def put_evidence_records(self, org_id: str, rows: Sequence[RecordRow]) -> None:
        """Insert or replace (by a renewal) records, all in one transaction."""
        now = ts(self.now())
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO evidence_records (item_id, org_id, record, algorithm, group_key,"
                " renew_by, chains, stamps, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (item_id) DO UPDATE SET record = excluded.record,"
                " algorithm = excluded.algorithm, group_key = excluded.group_key,"
                " renew_by = excluded.renew_by, chains = excluded.chains,"
                " stamps = excluded.stamps, updated_at = excluded.updated_at"
                " WHERE evidence_records.org_id = excluded.org_id",
                [
                    (
                        r.item_id,
                        org_id,
                        r.record,
                        r.algorithm,
                        r.group_key,
                        ts(r.renew_by),
                        r.chains,
                        r.stamps,
                        now,
                        now,
                    )
                    for r in rows
                ],
            )

    def evidence_record(self, org_id: str, item_id: str) -> bytes | None:
        row = self._row(
            "SELECT record FROM evidence_records WHERE org_id = ? AND item_id = ?",
            (org_id, item_id),
        )
        return None if row is None else bytes(row["record"])

    def records_renew_by(self, org_id: str, before: datetime, limit: int) -> list[RecordRow]:
        """Records whose last TSA certificate ends before `before`, soonest first."""
        rows = self._rows(
            f"SELECT {_COLUMNS} FROM evidence_records r JOIN items i ON i.id = r.item_id"
            " WHERE r.org_id = ? AND r.renew_by IS NOT NULL AND r.renew_by < ?"
            " ORDER BY r.renew_by, r.group_key, r.item_id LIMIT ?",
            (org_id, ts(before), limit),
        )
        return [_row(r) for r in rows]

    def records_to_rehash(
        self, org_id: str, algorithms: Sequence[str], limit: int
    ) -> list[RecordRow]:
        """Records whose current hash algorithm is one of `algorithms` and whose item's
        SHA-512 is known (hash-tree renewal re-hashes with SHA-512; a hash-only item
        deposited without it cannot be re-hashed: its record is timestamp-renewed)."""
        if not algorithms:
            return []
        marks = ", ".join("?" for _ in algorithms)
        rows = self._rows(
            f"SELECT {_COLUMNS} FROM evidence_records r JOIN items i ON i.id = r.item_id"
            f" WHERE r.org_id = ? AND r.algorithm IN ({marks}) AND i.sha512 IS NOT NULL"
            " ORDER BY r.item_id LIMIT ?",
            (org_id, *algorithms, limit),
        )
        return [_row(r) for r in rows]

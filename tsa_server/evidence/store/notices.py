"""Notices (reminders and other messages to an organisation, sent once): the
`NoticeStore` protocol and its SQLite implementation."""

from __future__ import annotations

from typing import Any, Protocol

from tsa_server.accounts.times import dt, ts
from tsa_server.database import SqlConnection
from tsa_server.evidence.records import (
    StoredNotice,
)
from tsa_server.evidence.store.base import EvidenceFile


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


class NoticeStore(Protocol):
    """An organisation's notices."""

    def notices(self, org_id: str, *, limit: int = 100) -> list[StoredNotice]: ...


class SqlNoticeStore(EvidenceFile):
    """The notices table."""

    def _put_notice_locked(self, conn: SqlConnection, n: StoredNotice) -> None:
        conn.execute(
            "INSERT INTO notices (org_id, key, kind, at, subject, target, units,"
            " covered, detail, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (org_id, key) DO NOTHING",
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

    def notices(self, org_id: str, *, limit: int = 100) -> list[StoredNotice]:
        """The organisation's notices, newest first."""
        rows = self._rows(
            "SELECT * FROM notices WHERE org_id = ? ORDER BY id DESC LIMIT ?", (org_id, limit)
        )
        return [notice_from_row(r) for r in rows]

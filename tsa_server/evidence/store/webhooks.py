"""Webhooks and their deliveries (REC-10; delivery in evidence/webhooks.py and
webhook_dispatch.py): the `WebhookStore` protocol and its SQLite implementation."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from tsa_server.accounts.times import ts
from tsa_server.evidence.store.base import EvidenceFile

#: SQL: the webhook w's events (space-separated kinds; NULL: all) include notice n's.
_WEBHOOK_WANTS = "(w.events IS NULL OR instr(' ' || w.events || ' ', ' ' || n.kind || ' ') > 0)"


class WebhookStore(Protocol):
    """An organisation's webhook and the state of its deliveries."""

    def put_webhook(
        self, org_id: str, url: str, events: str | None, secret: str, now: datetime
    ) -> bool: ...
    def webhook(self, org_id: str) -> dict[str, Any] | None: ...
    def webhook_orgs(self) -> list[str]: ...
    def delete_webhook(self, org_id: str) -> bool: ...
    def due_deliveries(self, org_id: str, now: datetime, limit: int) -> list[dict[str, Any]]: ...
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
    ) -> None: ...


class SqlWebhookStore(EvidenceFile):
    """The webhooks and webhook_deliveries tables."""

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
            " COUNT(*) FILTER (WHERE d.delivered_at IS NULL AND d.given_up_at IS NULL) AS pending"
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
                " ON CONFLICT (notice_id) DO UPDATE SET attempts = webhook_deliveries.attempts + 1,"
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

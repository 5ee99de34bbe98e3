"""Idempotency keys of deposit requests (evidence/idempotency.py): the
`IdempotencyStore` protocol and its SQLite implementation."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from tsa_server.accounts.times import ts
from tsa_server.evidence.store.base import EvidenceFile


class IdempotencyStore(Protocol):
    """Claimed Idempotency-Keys and the answers kept for them."""

    def claim_idempotency_key(
        self, org_id: str, key: str, request_sha256: str, now: datetime, expires_at: datetime
    ) -> dict[str, Any] | None: ...
    def idempotency_key(self, org_id: str, key: str, now: datetime) -> dict[str, Any] | None: ...
    def finish_idempotency_key(self, org_id: str, key: str, status: int, body: str) -> None: ...
    def release_idempotency_key(self, org_id: str, key: str) -> None: ...


class SqlIdempotencyStore(EvidenceFile):
    """The idempotency_keys table."""

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

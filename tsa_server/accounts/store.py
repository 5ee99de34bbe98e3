"""Where organisations, members and API keys are kept: the `AccountStore` protocol the
account operations are typed with, and its SQLite implementation over the evidence
database file (accounts/sqlite.py; the tables and rules are accounts/schema.py's).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from tsa_server.accounts.errors import PermissionDenied
from tsa_server.accounts.key_rules import Role, Scope
from tsa_server.accounts.keys import ApiKey, Member, Organisation
from tsa_server.accounts.schema import CREATOR_BOUND, create_account_schema
from tsa_server.accounts.times import dt, ts
from tsa_server.database.tables import Tables


class AccountStore(Protocol):
    """What `Accounts` needs from a store (SqlAccountStore implements it)."""

    def insert_organisation(self, org: Organisation) -> None: ...
    def organisation(self, org_id: str) -> Organisation | None: ...
    def organisations(self) -> list[Organisation]: ...
    def insert_member(self, member: Member) -> None: ...
    def member(self, org_id: str, member_id: str) -> Member | None: ...
    def members(self, org_id: str) -> list[Member]: ...
    def insert_api_key(self, key: ApiKey, secret_hash: bytes) -> None: ...
    def api_key_for_authentication(self, key_id: str) -> tuple[ApiKey, bytes] | None: ...
    def api_key(self, org_id: str, key_id: str) -> ApiKey | None: ...
    def api_key_org(self, key_id: str) -> str | None: ...
    def api_keys(self, org_id: str) -> list[ApiKey]: ...
    def count_active_api_keys(self, org_id: str, now: datetime) -> int: ...
    def revoke_api_key(
        self, org_id: str, key_id: str, at: datetime, by: str
    ) -> tuple[ApiKey, list[ApiKey]] | None: ...
    def touch_api_keys(self, uses: Mapping[str, datetime]) -> None: ...


def api_key_from_row(row: dict[str, Any]) -> ApiKey:
    return ApiKey(
        id=row["id"],
        org_id=row["org_id"],
        name=row["name"],
        role=Role(row["role"]),
        scopes=frozenset(Scope(s) for s in row["scopes"].split()),
        created_at=dt(row["created_at"]),
        created_by=row["created_by"],
        member_id=row["member_id"],
        expires_at=dt(row["expires_at"]),
        revoked_at=dt(row["revoked_at"]),
        revoked_by=row["revoked_by"],
        last_used_at=dt(row["last_used_at"]),
        revoked_via=row.get("revoked_via"),
    )


class SqlAccountStore(Tables):
    """The organisations, members and API keys of the evidence database."""

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        create_account_schema(conn)

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
                    " SELECT id FROM api_keys WHERE created_by = ? AND org_id = ?"
                    " UNION SELECT k.id FROM api_keys k JOIN tree ON k.created_by = tree.id)"
                    " UPDATE api_keys SET revoked_at = ?, revoked_by = ?,"
                    " revoked_via = created_by"
                    " WHERE id IN (SELECT id FROM tree) AND org_id = ? AND revoked_at IS NULL"
                    " RETURNING id",
                    (key_id, org_id, ts(at), by, org_id),
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
                "UPDATE api_keys SET last_used_at = ?"
                " WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
                [(ts(at), key_id, ts(at)) for key_id, at in uses.items()],
            )

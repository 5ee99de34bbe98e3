"""API keys in the evidence database: the trigger that bounds a key by its creator, and
the one-time migration of databases made before keys were bounded (issue 13).

schema.py makes the tables and the other rules; this part is the key tree's
(evidence/key_rules.py states the rules themselves).
"""

from __future__ import annotations

import sqlite3

from tsa_server.evidence.key_rules import ROLE_RANK, Scope

#: The message of the trigger that bounds a key by its creator (store.py maps it).
CREATOR_BOUND = "a key never outranks or outlives the key that created it"


def _rank(column: str) -> str:
    cases = " ".join(f"WHEN '{role}' THEN {rank}" for role, rank in ROLE_RANK.items())
    return f"(CASE {column} {cases} ELSE 99 END)"


def _holds(scopes: str, scope: Scope) -> str:
    return f"instr(' ' || {scopes} || ' ', ' {scope} ') > 0"


# A key made by a key (created_by names a key: "cli" names none) stays within its creator.
KEY_CREATOR_TRIGGER = f"""
CREATE TRIGGER IF NOT EXISTS api_keys_within_creator BEFORE INSERT ON api_keys
WHEN EXISTS (SELECT 1 FROM api_keys p WHERE p.id = NEW.created_by AND (
  p.org_id IS NOT NEW.org_id OR p.revoked_at IS NOT NULL
  OR {_rank("NEW.role")} > {_rank("p.role")}
  OR (p.expires_at IS NOT NULL AND (NEW.expires_at IS NULL OR NEW.expires_at > p.expires_at))
  OR {" OR ".join(f"({_holds('NEW.scopes', s)} AND NOT {_holds('p.scopes', s)})" for s in Scope)}))
BEGIN SELECT RAISE(ABORT, '{CREATOR_BOUND}'); END;
CREATE INDEX IF NOT EXISTS idx_api_keys_created_by ON api_keys (created_by);
"""

# SQL's own clock in the store's format (times.ts): 2024-03-01T02:00:00.000Z.
_SQL_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"


def migrate_api_keys(conn: sqlite3.Connection) -> None:
    """Databases made before keys were bounded by their creators (issue 13) gain the
    revoked_via column, and their keys are brought under the rules once: a key never
    expires after its creator (its expiry is lowered to the creator's), and a key whose
    creator is revoked is revoked now, by "migration", via its creator. (Scopes or roles
    beyond a creator's, made before the rule, are left for the operator to review.)"""
    if _has_revoked_via(conn):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if not _has_revoked_via(conn):  # another process may have migrated meanwhile
            conn.execute("DROP TRIGGER IF EXISTS api_keys_fixed")  # re-made with revoked_via
            conn.execute("ALTER TABLE api_keys ADD COLUMN revoked_via TEXT")
            _run_until_done(
                conn,
                "UPDATE api_keys SET expires_at = (SELECT p.expires_at FROM api_keys p"
                " WHERE p.id = api_keys.created_by) WHERE EXISTS (SELECT 1 FROM api_keys p"
                " WHERE p.id = api_keys.created_by AND p.expires_at IS NOT NULL"
                " AND (api_keys.expires_at IS NULL OR api_keys.expires_at > p.expires_at))",
            )
            _run_until_done(
                conn,
                f"UPDATE api_keys SET revoked_at = {_SQL_NOW}, revoked_by = 'migration',"
                " revoked_via = created_by WHERE revoked_at IS NULL AND created_by IN"
                " (SELECT id FROM api_keys WHERE revoked_at IS NOT NULL)",
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _run_until_done(conn: sqlite3.Connection, sql: str) -> None:
    # Each pass moves one generation down the key tree, which has no cycles.
    while conn.execute(sql).rowcount:
        pass


def _has_revoked_via(conn: sqlite3.Connection) -> bool:
    return any(row[1] == "revoked_via" for row in conn.execute("PRAGMA table_info(api_keys)"))

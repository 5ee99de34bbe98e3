"""The accounts' part of the evidence database: the organisations, members and api_keys
tables and their rules as triggers, the trigger that bounds a key by its creator, and the
one-time migration of databases made before keys were bounded (issue 13).

The rules hold for every writer (the server, the CLI, an operator's sqlite3 shell):
organisations are never deleted; API keys are revoked, never deleted, and a revocation
is final; a key's hash, role, scopes and expiry never change; a key made by another key
(``created_by``) holds no higher role, no scope and no later expiry than its creator,
which must be an unrevoked key of the same organisation (accounts/key_rules.py states
the rules themselves). evidence/schema.py makes the rest of the file after this part.
"""

from __future__ import annotations

import sqlite3

import sqlite_utils

from tsa_server.accounts.key_rules import ROLE_RANK, Scope
from tsa_server.accounts.people_schema import create_people_schema

_ORG_FK = [("org_id", "organisations", "id")]

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


_TRIGGERS = """
CREATE TRIGGER IF NOT EXISTS organisations_no_delete BEFORE DELETE ON organisations
BEGIN SELECT RAISE(ABORT, 'organisations are never deleted'); END;
CREATE TRIGGER IF NOT EXISTS organisations_fixed BEFORE UPDATE ON organisations
WHEN NEW.id IS NOT OLD.id OR NEW.created_at IS NOT OLD.created_at
BEGIN SELECT RAISE(ABORT, 'an organisation id never changes'); END;

CREATE TRIGGER IF NOT EXISTS members_fixed BEFORE UPDATE ON members
WHEN NEW.id IS NOT OLD.id OR NEW.org_id IS NOT OLD.org_id
BEGIN SELECT RAISE(ABORT, 'a member stays in its organisation'); END;

CREATE TRIGGER IF NOT EXISTS api_keys_no_delete BEFORE DELETE ON api_keys
BEGIN SELECT RAISE(ABORT, 'API keys are revoked, never deleted'); END;
CREATE TRIGGER IF NOT EXISTS api_keys_fixed BEFORE UPDATE ON api_keys
WHEN NEW.id IS NOT OLD.id OR NEW.org_id IS NOT OLD.org_id
  OR NEW.secret_hash IS NOT OLD.secret_hash OR NEW.role IS NOT OLD.role
  OR NEW.scopes IS NOT OLD.scopes OR NEW.created_at IS NOT OLD.created_at
  OR NEW.created_by IS NOT OLD.created_by OR NEW.member_id IS NOT OLD.member_id
  OR NEW.expires_at IS NOT OLD.expires_at
  OR (OLD.revoked_at IS NOT NULL
      AND (NEW.revoked_at IS NOT OLD.revoked_at OR NEW.revoked_by IS NOT OLD.revoked_by
           OR NEW.revoked_via IS NOT OLD.revoked_via))
  OR (NEW.revoked_via IS NOT NULL AND NEW.revoked_at IS NULL)
BEGIN SELECT RAISE(ABORT, 'an API key only gains last_used_at and one revocation'); END;

"""


def create_account_schema(conn: sqlite3.Connection) -> None:
    """Make the accounts' tables and rules where missing, and migrate old key tables."""
    db = sqlite_utils.Database(conn)
    tables = set(db.table_names())
    if "organisations" not in tables:
        db.table("organisations").create(
            {"id": str, "name": str, "created_at": str},
            pk="id",
            not_null={"name", "created_at"},
        )
    if "members" not in tables:
        db.table("members").create(
            {"id": str, "org_id": str, "name": str, "role": str, "created_at": str},
            pk="id",
            not_null={"org_id", "name", "role", "created_at"},
            foreign_keys=_ORG_FK,
        )
        db.table("members").create_index(["org_id"])
    if "api_keys" not in tables:
        db.table("api_keys").create(
            {
                "id": str,
                "org_id": str,
                "name": str,
                "role": str,
                "scopes": str,  # space-separated, sorted
                "secret_hash": bytes,  # SHA-256 (accounts.hash_secret); never the secret
                "created_at": str,
                "created_by": str,
                "member_id": str,
                "expires_at": str,
                "revoked_at": str,
                "revoked_by": str,
                "last_used_at": str,
                "revoked_via": str,  # the creator whose revocation revoked this key
            },
            pk="id",
            not_null={"org_id", "name", "role", "scopes", "secret_hash", "created_at"},
            foreign_keys=[*_ORG_FK, ("member_id", "members", "id")],
        )
        db.table("api_keys").create_index(["org_id"])
    migrate_api_keys(conn)
    conn.executescript(_TRIGGERS + KEY_CREATOR_TRIGGER)
    create_people_schema(conn)  # who signs in to the web pages (accounts/people.py)


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

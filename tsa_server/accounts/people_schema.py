"""The tables of people who sign in to the web pages (accounts/people.py): a member's
login and password hash, and the signed-in sessions, for the SQLite file
(`create_people_schema`, called by accounts/schema.py) and PostgreSQL (`PEOPLE_MIGRATION`,
appended to the evidence database's migrations in evidence/schema_postgres.py).

A session row holds the SHA-256 of its id, never the id: a copy of the database does
not let anyone sign in as somebody. A password is kept only as its argon2id hash.
"""

from __future__ import annotations

import sqlite3

_PEOPLE = """
CREATE TABLE IF NOT EXISTS people (
    member_id TEXT PRIMARY KEY REFERENCES members (id),
    org_id TEXT NOT NULL REFERENCES organisations (id),
    login TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    password_changed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS web_sessions (
    id_hash TEXT PRIMARY KEY,
    member_id TEXT NOT NULL REFERENCES members (id),
    org_id TEXT NOT NULL REFERENCES organisations (id),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_web_sessions_member ON web_sessions (member_id);
CREATE INDEX IF NOT EXISTS idx_web_sessions_expires ON web_sessions (expires_at);
"""

_SQLITE_RULES = """
CREATE TRIGGER IF NOT EXISTS people_fixed BEFORE UPDATE ON people
WHEN NEW.member_id IS NOT OLD.member_id OR NEW.org_id IS NOT OLD.org_id
BEGIN SELECT RAISE(ABORT, 'a person stays the member of one organisation'); END;
"""

_T = 'text COLLATE "C"'

# PostgreSQL: the same tables (text sorts bytewise, as in the other migrations).
PEOPLE_MIGRATION = f"""
CREATE TABLE people (
    member_id {_T} PRIMARY KEY REFERENCES members (id),
    org_id {_T} NOT NULL REFERENCES organisations (id),
    login {_T} NOT NULL UNIQUE,
    password_hash text NOT NULL,
    created_at {_T} NOT NULL,
    password_changed_at {_T} NOT NULL
);
CREATE TABLE web_sessions (
    id_hash {_T} PRIMARY KEY,
    member_id {_T} NOT NULL REFERENCES members (id),
    org_id {_T} NOT NULL REFERENCES organisations (id),
    created_at {_T} NOT NULL,
    expires_at {_T} NOT NULL
);
CREATE INDEX web_sessions_member ON web_sessions (member_id);
CREATE INDEX web_sessions_expires ON web_sessions (expires_at);
CREATE TRIGGER people_fixed BEFORE UPDATE ON people FOR EACH ROW
WHEN (NEW.member_id IS DISTINCT FROM OLD.member_id OR NEW.org_id IS DISTINCT FROM OLD.org_id)
EXECUTE FUNCTION tsa_refuse('a person stays the member of one organisation');
"""


def create_people_schema(conn: sqlite3.Connection) -> None:
    """Make the people and session tables where missing (SQLite)."""
    conn.executescript(_PEOPLE + _SQLITE_RULES)

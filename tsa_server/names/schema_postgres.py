"""The names registry's tables on PostgreSQL ([database] url): the records, bindings,
sequence and time-stamped events of the registry (names/sql_store.py) and the
administrators' policy overlay (names/policy_store.py), with the SQLite schema's rules
as triggers. Never edit a migration once released: add the next one."""

from __future__ import annotations

from ledger.store.postgres_schema import Schema

T = 'text COLLATE "C"'


def _append_only(table: str, message: str) -> str:
    return "".join(
        f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} FOR EACH {each} "
        f"EXECUTE FUNCTION tsa_refuse('{message}');\n"
        for op, each in (("UPDATE", "ROW"), ("DELETE", "ROW"), ("TRUNCATE", "STATEMENT"))
    )


_NAMES = f"""
CREATE OR REPLACE FUNCTION tsa_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'integrity_constraint_violation';
END $$;

CREATE TABLE records (key {T} PRIMARY KEY, handle text, status {T}, record text);
CREATE TABLE bindings (shop_id {T} NOT NULL, key {T} NOT NULL, PRIMARY KEY (shop_id, key));
CREATE INDEX bindings_key ON bindings (key);
CREATE TABLE meta (name {T} PRIMARY KEY, value bigint);
INSERT INTO meta (name, value) VALUES ('last_seq', 0);
CREATE TABLE events (
    seq bigint PRIMARY KEY, kind {T} NOT NULL, key {T} NOT NULL, handle text NOT NULL,
    at {T} NOT NULL, canonical bytea NOT NULL, sha256 {T} NOT NULL, token bytea NOT NULL,
    gen_time {T} NOT NULL, ops_index bigint);
CREATE INDEX events_key ON events (key);
{_append_only("events", "events are append-only")}
CREATE TRIGGER events_need_token BEFORE INSERT ON events FOR EACH ROW
WHEN (NEW.token IS NULL OR octet_length(NEW.token) = 0)
EXECUTE FUNCTION tsa_refuse('an event is stored with its time-stamp token');

CREATE TABLE policy_words (
    list {T} NOT NULL, word {T} NOT NULL, op {T} NOT NULL CHECK (op IN ('add', 'remove')),
    PRIMARY KEY (list, word));
CREATE TABLE policy_weights (metric {T} PRIMARY KEY, value text NOT NULL);
CREATE TABLE policy_changes (
    version bigint PRIMARY KEY, at {T} NOT NULL, by_org {T} NOT NULL, by_key {T} NOT NULL,
    canonical bytea NOT NULL, sha256 {T} NOT NULL, token bytea NOT NULL,
    gen_time {T} NOT NULL, ops_index bigint);
{_append_only("policy_changes", "policy changes are append-only")}
CREATE TRIGGER policy_changes_need_token BEFORE INSERT ON policy_changes FOR EACH ROW
WHEN (octet_length(NEW.token) = 0)
EXECUTE FUNCTION tsa_refuse('a policy change is stored with its time-stamp token');
"""

NAMES = Schema("names", (_NAMES,), "names_schema_version")

"""The evidence database's schema on PostgreSQL ([database] url): the same tables and
the same rules as the SQLite file's (accounts/schema.py, evidence/schema.py), as
versioned migrations. The rules are triggers, the last line of defence for every writer
(the server, the CLI, an operator's psql), with the SQLite triggers' messages.

Text columns sort bytewise (COLLATE "C"), as SQLite's do, whatever the database's locale:
the stores page by them. Never edit a migration once released: add the next one.
"""

from __future__ import annotations

from ledger.store.postgres_schema import Schema
from tsa_server.accounts.key_rules import ROLE_RANK, Scope
from tsa_server.accounts.people_schema import PEOPLE_MIGRATION  # 5: web sign-in
from tsa_server.accounts.schema import CREATOR_BOUND

T = 'text COLLATE "C"'


def _rank(column: str) -> str:
    cases = " ".join(f"WHEN '{role}' THEN {rank}" for role, rank in ROLE_RANK.items())
    return f"(CASE {column} {cases} ELSE 99 END)"


def _holds(scopes: str, scope: Scope) -> str:
    return f"strpos(' ' || {scopes} || ' ', ' {scope} ') > 0"


def _refuse(name: str, table: str, when: str, message: str, event: str = "UPDATE") -> str:
    condition = f"WHEN ({when}) " if when else ""
    message = message.replace("'", "''")
    return (
        f"CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW {condition}"
        f"EXECUTE FUNCTION tsa_refuse('{message}');\n"
    )


def _append_only(table: str, message: str, *, update: bool = True) -> str:
    sql = _refuse(f"{table}_no_delete", table, "", message, "DELETE")
    sql += (
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} FOR EACH STATEMENT "
        f"EXECUTE FUNCTION tsa_refuse('{message.replace(chr(39), chr(39) * 2)}');\n"
    )
    if update:
        sql += _refuse(f"{table}_no_update", table, "", message)
    return sql


def _changed(*columns: str) -> str:
    return " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in columns)


_ACCOUNTS = f"""
CREATE OR REPLACE FUNCTION tsa_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'integrity_constraint_violation';
END $$;

CREATE TABLE organisations (
    id {T} PRIMARY KEY, name text NOT NULL, created_at {T} NOT NULL);
CREATE TABLE members (
    id {T} PRIMARY KEY, org_id {T} NOT NULL REFERENCES organisations (id),
    name text NOT NULL, role {T} NOT NULL, created_at {T} NOT NULL);
CREATE INDEX members_org ON members (org_id);
CREATE TABLE api_keys (
    id {T} PRIMARY KEY, org_id {T} NOT NULL REFERENCES organisations (id),
    name text NOT NULL, role {T} NOT NULL,
    scopes {T} NOT NULL,  -- space-separated, sorted
    secret_hash bytea NOT NULL,  -- SHA-256 (accounts.hash_secret); never the secret
    created_at {T} NOT NULL, created_by {T}, member_id {T} REFERENCES members (id),
    expires_at {T}, revoked_at {T}, revoked_by {T}, last_used_at {T},
    revoked_via {T});  -- the creator whose revocation revoked this key
CREATE INDEX api_keys_org ON api_keys (org_id);
CREATE INDEX api_keys_created_by ON api_keys (created_by);

{_append_only("organisations", "organisations are never deleted", update=False)}
{
    _refuse(
        "organisations_fixed",
        "organisations",
        _changed("id", "created_at"),
        "an organisation id never changes",
    )
}
{
    _refuse(
        "members_fixed", "members", _changed("id", "org_id"), "a member stays in its organisation"
    )
}
{_append_only("api_keys", "API keys are revoked, never deleted", update=False)}
{
    _refuse(
        "api_keys_fixed",
        "api_keys",
        _changed(
            "id",
            "org_id",
            "secret_hash",
            "role",
            "scopes",
            "created_at",
            "created_by",
            "member_id",
            "expires_at",
        )
        + " OR (OLD.revoked_at IS NOT NULL AND ("
        + _changed("revoked_at", "revoked_by", "revoked_via")
        + "))"
        + " OR (NEW.revoked_via IS NOT NULL AND NEW.revoked_at IS NULL)",
        "an API key only gains last_used_at and one revocation",
    )
}

-- A key made by a key (created_by names a key: "cli" names none) stays within its creator.
CREATE FUNCTION api_keys_within_creator() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM api_keys p WHERE p.id = NEW.created_by AND (
        p.org_id IS DISTINCT FROM NEW.org_id OR p.revoked_at IS NOT NULL
        OR {_rank("NEW.role")} > {_rank("p.role")}
        OR (p.expires_at IS NOT NULL
            AND (NEW.expires_at IS NULL OR NEW.expires_at > p.expires_at))
        OR {
    " OR ".join(f"({_holds('NEW.scopes', s)} AND NOT {_holds('p.scopes', s)})" for s in Scope)
}))
    THEN
        RAISE EXCEPTION '{CREATOR_BOUND}' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER api_keys_within_creator BEFORE INSERT ON api_keys
FOR EACH ROW EXECUTE FUNCTION api_keys_within_creator();
"""

# A row's storage and certification columns must agree (evidence/schema.py).
_ITEM_CONSISTENT = """(
  (NEW.mode = 'HASH_ONLY' AND NEW.blob_key IS NULL AND NEW.storage_state IS NULL)
  OR (NEW.mode = 'STORED' AND NEW.storage_state IN ('active', 'expired')
      AND NEW.blob_key IS NOT DISTINCT FROM NEW.sha256)
  OR (NEW.mode = 'STORED' AND NEW.storage_state IN ('original_deleted', 'purged')
      AND NEW.blob_key IS NULL)
) AND (
  (NEW.token IS NULL AND NEW.ledger_index IS NULL AND NEW.serial IS NULL
   AND NEW.certified_at IS NULL)
  OR (NEW.token IS NOT NULL AND NEW.ledger_index IS NOT NULL AND NEW.serial IS NOT NULL
      AND NEW.certified_at IS NOT NULL)
)"""

_EVIDENCE = f"""
CREATE TABLE items (
    id {T} PRIMARY KEY, org_id {T} NOT NULL REFERENCES organisations (id),
    mode {T} NOT NULL, sha256 {T} NOT NULL, sha512 {T}, sm3 {T}, size bigint,
    file_name text, media_type text, title text, statement text, depositor text,
    tags text NOT NULL, token bytea, ledger_index bigint, serial {T}, certified_at {T},
    created_at {T} NOT NULL, blob_key {T}, storage_state {T});
CREATE INDEX items_org_created ON items (org_id, created_at);
CREATE INDEX items_org_sha256 ON items (org_id, sha256);
CREATE INDEX items_blob_key ON items (blob_key);
CREATE INDEX items_org_certified ON items (org_id, certified_at);

CREATE TABLE credit_entries (
    id bigint PRIMARY KEY, org_id {T} NOT NULL REFERENCES organisations (id),
    kind {T} NOT NULL, units bigint NOT NULL, lot_id {T}, item_id {T}, period bigint,
    idempotency_key {T} NOT NULL, created_at {T} NOT NULL, note text, record text,
    chain_hash bytea NOT NULL);
CREATE UNIQUE INDEX credit_entries_org_key ON credit_entries (org_id, idempotency_key);
CREATE INDEX credit_entries_org_id ON credit_entries (org_id, id);

CREATE TABLE item_terms (
    item_id {T} PRIMARY KEY REFERENCES items (id),
    org_id {T} NOT NULL REFERENCES organisations (id),
    epoch {T} NOT NULL, work_content text NOT NULL, handle {T} NOT NULL,
    record_sha256 {T} NOT NULL, ops_index bigint, term_number bigint, anchor {T},
    base_months bigint, period_months bigint, fee bigint, prepaid bigint, period bigint,
    status {T}, since {T}, auto_renew bigint, expires_at {T}, updated_at {T} NOT NULL);
CREATE INDEX item_terms_org_status ON item_terms (org_id, status);

CREATE TABLE notices (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    org_id {T} NOT NULL REFERENCES organisations (id),
    key {T} NOT NULL, kind {T} NOT NULL, at {T} NOT NULL, subject text NOT NULL,
    target {T}, units bigint, covered bigint, detail text, created_at {T} NOT NULL);
CREATE UNIQUE INDEX notices_org_key ON notices (org_id, key);

CREATE TABLE idempotency_keys (
    org_id {T} NOT NULL REFERENCES organisations (id), key {T} NOT NULL,
    request_sha256 {T} NOT NULL, status bigint, body text,
    created_at {T} NOT NULL, expires_at {T} NOT NULL,
    PRIMARY KEY (org_id, key));
CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at);

CREATE TABLE webhooks (
    org_id {T} PRIMARY KEY REFERENCES organisations (id), url text NOT NULL,
    events {T}, secret text NOT NULL, after_notice_id bigint NOT NULL,
    created_at {T} NOT NULL, updated_at {T} NOT NULL);
CREATE TABLE webhook_deliveries (
    notice_id bigint PRIMARY KEY REFERENCES notices (id),
    org_id {T} NOT NULL REFERENCES organisations (id),
    attempts bigint NOT NULL, first_attempt_at {T} NOT NULL, last_attempt_at {T} NOT NULL,
    next_attempt_at {T}, last_status bigint, last_error text, delivered_at {T},
    given_up_at {T});
CREATE INDEX webhook_deliveries_org ON webhook_deliveries (org_id, notice_id);

{_append_only("items", "evidence items are never deleted, only their originals", update=False)}
{
    _refuse(
        "items_fixed",
        "items",
        _changed("id", "org_id", "mode", "sha256", "sha512", "sm3", "size", "created_at"),
        "an item's identity and digests never change",
    )
}
{
    _refuse(
        "items_certified_frozen",
        "items",
        "OLD.token IS NOT NULL AND ("
        + _changed(
            "token",
            "ledger_index",
            "serial",
            "certified_at",
            "file_name",
            "media_type",
            "title",
            "statement",
            "depositor",
        )
        + ")",
        "a certified item's token and statement never change",
    )
}
{
    _refuse(
        "items_consistent_insert",
        "items",
        f"NOT COALESCE({_ITEM_CONSISTENT}, false)",
        "item mode, original, storage state and token disagree",
        "INSERT",
    )
}
{
    _refuse(
        "items_consistent_update",
        "items",
        f"NOT COALESCE({_ITEM_CONSISTENT}, false)",
        "item mode, original, storage state and token disagree",
    )
}

{_append_only("credit_entries", "credit entries are append-only")}
CREATE FUNCTION credit_entries_contiguous() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id <> (SELECT COALESCE(MAX(id), 0) + 1 FROM credit_entries) THEN
        RAISE EXCEPTION 'credit entry ids must be contiguous'
        USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER credit_entries_contiguous BEFORE INSERT ON credit_entries
FOR EACH ROW EXECUTE FUNCTION credit_entries_contiguous();

{_append_only("item_terms", "an item's storage record is never deleted", update=False)}
{
    _refuse(
        "item_terms_fixed",
        "item_terms",
        _changed("item_id", "org_id", "epoch", "work_content", "handle", "record_sha256")
        + " OR (OLD.ops_index IS NOT NULL AND NEW.ops_index IS DISTINCT FROM OLD.ops_index)",
        "an item's certified record never changes",
    )
}
{_append_only("notices", "notices are append-only")}
"""

# 2 (issue 16): which node runs each background job's rounds (evidence/store/jobs.py).
_JOBS = f"""
CREATE TABLE job_leases (name {T} PRIMARY KEY, holder {T} NOT NULL, until {T} NOT NULL);
"""

# 3 (issue 16): the stored originals in the database every node shares
# (evidence/blobs_postgres.py), in chunks of at most 1 MiB, stored out of line and not
# compressed (originals often are already). An upload writes its chunks under its
# upload id; installing it renames them under the content key in one transaction.
_BLOBS = f"""
CREATE TABLE evidence_blobs (
    key {T} PRIMARY KEY CHECK (key ~ '^[0-9a-f]{{64}}$'),
    size bigint NOT NULL CHECK (size >= 0),
    sha512 {T} NOT NULL CHECK (sha512 ~ '^[0-9a-f]{{128}}$'),
    sm3 {T} CHECK (sm3 ~ '^[0-9a-f]{{64}}$'),
    created timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE evidence_blob_uploads (
    id {T} PRIMARY KEY CHECK (id ~ '^upload-[0-9a-f]{{32}}$'),
    started timestamptz NOT NULL DEFAULT now(),
    touched timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX evidence_blob_uploads_touched ON evidence_blob_uploads (touched);
CREATE TABLE evidence_blob_chunks (
    key {T} NOT NULL CHECK (key ~ '^([0-9a-f]{{64}}|upload-[0-9a-f]{{32}})$'),
    seq integer NOT NULL CHECK (seq >= 0),
    data bytea NOT NULL,
    PRIMARY KEY (key, seq)
);
ALTER TABLE evidence_blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
"""

# 4 (issue 19): each certified item's RFC 4998 evidence record
# (evidence/store/evidence_records.py), never deleted, replaced only by its renewal.
_EVIDENCE_RECORDS = f"""
CREATE TABLE evidence_records (
    item_id {T} PRIMARY KEY REFERENCES items (id),
    org_id {T} NOT NULL REFERENCES organisations (id),
    record bytea NOT NULL,
    algorithm {T} NOT NULL,
    group_key {T} NOT NULL,
    renew_by {T},
    chains integer NOT NULL,
    stamps integer NOT NULL,
    created_at {T},
    updated_at {T}
);
CREATE INDEX evidence_records_renew_by ON evidence_records (org_id, renew_by);
CREATE INDEX evidence_records_algorithm ON evidence_records (org_id, algorithm);
{_append_only("evidence_records", "evidence records are never deleted", update=False)}
{
    _refuse(
        "evidence_records_grow",
        "evidence_records",
        _changed("item_id", "org_id") + " OR NEW.stamps <= OLD.stamps OR NEW.chains < OLD.chains",
        "an evidence record only grows by its renewal",
    )
}
"""

# 6 (issue 16): an upload's hold on an original it is storing, which a deletion on any
# node respects until the upload's items are committed (evidence/blobs_postgres.py).
_BLOB_HOLDS = f"""
CREATE TABLE evidence_blob_holds (
    id {T} PRIMARY KEY,
    key {T} NOT NULL CHECK (key ~ '^[0-9a-f]{{64}}$'),
    since timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX evidence_blob_holds_key ON evidence_blob_holds (key);
"""

EVIDENCE = Schema(
    "evidence",
    (_ACCOUNTS + _EVIDENCE, _JOBS, _BLOBS, _EVIDENCE_RECORDS, PEOPLE_MIGRATION, _BLOB_HOLDS),
    "evidence_schema_version",
)

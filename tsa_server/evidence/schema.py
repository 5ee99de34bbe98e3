"""The evidence database's schema: tables made with sqlite-utils, rules as triggers.

The triggers are the last line of defence under the stores' own checks
(evidence/store/): they hold for every writer (the server, the CLI, an operator's
sqlite3 shell), so the guarantees do not depend on one code path being right:

* credit_entries are append-only (no UPDATE, no DELETE) and contiguous;
* evidence items are never deleted, their identity and digests never change, and once
  certified their token, ledger index, serial, time and statement are frozen;
* a stored original is always the item's certified content (blob_key = sha256), held
  exactly in the states that hold one; hash-only items never have one;
* the accounts' tables and rules (organisations, members, API keys) are
  tsa_server/accounts/schema.py's, made first: the evidence tables refer to them;
* an item's storage record (item_terms: epoch, work content, the evidence record's
  hash and operations-log index, and the fee layer's storage term and status) is never
  deleted and its certified part never changes; notices are append-only, sent once;
* an item's RFC 4998 evidence record is never deleted and only grows (a renewal adds
  archive timestamps, never removes one).
"""

from __future__ import annotations

import sqlite3

import sqlite_utils

from tsa_server.accounts.schema import create_account_schema

SCHEMA_VERSION = 1

_ORG_FK = [("org_id", "organisations", "id")]

_TRIGGERS = """
CREATE TRIGGER IF NOT EXISTS items_no_delete BEFORE DELETE ON items
BEGIN SELECT RAISE(ABORT, 'evidence items are never deleted, only their originals'); END;
CREATE TRIGGER IF NOT EXISTS items_fixed BEFORE UPDATE ON items
WHEN NEW.id IS NOT OLD.id OR NEW.org_id IS NOT OLD.org_id OR NEW.mode IS NOT OLD.mode
  OR NEW.sha256 IS NOT OLD.sha256 OR NEW.sha512 IS NOT OLD.sha512 OR NEW.sm3 IS NOT OLD.sm3
  OR NEW.size IS NOT OLD.size OR NEW.created_at IS NOT OLD.created_at
BEGIN SELECT RAISE(ABORT, 'an item''s identity and digests never change'); END;
CREATE TRIGGER IF NOT EXISTS items_certified_frozen BEFORE UPDATE ON items
WHEN OLD.token IS NOT NULL AND (
  NEW.token IS NOT OLD.token OR NEW.ledger_index IS NOT OLD.ledger_index
  OR NEW.serial IS NOT OLD.serial OR NEW.certified_at IS NOT OLD.certified_at
  OR NEW.file_name IS NOT OLD.file_name OR NEW.media_type IS NOT OLD.media_type
  OR NEW.title IS NOT OLD.title OR NEW.statement IS NOT OLD.statement
  OR NEW.depositor IS NOT OLD.depositor)
BEGIN SELECT RAISE(ABORT, 'a certified item''s token and statement never change'); END;
"""

# A row's storage and certification columns must agree (checked on insert and update;
# COALESCE: a NULL somewhere in the test must not make SQL's three-valued logic pass it).
_ITEM_CONSISTENT = """(
  (NEW.mode = 'HASH_ONLY' AND NEW.blob_key IS NULL AND NEW.storage_state IS NULL)
  OR (NEW.mode = 'STORED' AND NEW.storage_state IN ('active', 'expired')
      AND NEW.blob_key IS NEW.sha256)
  OR (NEW.mode = 'STORED' AND NEW.storage_state IN ('original_deleted', 'purged')
      AND NEW.blob_key IS NULL)
) AND (
  (NEW.token IS NULL AND NEW.ledger_index IS NULL AND NEW.serial IS NULL
   AND NEW.certified_at IS NULL)
  OR (NEW.token IS NOT NULL AND NEW.ledger_index IS NOT NULL AND NEW.serial IS NOT NULL
      AND NEW.certified_at IS NOT NULL)
)"""

_CONSISTENCY_TRIGGERS = "".join(
    f"""
CREATE TRIGGER IF NOT EXISTS items_consistent_{op.lower()} BEFORE {op} ON items
WHEN NOT COALESCE({_ITEM_CONSISTENT}, 0)
BEGIN SELECT RAISE(ABORT, 'item mode, original, storage state and token disagree'); END;
"""
    for op in ("INSERT", "UPDATE")
)

_CREDIT_TRIGGERS = """
CREATE TRIGGER IF NOT EXISTS credit_entries_no_update BEFORE UPDATE ON credit_entries
BEGIN SELECT RAISE(ABORT, 'credit entries are append-only'); END;
CREATE TRIGGER IF NOT EXISTS credit_entries_no_delete BEFORE DELETE ON credit_entries
BEGIN SELECT RAISE(ABORT, 'credit entries are append-only'); END;
CREATE TRIGGER IF NOT EXISTS credit_entries_contiguous BEFORE INSERT ON credit_entries
WHEN NEW.id != (SELECT COALESCE(MAX(id), 0) + 1 FROM credit_entries)
BEGIN SELECT RAISE(ABORT, 'credit entry ids must be contiguous'); END;
"""

# An item's storage record: never deleted; what was certified with it never changes.
_TERMS_TRIGGERS = """
CREATE TRIGGER IF NOT EXISTS item_terms_no_delete BEFORE DELETE ON item_terms
BEGIN SELECT RAISE(ABORT, 'an item''s storage record is never deleted'); END;
CREATE TRIGGER IF NOT EXISTS item_terms_fixed BEFORE UPDATE ON item_terms
WHEN NEW.item_id IS NOT OLD.item_id OR NEW.org_id IS NOT OLD.org_id
  OR NEW.epoch IS NOT OLD.epoch OR NEW.work_content IS NOT OLD.work_content
  OR NEW.handle IS NOT OLD.handle OR NEW.record_sha256 IS NOT OLD.record_sha256
  OR (OLD.ops_index IS NOT NULL AND NEW.ops_index IS NOT OLD.ops_index)
BEGIN SELECT RAISE(ABORT, 'an item''s certified record never changes'); END;
CREATE TRIGGER IF NOT EXISTS notices_no_update BEFORE UPDATE ON notices
BEGIN SELECT RAISE(ABORT, 'notices are append-only'); END;
CREATE TRIGGER IF NOT EXISTS evidence_records_no_delete BEFORE DELETE ON evidence_records
BEGIN SELECT RAISE(ABORT, 'evidence records are never deleted'); END;
CREATE TRIGGER IF NOT EXISTS evidence_records_grow BEFORE UPDATE ON evidence_records
WHEN NEW.item_id IS NOT OLD.item_id OR NEW.org_id IS NOT OLD.org_id
  OR NEW.stamps <= OLD.stamps OR NEW.chains < OLD.chains
BEGIN SELECT RAISE(ABORT, 'an evidence record only grows by its renewal'); END;
"""


def create_schema(conn: sqlite3.Connection) -> None:
    db = sqlite_utils.Database(conn)
    tables = set(db.table_names())
    if "meta" not in tables:
        db.table("meta").create({"key": str, "value": str}, pk="key", not_null={"value"})
        db.table("meta").insert({"key": "schema", "value": str(SCHEMA_VERSION)})
    create_account_schema(conn)
    if "items" not in tables:
        db.table("items").create(
            {
                "id": str,
                "org_id": str,
                "mode": str,
                "sha256": str,  # lowercase hex
                "sha512": str,
                "sm3": str,
                "size": int,  # bytes of the original (G-5)
                "file_name": str,
                "media_type": str,
                "title": str,
                "statement": str,
                "depositor": str,
                "tags": str,  # JSON array of strings
                "token": bytes,  # the TimeStampToken (DER)
                "ledger_index": int,
                "serial": str,  # 40 hex digits, as in the issuance ledger
                "certified_at": str,  # the token's genTime
                "created_at": str,
                "blob_key": str,  # content address of the original; = sha256 when held
                "storage_state": str,  # records.StorageState; NULL for hash-only items
            },
            pk="id",
            not_null={"org_id", "mode", "sha256", "tags", "created_at"},
            foreign_keys=_ORG_FK,
        )
        db.table("items").create_index(["org_id", "created_at"])
        db.table("items").create_index(["org_id", "sha256"])
        db.table("items").create_index(["blob_key"])
    if "credit_entries" not in tables:
        db.table("credit_entries").create(
            {
                "id": int,
                "org_id": str,
                "kind": str,
                "units": int,
                "lot_id": str,
                "item_id": str,
                "period": int,
                "idempotency_key": str,
                "created_at": str,
                "note": str,
                "record": str,  # the fee rules' canonical JSON of the entry, verbatim
                "chain_hash": bytes,  # SHA-256 chain over every entry, like the ledger's
            },
            pk="id",
            not_null={"org_id", "kind", "units", "idempotency_key", "created_at", "chain_hash"},
            # item_id is not a foreign key: a batch may reserve units before its items
            # exist; the store refuses an item id that belongs to another organisation.
            foreign_keys=_ORG_FK,
        )
        # Per organisation: one account's keys never collide with (or reveal) another's.
        db.table("credit_entries").create_index(["org_id", "idempotency_key"], unique=True)
        db.table("credit_entries").create_index(["org_id", "id"])
    if "item_terms" not in tables:
        db.table("item_terms").create(
            {
                "item_id": str,
                "org_id": str,
                "epoch": str,  # S-4 policy epoch, fixed for life
                "work_content": str,  # P-7 (items.title holds the work title)
                "handle": str,
                "record_sha256": str,  # SHA-256 of the evidence record in the operations log
                "ops_index": int,  # its index in the operations log
                # STORED items only (NULL for hash-only): the fee layer's Storage (REC-1)
                "term_number": int,
                "anchor": str,
                "base_months": int,
                "period_months": int,
                "fee": int,
                "prepaid": int,
                "period": int,
                "status": str,  # fees.StorageStatus
                "since": str,
                "auto_renew": int,
                "expires_at": str,  # expiry of the current period (for due queries)
                "updated_at": str,
            },
            pk="item_id",
            not_null={"org_id", "epoch", "work_content", "handle", "record_sha256", "updated_at"},
            foreign_keys=[*_ORG_FK, ("item_id", "items", "id")],
        )
        db.table("item_terms").create_index(["org_id", "status"])
    if "notices" not in tables:
        db.table("notices").create(
            {
                "id": int,
                "org_id": str,
                "key": str,  # send-once key (fees.notices.Notice.key)
                "kind": str,
                "at": str,
                "subject": str,
                "target": str,
                "units": int,
                "covered": int,
                "detail": str,
                "created_at": str,
            },
            pk="id",
            not_null={"org_id", "key", "kind", "at", "subject", "created_at"},
            foreign_keys=_ORG_FK,
        )
        db.table("notices").create_index(["org_id", "key"], unique=True)
    if "idempotency_keys" not in tables:
        # Idempotency-Key of deposit requests: the first request's answer, replayed to a
        # retry of the same request for 24 h (tsa_server/evidence/idempotency.py). A row
        # with status NULL is a request still running. Rows expire; not append-only.
        db.table("idempotency_keys").create(
            {
                "org_id": str,
                "key": str,
                "request_sha256": str,  # of the request (idempotency.fingerprint)
                "status": int,  # HTTP status of the stored answer; NULL: in progress
                "body": str,  # the answer's JSON, verbatim
                "created_at": str,
                "expires_at": str,
            },
            pk=("org_id", "key"),
            not_null={"request_sha256", "created_at", "expires_at"},
            foreign_keys=_ORG_FK,
        )
        db.table("idempotency_keys").create_index(["expires_at"])
    if "webhooks" not in tables:
        # REC-10: one webhook endpoint per organisation (evidence/webhooks.py). `secret`
        # signs the deliveries: HMAC-SHA256 needs the secret itself, so it is kept here
        # (the file is 0600) and never logged or returned after PUT. Notices with an id
        # above `after_notice_id` (the newest when the webhook was made) are delivered;
        # `events`: space-separated notice kinds, NULL for all.
        db.table("webhooks").create(
            {
                "org_id": str,
                "url": str,
                "events": str,
                "secret": str,
                "after_notice_id": int,
                "created_at": str,
                "updated_at": str,
            },
            pk="org_id",
            not_null={"url", "secret", "after_notice_id", "created_at", "updated_at"},
            foreign_keys=_ORG_FK,
        )
    if "webhook_deliveries" not in tables:
        # One row per notice the webhook tried to deliver: attempts and the next one
        # survive a restart; delivered_at or given_up_at ends it.
        db.table("webhook_deliveries").create(
            {
                "notice_id": int,
                "org_id": str,
                "attempts": int,
                "first_attempt_at": str,
                "last_attempt_at": str,
                "next_attempt_at": str,
                "last_status": int,
                "last_error": str,
                "delivered_at": str,
                "given_up_at": str,
            },
            pk="notice_id",
            not_null={"org_id", "attempts", "first_attempt_at", "last_attempt_at"},
            foreign_keys=[*_ORG_FK, ("notice_id", "notices", "id")],
        )
        db.table("webhook_deliveries").create_index(["org_id", "notice_id"])
    if "job_leases" not in tables:
        # Which process runs each background job's rounds (evidence/store/jobs.py).
        db.table("job_leases").create(
            {"name": str, "holder": str, "until": str}, pk="name", not_null={"holder", "until"}
        )
    if "evidence_records" not in tables:
        # Issue 19: each certified item's RFC 4998 evidence record
        # (evidence/store/evidence_records.py); replaced only by its renewal.
        db.table("evidence_records").create(
            {
                "item_id": str,
                "org_id": str,
                "record": bytes,
                "algorithm": str,
                "group_key": str,
                "renew_by": str,
                "chains": int,
                "stamps": int,
                "created_at": str,
                "updated_at": str,
            },
            pk="item_id",
            not_null={"org_id", "record", "algorithm", "group_key", "chains", "stamps"},
            foreign_keys=[*_ORG_FK, ("item_id", "items", "id")],
        )
        db.table("evidence_records").create_index(["org_id", "renew_by"])
        db.table("evidence_records").create_index(["org_id", "algorithm"])
    # REC-10 monthly quota: items certified by one organisation within a window.
    conn.execute(
        "CREATE INDEX IF NOT EXISTS idx_items_org_certified ON items (org_id, certified_at)"
    )
    conn.executescript(_TRIGGERS + _CONSISTENCY_TRIGGERS + _CREDIT_TRIGGERS + _TERMS_TRIGGERS)

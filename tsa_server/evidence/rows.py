"""SQLite rows of the evidence store <-> the values of records.py."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tsa_server.accounts.times import dt, ts
from tsa_server.evidence.errors import InvalidInput
from tsa_server.evidence.records import (
    CreditEntry,
    Item,
    ItemMode,
    StorageState,
    canonical_json,
    check_tags,
)

_CHAIN_LABEL = b"tsa-credit-v1\x00"
CHAIN_GENESIS = bytes(32)


def item_from_row(row: dict[str, Any]) -> Item:
    return Item(
        id=row["id"],
        org_id=row["org_id"],
        mode=ItemMode(row["mode"]),
        sha256=row["sha256"],
        sha512=row["sha512"],
        sm3=row["sm3"],
        size=row["size"],
        file_name=row["file_name"],
        media_type=row["media_type"],
        title=row["title"],
        statement=row["statement"],
        depositor=row["depositor"],
        tags=tuple(json.loads(row["tags"])),
        created_at=dt(row["created_at"]),
        token=row["token"],
        ledger_index=row["ledger_index"],
        serial=None if row["serial"] is None else int(row["serial"], 16),
        certified_at=dt(row["certified_at"]),
        blob_key=row["blob_key"],
        storage_state=None if row["storage_state"] is None else StorageState(row["storage_state"]),
    )


def credit_from_row(row: dict[str, Any]) -> CreditEntry:
    return CreditEntry(
        id=row["id"],
        org_id=row["org_id"],
        kind=row["kind"],
        units=row["units"],
        idempotency_key=row["idempotency_key"],
        lot_id=row["lot_id"],
        item_id=row["item_id"],
        period=row["period"],
        note=row["note"] or "",
        created_at=dt(row["created_at"]),
        record=None if row["record"] is None else json.loads(row["record"]),
        chain_hash=row["chain_hash"],
    )


def credit_chain_hash(previous: bytes, entry: CreditEntry) -> bytes:
    """SHA-256 over the previous chain value and the entry's canonical JSON."""
    fields = [
        entry.id,
        entry.org_id,
        entry.kind,
        entry.units,
        entry.lot_id,
        entry.item_id,
        entry.period,
        entry.idempotency_key,
        ts(entry.created_at),
        entry.note,
        entry.record,
    ]
    canonical = canonical_json(fields).encode()
    return hashlib.sha256(_CHAIN_LABEL + previous + canonical).digest()


def item_column_value(name: str, value: Any) -> Any:
    if name == "tags":
        return json.dumps(list(check_tags(value)), ensure_ascii=False)
    if name in ("certified_at",):
        return ts(value)
    if name == "serial":
        return None if value is None else format(int(value), "040x")
    if name == "storage_state":
        return None if value is None else StorageState(value).value
    if name == "token" and value is not None and not isinstance(value, bytes):
        raise InvalidInput("token must be bytes")
    return value

"""Values the evidence store keeps: evidence items and credit entries (docs/spec/evidence.md
REC-1). Pure: validation here, persistence in store.py."""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tsa_server.evidence.errors import InvalidInput

_HEX = {"sha256": 64, "sha512": 128, "sm3": 64}
#: Bounds on caller-supplied metadata; each keeps one item's row small and printable.
MAX_FILE_NAME_CHARS = 255  # the common filesystem limit
MAX_TEXT_CHARS = 10_000  # title, statement, depositor: a page of text
MAX_TAGS = 32
MAX_TAG_CHARS = 64
MAX_IDEMPOTENCY_KEY_CHARS = 200
MAX_NOTE_CHARS = 1000

#: A credit entry's kind: a lowercase word. The fee rules (tsa_server/fees) own the
#: vocabulary (purchase, reserve, consume, refund, release, renew, reupload, reinstate,
#: lapse, purge, adjust, ...) and the arithmetic; the store keeps entries idempotently.
CREDIT_KIND = re.compile(r"[a-z][a-z_]{0,31}")


class ItemMode(enum.StrEnum):
    HASH_ONLY = "HASH_ONLY"  # 脱敏认证: only the digest is certified
    STORED = "STORED"  # 存证: the original is uploaded and kept


class StorageState(enum.StrEnum):
    """Where a STORED item's original stands (REC-1); hash-only items have none."""

    ACTIVE = "active"  # held, viewable
    EXPIRED = "expired"  # held, locked until renewed (S-10)
    ORIGINAL_DELETED = "original_deleted"  # deleted by the owner (S-8)
    PURGED = "purged"  # removed after the grace window (S-10)


HOLDS_ORIGINAL = frozenset({StorageState.ACTIVE, StorageState.EXPIRED})


@dataclass(frozen=True)
class NewItem:
    """An item to deposit. A STORED item's blob_key is its SHA-256 (content address)."""

    mode: ItemMode
    sha256: str
    size: int | None = None
    sha512: str | None = None
    sm3: str | None = None
    file_name: str = ""
    media_type: str = ""
    title: str = ""
    statement: str = ""
    depositor: str = ""
    tags: tuple[str, ...] = ()
    blob_key: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", ItemMode(self.mode))
        for name, length in _HEX.items():
            value = getattr(self, name)
            if value is None and name != "sha256":
                continue
            if not isinstance(value, str) or not re.fullmatch(f"[0-9a-f]{{{length}}}", value):
                raise InvalidInput(f"{name} must be {length} lowercase hexadecimal digits")
        if self.size is not None and (isinstance(self.size, bool) or self.size < 0):
            raise InvalidInput("size must be a non-negative integer")
        if self.mode is ItemMode.STORED:
            if self.blob_key != self.sha256 or self.size is None:
                raise InvalidInput("a stored item needs its original (blob key = SHA-256, size)")
        elif self.blob_key is not None:
            raise InvalidInput("a hash-only item has no original")
        check_text(self.file_name, "file_name", MAX_FILE_NAME_CHARS)
        check_text(self.media_type, "media_type", 255)
        for name in ("title", "statement", "depositor"):
            check_text(getattr(self, name), name, MAX_TEXT_CHARS, multiline=True)
        object.__setattr__(self, "tags", check_tags(self.tags))


@dataclass(frozen=True)
class Item:
    id: str
    org_id: str
    mode: ItemMode
    sha256: str
    sha512: str | None
    sm3: str | None
    size: int | None
    file_name: str
    media_type: str
    title: str
    statement: str
    depositor: str
    tags: tuple[str, ...]
    created_at: datetime
    token: bytes | None = None
    ledger_index: int | None = None
    serial: int | None = None
    certified_at: datetime | None = None
    blob_key: str | None = None
    storage_state: StorageState | None = None


@dataclass(frozen=True)
class Certified:
    """What certification adds to an item: its RFC 3161 token and where it stands."""

    token: bytes
    ledger_index: int
    serial: int
    certified_at: datetime


@dataclass(frozen=True)
class StoredNotice:
    """A notice (fees.notices.Notice) as kept per organisation, sent once by key."""

    org_id: str
    key: str
    kind: str
    at: datetime
    subject: str
    target: datetime | None = None
    units: int = 0
    covered: bool | None = None
    detail: str = ""
    created_at: datetime | None = None


@dataclass(frozen=True)
class NewCreditEntry:
    """A credit movement to record. The columns (kind, units, lot, item, period) are for
    queries; `record` is the fee rules' own canonical form of the entry (JSON-ready,
    e.g. fees.entries.to_record), kept verbatim. The idempotency key is unique per
    organisation: e.g. ``renew/<item>/<term>/<k>`` or ``lapse/<lot>``."""

    org_id: str
    kind: str
    idempotency_key: str
    units: int = 0
    lot_id: str | None = None
    item_id: str | None = None
    period: int | None = None
    note: str = ""
    record: Mapping[str, Any] | None = None
    created_at: datetime | None = None  # when written; None: the store's clock

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or CREDIT_KIND.fullmatch(self.kind) is None:
            raise InvalidInput(f"a credit entry kind is a lowercase word, not {self.kind!r}")
        object.__setattr__(self, "kind", str(self.kind))
        if isinstance(self.units, bool) or not isinstance(self.units, int):
            raise InvalidInput("units must be an integer")
        if not self.idempotency_key or len(self.idempotency_key) > MAX_IDEMPOTENCY_KEY_CHARS:
            raise InvalidInput(f"an idempotency key is 1-{MAX_IDEMPOTENCY_KEY_CHARS} characters")
        if self.period is not None and (isinstance(self.period, bool) or self.period < -1):
            raise InvalidInput("period must be an integer >= -1")
        check_text(self.note, "note", MAX_NOTE_CHARS, multiline=True)
        if self.record is not None:
            object.__setattr__(self, "record", json.loads(canonical_json(self.record)))
        if self.created_at is not None and self.created_at.utcoffset() is None:
            raise ValueError("created_at must be an aware datetime")

    def same_movement(self, entry: CreditEntry) -> bool:
        """Is `entry` this movement again (a retry), not another one reusing the key?
        Everything but the write time and the note counts."""
        mine = (self.org_id, self.kind, self.units, self.lot_id, self.item_id, self.period)
        theirs = (entry.org_id, entry.kind, entry.units, entry.lot_id, entry.item_id, entry.period)
        return mine == theirs and self.record == entry.record


@dataclass(frozen=True)
class CreditEntry:
    id: int
    org_id: str
    kind: str
    units: int
    idempotency_key: str
    lot_id: str | None
    item_id: str | None
    period: int | None
    note: str
    created_at: datetime
    record: dict[str, Any] | None = None
    chain_hash: bytes = field(repr=False, default=b"")


def canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no spaces, UTF-8 kept (hashed into the chain)."""
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        raise InvalidInput("a credit entry's record must be JSON-serialisable") from None


@dataclass(frozen=True)
class Appended:
    """One result of append_credit_entries: the stored entry, and whether this call
    inserted it (False: the idempotency key was already there, nothing was added)."""

    entry: CreditEntry
    inserted: bool


def check_text(value: str, what: str, limit: int, *, multiline: bool = False) -> None:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be text")
    if len(value) > limit:
        raise InvalidInput(f"{what} is longer than {limit} characters")
    allowed = "\n\t" if multiline else ""
    if any(not ch.isprintable() and ch not in allowed for ch in value):
        raise InvalidInput(f"{what} must not contain control characters")


def check_tags(tags: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    if isinstance(tags, str) or len(tags) > MAX_TAGS:
        raise InvalidInput(f"tags is a list of at most {MAX_TAGS} strings")
    for tag in tags:
        check_text(tag, "a tag", MAX_TAG_CHARS)
        if not tag.strip():
            raise InvalidInput("a tag must not be empty")
    return tuple(dict.fromkeys(tags))

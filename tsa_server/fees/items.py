"""The evidence item as the fee layer sees it (REC-1), its storage state and filings.

`EvidenceItem.storage` is None for HASH_ONLY items: they have no storage status, never
pay storage and never storage-expire (S-1, R-8). A STORED item's storage moves through
`ACTIVE -> EXPIRED -> PURGED` (S-7, S-10) or to `ORIGINAL_DELETED` (S-8), from where a
re-upload starts a new paid term (S-9). Every value is frozen: rule functions return a
new item, the storage layer persists it.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from tsa_server.clock.beijing import require_aware

from .deposit import DepositForm
from .policy import DEFAULT_POLICY, PricingPolicy
from .terms import Mode, StorageTerm, initial_term, storage_applies

_HEX = {"sha256": 64, "sha512": 128, "sm3": 64}


class StorageStatus(enum.StrEnum):
    """REC-1 storage status of a STORED item."""

    ACTIVE = "ACTIVE"  # original held and paid (or free) until `expires_at`
    EXPIRED = "EXPIRED"  # renewal not paid: original locked (S-7, S-10), grace running
    ORIGINAL_DELETED = "ORIGINAL_DELETED"  # S-8: behaves as hash-only
    PURGED = "PURGED"  # grace over, original destroyed


class FilingStatus(enum.StrEnum):
    """P-6: a filing (备案) built on an item follows the item's storage."""

    VALID = "VALID"
    INVALID = "INVALID"
    PENDING = "PENDING"  # the expiry instant has passed but the scheduler has not run yet


@dataclass(frozen=True)
class Digests:
    """REC-1: SHA-256 required, SHA-512 and SM3 optional; lowercase hex."""

    sha256: str
    sha512: str | None = None
    sm3: str | None = None

    def __post_init__(self) -> None:
        for name, length in _HEX.items():
            value = getattr(self, name)
            if value is None:
                continue
            low = value.lower()
            if not re.fullmatch(f"[0-9a-f]{{{length}}}", low):
                raise ValueError(f"{name} must be {length} hex digits")
            object.__setattr__(self, name, low)


@dataclass(frozen=True)
class Storage:
    """The storage part of an item (REC-1: anchor, current period k, expiry, status)."""

    term: StorageTerm
    period: int = 0  # k: the current period is [term.start(k), term.expiry(k))
    status: StorageStatus = StorageStatus.ACTIVE
    since: datetime | None = None  # instant of the last status change (EXPIRED: expiry_k)
    auto_renew: bool = True  # S-7 [EXT]: off -> expire at the end of the period

    def __post_init__(self) -> None:
        if self.since is not None:
            object.__setattr__(self, "since", require_aware(self.since, "since"))

    @property
    def expires_at(self) -> datetime:
        """`expiry_k` of the current period (for EXPIRED: the instant it expired)."""
        return self.term.expiry(self.period)

    @property
    def original_present(self) -> bool:
        return self.status in (StorageStatus.ACTIVE, StorageStatus.EXPIRED)


@dataclass(frozen=True)
class EvidenceItem:
    """REC-1 `EvidenceItem`, the fields the fee rules and the evidence kit need."""

    item_id: str
    serial: str  # the token's serial number as shown (ledger/serials.py)
    mode: Mode
    digests: Digests
    size: int  # G-5: exact byte length of the original as deposited
    certified_at: datetime  # the token's genTime (P-7): epoch and evidence time
    epoch: str  # S-4, fixed for life
    form: DepositForm
    storage: Storage | None = None  # None: HASH_ONLY

    def __post_init__(self) -> None:
        object.__setattr__(self, "certified_at", require_aware(self.certified_at))
        if (self.storage is None) != (self.mode is Mode.HASH_ONLY):
            raise ValueError("STORED items have storage, HASH_ONLY items have none")
        if self.size < 0:
            raise ValueError("size must be >= 0")

    @property
    def status(self) -> StorageStatus | None:
        return None if self.storage is None else self.storage.status

    @property
    def storage_applies(self) -> bool:
        """S-1 for this item."""
        present = self.storage is not None and self.storage.original_present
        return storage_applies(self.mode, present)

    def with_storage(self, **changes: object) -> EvidenceItem:
        if self.storage is None:
            raise ValueError("hash-only items have no storage")
        return replace(self, storage=replace(self.storage, **changes))  # type: ignore[arg-type]


def new_item(
    item_id: str,
    serial: str,
    mode: Mode,
    digests: Digests,
    size: int,
    certified_at: datetime,
    form: DepositForm,
    *,
    stored_at: datetime | None = None,
    auto_renew: bool = True,
    policy: PricingPolicy = DEFAULT_POLICY,
) -> EvidenceItem:
    """A freshly certified item: epoch from genTime (S-4), free term for STORED (S-5)."""
    epoch = policy.version_for(certified_at).epoch
    storage = None
    if mode is Mode.STORED:
        term = initial_term(size, certified_at, stored_at, policy)
        storage = Storage(term, 0, StorageStatus.ACTIVE, term.anchor, auto_renew)
    return EvidenceItem(item_id, serial, mode, digests, size, certified_at, epoch, form, storage)


def purge_at(item: EvidenceItem, policy: PricingPolicy = DEFAULT_POLICY) -> datetime | None:
    """S-10 / A-7: an EXPIRED item's original is purged at `expired + grace` (half-open)."""
    s = item.storage
    if s is None or s.status is not StorageStatus.EXPIRED or s.since is None:
        return None
    return s.since + timedelta(days=policy.grace_days)


def filing_status(item: EvidenceItem, now: datetime) -> FilingStatus:
    """P-6 / T-8: a filing is invalid from the instant its evidence storage expires.

    Hash-only items and items whose original was deleted never storage-expire (S-1), so
    their filings stay valid. An ACTIVE item past its expiry with the scheduler not yet
    run is PENDING: the renewal at that instant decides (R-1 valid, R-2 invalid).
    """
    t = require_aware(now)
    s = item.storage
    if s is None or s.status is StorageStatus.ORIGINAL_DELETED:
        return FilingStatus.VALID
    if s.status in (StorageStatus.EXPIRED, StorageStatus.PURGED):
        return FilingStatus.INVALID
    return FilingStatus.VALID if t < s.expires_at else FilingStatus.PENDING

"""User actions on a stored original: delete (S-8), re-upload (S-9), reinstate (S-10).

- `delete_original` (R-9, R-10): needs the user's confirmation that the original was
  downloaded; stops every future storage charge; the item behaves as hash-only. Allowed
  for ACTIVE and EXPIRED items and charges nothing.
- `reupload` (R-11 .. R-13): the bytes must hash to the certified SHA-256 digest; no
  free term: period 0 of a new term anchored at the re-upload instant is paid at once;
  refused, with nothing debited, when the balance is short. The epoch never changes.
- `reinstate` (R-14) [EXT]: within the grace window an EXPIRED item is reinstated by
  paying the missed period from its original `expiry_k` (and any later period already
  begun), so the anchor schedule is unchanged and nobody stores for free.
Each returns an `Outcome` (entries, new item, notices) or raises; nothing is partial.
"""

from __future__ import annotations

import hmac
from datetime import datetime

from tsa_server.clock.beijing import require_aware

from .entries import EntryKind, LedgerEntry, PeriodRef
from .errors import (
    ConfirmationRequired,
    DigestMismatch,
    GraceExpired,
    InsufficientCredits,
    StateError,
)
from .items import EvidenceItem, Storage, StorageStatus, purge_at
from .lots import Wallet, append, debit_storage
from .notices import Notice, NoticeKind, Outcome
from .policy import DEFAULT_POLICY, PricingPolicy
from .terms import reupload_term


def _storage(item: EvidenceItem) -> Storage:
    if item.storage is None:
        raise StateError(f"item {item.item_id} is hash-only: it has no stored original")
    return item.storage


def delete_original(item: EvidenceItem, now: datetime, *, downloaded_confirmed: bool) -> Outcome:
    """S-8 / R-9 / R-10: delete the stored original; no storage fee is charged afterwards.

    The certificate, token and hash record are untouched. An ACTIVE item whose expiry
    has passed but was not yet processed is deleted without charge (the deletion wins).
    """
    now = require_aware(now, "now")
    s = _storage(item)
    if not s.original_present:
        raise StateError(f"item {item.item_id} has no original to delete ({s.status})")
    if not downloaded_confirmed:  # "务必将原件先下载"
        raise ConfirmationRequired("confirm that the original was downloaded before deleting")
    new = item.with_storage(status=StorageStatus.ORIGINAL_DELETED, since=now)
    note = Notice(
        f"original-deleted/{item.item_id}/{s.term.number}",
        NoticeKind.ORIGINAL_DELETED,
        now,
        item.item_id,
        now,
    )
    return Outcome(now, (), new, (note,))


def reupload(
    wallet: Wallet,
    item: EvidenceItem,
    sha256_hex: str,
    now: datetime,
    policy: PricingPolicy = DEFAULT_POLICY,
) -> Outcome:
    """S-9 / R-11 .. R-13: re-upload the same bytes into a new, immediately paid term."""
    now = require_aware(now, "now")
    s = _storage(item)
    if s.status not in (StorageStatus.ORIGINAL_DELETED, StorageStatus.PURGED):
        raise StateError(f"item {item.item_id} still holds its original ({s.status})")
    if not hmac.compare_digest(sha256_hex.strip().lower(), item.digests.sha256):
        raise DigestMismatch("the re-uploaded bytes are not the certified file")
    term = reupload_term(item.size, item.epoch, s.term.number + 1, now, policy)
    ref = PeriodRef(item.item_id, term.number, 0)
    new = item.with_storage(term=term, period=0, status=StorageStatus.ACTIVE, since=now)
    note = Notice(
        f"reuploaded/{item.item_id}/{term.number}",
        NoticeKind.REUPLOADED,
        now,
        item.item_id,
        term.expiry(0),
        term.fee,
        True,
    )
    if wallet.is_paid(ref):  # a retry after the debit was stored: only the item lags
        return Outcome(now, (), new, (note,))
    entries = debit_storage(wallet, EntryKind.REUPLOAD, ref, term.fee, now)  # R-12 refuses
    return Outcome(now, entries, new, (note,))


def reinstate(
    wallet: Wallet, item: EvidenceItem, now: datetime, policy: PricingPolicy = DEFAULT_POLICY
) -> Outcome:
    """S-10 / R-14: pay the missed period(s) within the grace window; ACTIVE again.

    Refused after the window (GraceExpired, R-15) and when the balance cannot pay every
    missed period at once (InsufficientCredits, nothing debited).
    """
    now = require_aware(now, "now")
    s = _storage(item)
    if s.status is not StorageStatus.EXPIRED:
        raise StateError(f"item {item.item_id} is not EXPIRED ({s.status})")
    deadline = purge_at(item, policy)
    assert deadline is not None
    if now >= deadline:  # G-3: the window is [expired, expired + grace)
        raise GraceExpired(f"grace window ended at {deadline.isoformat()}")
    first = s.period + 1  # the period that starts at the missed expiry_k
    last = max(first, s.term.period_at(now))  # and any later period already begun
    refs = [PeriodRef(item.item_id, s.term.number, j) for j in range(first, last + 1)]
    owed = [r for r in refs if not wallet.is_paid(r)]
    total = s.term.fee * len(owed)
    if owed and wallet.balance(now) < total:
        raise InsufficientCredits(total, wallet.balance(now), wallet.lapsed_units(now))
    entries: list[LedgerEntry] = []
    for ref in owed:
        step = debit_storage(wallet, EntryKind.REINSTATE, ref, s.term.fee, now)
        wallet = append(wallet, step)
        entries.extend(step)
    new = item.with_storage(period=last, status=StorageStatus.ACTIVE, since=now)
    note = Notice(
        f"reinstated/{item.item_id}/{s.term.number}/{first}",
        NoticeKind.REINSTATED,
        now,
        item.item_id,
        s.term.expiry(last),
        total,
        True,
    )
    return Outcome(now, tuple(entries), new, (note,))


def set_auto_renew(item: EvidenceItem, on: bool, now: datetime) -> Outcome:
    """S-7 [EXT]: switch automatic renewal of a stored original on or off.

    Off: at the end of the current period the item expires without any debit (the grace
    window and reinstatement still apply). Deleting the original (S-8) is the seed's way
    to stop charges for good.
    """
    now = require_aware(now, "now")
    _storage(item)
    return Outcome(now, (), item.with_storage(auto_renew=on), ())

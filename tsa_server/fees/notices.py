"""Notices (REC-3, REC-10, S-10, P-8) and the `Outcome` of one rule application.

A notice is what the platform tells the account holder by webhook and e-mail. Its
`key` is an idempotency key: the scheduler may compute the same notice on every run,
the delivery layer sends each key once. An `Outcome` is one unit of work for the
storage layer: append `entries`, store `item`, deliver `notices`, in one transaction
(REC-3 "one transaction per item").
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from .entries import LedgerEntry
from .items import EvidenceItem


class NoticeKind(enum.StrEnum):
    """REC-10 webhook / e-mail events (value = the event name on the wire)."""

    CERTIFIED = "item.certified"
    RENEWED = "renewal.done"
    RENEWAL_FAILED = "renewal.failed"
    EXPIRY_REMINDER = "expiry.coming"  # REC-3: T-30 / T-7 / T-1
    LOW_BALANCE = "balance.low"  # REC-3: the next 30 days are not covered
    LOT_LAPSE_REMINDER = "lot_lapse.coming"  # P-8: 30 and 7 days before
    LOT_LAPSED = "lot.lapsed"
    PURGE_REMINDER = "purge.coming"  # S-10: T-30 / T-7 / T-1 before purge
    PURGED = "original.purged"
    REINSTATED = "storage.reinstated"
    ORIGINAL_DELETED = "original.deleted"
    REUPLOADED = "original.reuploaded"


@dataclass(frozen=True)
class Notice:
    """One message to the account holder."""

    key: str  # send-once key
    kind: NoticeKind
    at: datetime  # when it became due
    subject: str  # item id or lot id
    target: datetime | None = None  # the instant it is about (expiry, lapse, purge)
    units: int = 0  # fee, units lapsing, or shortfall
    covered: bool | None = None  # REC-3: does the balance cover the fee? None: n/a
    detail: str = ""


@dataclass(frozen=True)
class Outcome:
    """What one rule decided: entries to append, the new item state, notices to send."""

    at: datetime
    entries: tuple[LedgerEntry, ...] = ()
    item: EvidenceItem | None = None
    notices: tuple[Notice, ...] = ()


def certified_notice(item: EvidenceItem) -> Notice:
    """REC-10 "item certified": due at the token's genTime."""
    target = item.storage.expires_at if item.storage is not None else None
    fee = item.storage.term.fee if item.storage is not None else 0
    return Notice(
        f"certified/{item.item_id}",
        NoticeKind.CERTIFIED,
        item.certified_at,
        item.item_id,
        target,
        fee,
        None,
        "free storage until target" if target else "",
    )

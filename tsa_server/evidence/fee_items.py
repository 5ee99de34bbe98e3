"""The seam between the evidence store and the pure fee rules (tsa_server.fees).

- store rows (an `Item` and its `item_terms` record) <-> `fees.EvidenceItem`;
- `fees.LedgerEntry` <-> the store's credit entries (the rules' canonical record is kept
  verbatim in `record`; the columns are for queries, `units` = signed balance change);
- `wallet_check`, the `check=` of `EvidenceStore.append_credit_entries`: inside the
  write transaction it folds the organisation's earlier entries and applies the new
  ones with the rules' own `append`, which refuses a negative bucket, a lapsed lot, a
  period paid twice. No writer, in this process or another, can overdraw between the
  computation and the commit.
- `StoredNotice` from `fees.Notice`, token facts (serial, genTime) from a token.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from asn1crypto import cms, tsp  # noqa: F401 - tsp registers TSTInfo with cms

from ledger.serials import serial_text
from tsa_server.evidence.records import (
    CreditEntry,
    Item,
    ItemMode,
    NewCreditEntry,
    StorageState,
    StoredNotice,
)
from tsa_server.evidence.store.items import STORAGE_COLUMNS
from tsa_server.fees import (
    DepositForm,
    Digests,
    EntryKind,
    EvidenceItem,
    LedgerEntry,
    Mode,
    Notice,
    PricingPolicy,
    Storage,
    StorageStatus,
    StorageTerm,
    Wallet,
    append,
    fold,
    from_record,
    new_item,
    to_record,
)

#: fees.StorageStatus <-> the store's StorageState (the same four states).
TO_STORE_STATE = {
    StorageStatus.ACTIVE: StorageState.ACTIVE,
    StorageStatus.EXPIRED: StorageState.EXPIRED,
    StorageStatus.ORIGINAL_DELETED: StorageState.ORIGINAL_DELETED,
    StorageStatus.PURGED: StorageState.PURGED,
}


FROM_STORE_STATE = {v: k for k, v in TO_STORE_STATE.items()}


def token_facts(token: bytes) -> tuple[int, datetime]:
    """(serial number, genTime in UTC) of a DER TimeStampToken."""
    info = cms.ContentInfo.load(token)
    tst = info["content"]["encap_content_info"]["content"].parsed
    gen = tst["gen_time"].native.astimezone(UTC)
    return int(tst["serial_number"].native), gen.replace(microsecond=gen.microsecond // 1000 * 1000)


# ----------------------------------------------------------------- items


def storage_columns(storage: Storage | None) -> dict[str, Any]:
    """The item_terms columns of a fee-layer Storage (all NULL for hash-only items)."""
    if storage is None:
        return dict.fromkeys(STORAGE_COLUMNS)
    term = storage.term
    return {
        "term_number": term.number,
        "anchor": term.anchor,
        "base_months": term.base_months,
        "period_months": term.period_months,
        "fee": term.fee,
        "prepaid": int(term.prepaid),
        "period": storage.period,
        "status": storage.status.value,
        "since": storage.since,
        "auto_renew": int(storage.auto_renew),
        "expires_at": storage.expires_at,
    }


def item_changes(storage: Storage, blob_key: str | None) -> dict[str, Any]:
    """The items-row columns that follow a storage status (original held or not)."""
    state = TO_STORE_STATE[storage.status]
    return {"storage_state": state, "blob_key": blob_key if storage.original_present else None}


def fee_item(item: Item, terms: dict[str, Any] | None, policy: PricingPolicy) -> EvidenceItem:
    """The fee layer's view of a certified store item."""
    assert item.certified_at is not None and item.serial is not None, "item not certified"
    terms = terms or {}
    epoch = terms.get("epoch") or policy.version_for(item.certified_at).epoch
    form = DepositForm(
        depositor=item.depositor,
        work_content=terms.get("work_content") or "",
        work_title=item.title,
        statement=item.statement,
        handle=terms.get("handle") or "",
        file_name=item.file_name,
        media_type=item.media_type,
    )
    storage = None
    if item.mode is ItemMode.STORED and terms.get("term_number") is None:
        # An item stored without the deposit service (an import, an older database): its
        # first term as the rules give it, in the state the items row records.
        status = FROM_STORE_STATE[item.storage_state or StorageState.ACTIVE]
        first = new_item(
            item.id,
            serial_text(item.serial),
            Mode.STORED,
            Digests(item.sha256, item.sha512, item.sm3),
            item.size or 0,
            item.certified_at,
            form,
            policy=policy,
        ).storage
        assert first is not None
        storage = replace(first, status=status)
    elif item.mode is ItemMode.STORED:
        storage = Storage(
            StorageTerm(
                terms["term_number"],
                terms["anchor"],
                terms["base_months"],
                terms["period_months"],
                terms["fee"],
                bool(terms["prepaid"]),
            ),
            terms["period"],
            StorageStatus(terms["status"]),
            terms["since"],
            bool(terms["auto_renew"]),
        )
    return EvidenceItem(
        item.id,
        serial_text(item.serial),
        Mode(item.mode.value),
        Digests(item.sha256, item.sha512, item.sm3),
        item.size or 0,
        item.certified_at,
        epoch,
        form,
        storage,
    )


# ----------------------------------------------------------------- credit entries

#: Signed change of the spendable balance an entry makes (the `units` column).
_SIGN = {
    EntryKind.PURCHASE: 1,
    EntryKind.RESERVE: -1,
    EntryKind.CONSUME: 0,
    EntryKind.REFUND: 1,
    EntryKind.RELEASE: 1,
    EntryKind.RENEW: -1,
    EntryKind.REUPLOAD: -1,
    EntryKind.REINSTATE: -1,
    EntryKind.LAPSE: -1,
    EntryKind.PURGE: 0,
    EntryKind.ADJUST: 1,
}


def balance_change(e: LedgerEntry) -> int:
    by_units = (EntryKind.PURCHASE, EntryKind.LAPSE, EntryKind.ADJUST)
    amount = e.units if e.kind in by_units else e.drawn
    return _SIGN[e.kind] * amount


def new_credit_entry(org_id: str, e: LedgerEntry) -> NewCreditEntry:
    """The store's form of a fee-rule entry: the record verbatim, columns for queries."""
    item = e.item or (e.period.item if e.period is not None else None)
    lot = e.lot or (e.draws[0].lot if len(e.draws) == 1 else None)
    return NewCreditEntry(
        org_id=org_id,
        kind=e.kind.value,
        idempotency_key=e.key,
        units=balance_change(e),
        lot_id=lot,
        item_id=item if e.kind is not EntryKind.RESERVE else None,
        period=e.period.period if e.period is not None else None,
        note=e.note[:1000],
        record=to_record(e),
        created_at=None,
    )


def ledger_entries(stored: Iterable[CreditEntry]) -> list[LedgerEntry]:
    """The fee-rule entries of stored credit entries (entries without a record are
    not the rules' and do not move lots)."""
    return [from_record(c.record) for c in stored if c.record is not None]


def wallet_of(stored: Sequence[CreditEntry]) -> Wallet:
    return fold(ledger_entries(stored))


def wallet_check(org_id: str, earlier: list[CreditEntry], added: list[CreditEntry]) -> None:
    """`check=` for the store: the added entries must apply to the earlier ones."""
    append(wallet_of(earlier), ledger_entries(added))


# ----------------------------------------------------------------- notices


def stored_notice(org_id: str, n: Notice) -> StoredNotice:
    return StoredNotice(
        org_id, n.key, n.kind.value, n.at, n.subject, n.target, n.units, n.covered, n.detail
    )

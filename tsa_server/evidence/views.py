"""JSON forms of evidence items, lots, credit entries, notices and the forecast: one
representation for the HTTP API (web/evidence/__init__.py) and the CLI's --json output.

Instants are UTC text (``...Z``) with the Beijing wall-clock time beside the ones a
customer reads (G-1); sizes are exact bytes, and the storage block is printed in bytes
(G-4: 200 MB = 209,715,200 bytes).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tsa_server.clock.beijing import display, utc_text
from tsa_server.evidence.records import CreditEntry, Item, StoredNotice
from tsa_server.fees import (
    STORAGE_BLOCK_BYTES,
    EvidenceItem,
    Forecast,
    Lot,
    Notice,
    PricingPolicy,
    downloadable,
    filing_status,
    purge_at,
)
from tsa_server.fees.access import storage_text


def when(t: datetime | None) -> str | None:
    return None if t is None else utc_text(t)


def beijing_text(t: datetime | None) -> str | None:
    return None if t is None else display(t)


def item_json(
    item: Item,
    fee: EvidenceItem,
    now: datetime,
    policy: PricingPolicy,
    *,
    terms: dict[str, Any] | None = None,
    base: str = "/api/v1/items",
) -> dict[str, Any]:
    """An evidence item as the API shows it (REC-1, REC-9 detail)."""
    terms = terms or {}
    out: dict[str, Any] = {
        "id": item.id,
        "serial": fee.serial,
        "mode": fee.mode.value,
        "sha256": item.sha256,
        "sha512": item.sha512,
        "sm3": item.sm3,
        "size": item.size,
        "file_name": item.file_name,
        "media_type": item.media_type,
        "depositor": item.depositor,
        "work_title": item.title,
        "work_content": fee.form.work_content,
        "statement": item.statement,
        "handle": fee.form.handle,
        "tags": list(item.tags),
        "certified_at": when(fee.certified_at),
        "certified_at_beijing": beijing_text(fee.certified_at),
        "epoch": fee.epoch,
        "ledger_index": item.ledger_index,
        "evidence_record_sha256": terms.get("record_sha256"),
        "ops_index": terms.get("ops_index"),
        "filing_status": filing_status(fee, now).value,
        "storage": None,
        "downloads": {},
    }
    s = fee.storage
    if s is not None:
        out["storage"] = {
            "status": s.status.value,
            "text": storage_text(fee),
            "term": s.term.number,
            "anchor": when(s.term.anchor),
            "period": s.period,
            "fee_per_period": s.term.fee,
            "period_months": s.term.period_months,
            "prepaid": s.term.prepaid,
            "expires_at": when(s.expires_at),
            "expires_at_beijing": beijing_text(s.expires_at),
            "since": when(s.since),
            "auto_renew": s.auto_renew,
            "purge_at": when(purge_at(fee, policy)),
            "block_bytes": STORAGE_BLOCK_BYTES,
        }
    links: dict[str, str | None] = {}
    allowed = {a.value for a in downloadable(fee)}
    links["token"] = f"{base}/{item.id}/token.tsr"
    links["certificate"] = f"{base}/{item.id}/certificate.pdf"
    links["kit"] = f"{base}/{item.id}/kit.zip"
    links["original"] = f"{base}/{item.id}/original" if "original" in allowed else None
    out["downloads"] = links
    return out


def lot_json(lot: Lot, now: datetime) -> dict[str, Any]:
    return {
        "id": lot.lot_id,
        "purchased_at": when(lot.purchased_at),
        "lapses_at": when(lot.lapses_at),
        "lapses_at_beijing": beijing_text(lot.lapses_at),
        "quantity": lot.quantity,
        "remaining": lot.available,
        "held": lot.held,
        "used": lot.used,
        "lapsed": lot.lapsed + (0 if lot.valid_at(now) else lot.available),
        "adjusted": lot.adjusted,
        "usable": lot.available > 0 and lot.usable_at(now),
    }


def entry_json(e: CreditEntry) -> dict[str, Any]:
    return {
        "id": e.id,
        "kind": e.kind,
        "units": e.units,
        "lot": e.lot_id,
        "item": e.item_id,
        "period": e.period,
        "idempotency_key": e.idempotency_key,
        "at": (e.record or {}).get("at"),
        "created_at": when(e.created_at),
        "note": e.note,
    }


def notice_json(n: Notice | StoredNotice) -> dict[str, Any]:
    kind = n.kind if isinstance(n, StoredNotice) else n.kind.value
    return {
        "key": n.key,
        "kind": kind,
        "at": when(n.at),
        "subject": n.subject,
        "target": when(n.target),
        "target_beijing": beijing_text(n.target),
        "units": n.units,
        "covered": n.covered,
        "detail": n.detail,
    }


def forecast_json(fc: Forecast) -> dict[str, Any]:
    return {
        "now": when(fc.now),
        "balance": fc.balance,
        "total_due": fc.total_due,
        "shortfall": fc.shortfall,
        "low_balance": fc.low_balance,
        "first_uncovered": None
        if fc.first_uncovered is None
        else {
            "item": fc.first_uncovered.item_id,
            "due_at": when(fc.first_uncovered.due_at),
            "fee": fc.first_uncovered.fee,
        },
        "months": [
            {
                "start": when(m.start),
                "end": when(m.end),
                "due_units": m.due_units,
                "uncovered_units": m.uncovered_units,
                "lapsing_units": m.lapsing_units,
            }
            for m in fc.months
        ],
        "obligations": [
            {
                "item": o.item_id,
                "term": o.term,
                "period": o.period,
                "due_at": when(o.due_at),
                "due_at_beijing": beijing_text(o.due_at),
                "fee": o.fee,
                "covered": o.covered,
            }
            for o in fc.obligations
        ],
    }

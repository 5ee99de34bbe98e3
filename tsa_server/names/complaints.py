"""Trademark complaints against a held handle (H-13), on top of `Lifecycle`.

A registered-mark holder complains at any time against the current holder (rules:
trademark.py); the complaint stays open on the handle's record until an operator
decides: *uphold* moves the handle to the complainant at once (no hold for the former
holder, who cannot reclaim it; its change quota is not charged: the complainant starts
a new history), *dismiss* closes the complaint and changes nothing else.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .applicants import BrandProof, Mark, Shop, check_shop_state
from .core import Result
from .events import EventKind, event_time
from .lifecycle import Lifecycle
from .quota import ChangeHistory
from .reasons import Refusal, Refused
from .store import HandleRecord, HandleStatus, Holding
from .trademark import Complaint, Verdict, check_against_holder, check_complaint_mark
from .validation import check_shop_name


def mark_data(mark: Mark) -> dict[str, Any]:
    return {"kind": mark.kind.value, "text": mark.text, "filed_at": event_time(mark.filed_at)}


class Complaints(Lifecycle):
    """H-13: file a trademark complaint; the operator upholds or dismisses it."""

    def _held(self, handle: str) -> HandleRecord | Refused:
        rec = self.lookup(handle)
        if rec is None or rec.status is not HandleStatus.ACTIVE or rec.holding is None:
            return Refused(Refusal.NOT_HELD, handle)
        return rec

    def complain(
        self,
        handle: str,
        shop: Shop,
        mark: Mark | None,
        proof: BrandProof | None,
        *,
        shop_name: str | None = None,
        statement: str = "",
    ) -> Result:
        """H-13: `shop`, holding a registered mark for `handle`, complains against its
        holder; at any time (no objection window). `shop_name` (default the shop's
        name) is the name the handle heads if the complaint is upheld."""
        now = self._now()
        rec = self._held(handle)
        if isinstance(rec, Refused):
            return rec
        holder = rec.holding
        assert holder is not None
        refused = (
            check_shop_state(shop)
            or check_complaint_mark(mark, proof, handle, self.policy)
            or check_against_holder(
                shop, holder.shop_id, holder.account_id, holder.mark, rec.complaints
            )
            or self._bound(shop.shop_id)
        )
        if refused:
            return refused
        assert mark is not None and proof is not None
        c = check_shop_name(
            handle, shop_name or shop.name, self._lexicon(), self.policy, brand_proof=True
        )
        if c.refused:
            return c.refused
        assert c.shop_name is not None
        complaint = Complaint(
            shop.shop_id,
            shop.account_id,
            c.handle.text,
            c.shop_name.text,
            mark,
            proof,
            now,
            statement,
        )
        data = {
            "shop": shop.shop_id,
            "account": shop.account_id,
            "shop_name": complaint.shop_name,
            "mark": mark_data(mark),
            "proof": proof.to_json(),
            "statement": statement,
            "holder": holder.shop_id,
            "complaints": len(rec.complaints) + 1,
        }
        new = replace(rec, complaints=(*rec.complaints, complaint))
        return self._emit(
            EventKind.TRADEMARK_COMPLAINT_FILED, now, rec.key, rec.handle, data, put=[new]
        )

    def decide_complaint(
        self, handle: str, shop_id: str, verdict: Verdict, note: str = ""
    ) -> Result:
        """H-13: the operator upholds (the handle moves to the complainant) or dismisses
        (nothing changes) the open complaint of `shop_id`."""
        now = self._now()
        rec = self._held(handle)
        if isinstance(rec, Refused):
            return rec
        complaint = rec.complaint(shop_id)
        if complaint is None:
            return Refused(Refusal.NO_COMPLAINT, shop_id)
        rest = tuple(c for c in rec.complaints if c is not complaint)
        data: dict[str, Any] = {"shop": shop_id, "account": complaint.account_id, "note": note}
        if verdict is Verdict.DISMISS:
            data["complaints"] = len(rest)
            new = replace(rec, complaints=rest)
            return self._emit(
                EventKind.TRADEMARK_COMPLAINT_DISMISSED, now, rec.key, rec.handle, data, put=[new]
            )
        refused = self._bound(shop_id)
        if refused:
            return refused
        former = rec.holding
        assert former is not None
        holding = Holding(
            complaint.shop_id,
            complaint.account_id,
            complaint.handle,
            complaint.shop_name[len(complaint.handle) :],
            ChangeHistory(now),
            complaint.mark,
        )
        # the complainant holds a registered mark now: the other complaints are moot
        new = HandleRecord(rec.key, holding.handle, HandleStatus.ACTIVE, holding=holding)
        data.update(
            shop_name=holding.shop_name,
            mark=mark_data(complaint.mark),
            proof=complaint.proof.to_json(),
            former_shop=former.shop_id,
            former_account=former.account_id,
            former_shop_name=former.shop_name,
            former_since=event_time(former.history.approved_at),
            dropped=[c.shop_id for c in rest],
        )
        return self._emit(
            EventKind.TRADEMARK_COMPLAINT_UPHELD, now, rec.key, holding.handle, data, put=[new]
        )

"""Life of a held handle: change, custom change, release, reclaim, review (H-10, H-12).

A handle change spends the quota (5, one per 30 days); the custom part changes
freely. A released handle is held one month for the former owner (A-16); a penalty
removal waits for the platform's review and is never released automatically.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from .applicants import Shop, check_shop_state
from .core import BLOCKING, RegistryCore, ReleaseCause, Result, ReviewOutcome
from .events import EventKind, event_time
from .holds import HoldKind, check_take, release_hold, review_hold
from .quota import ChangeHistory, changes_left, check_change
from .reasons import Refusal, Refused
from .store import HandleRecord, HandleStatus, Holding
from .validation import check_custom, check_shop_name


class Lifecycle(RegistryCore):
    """Operations on handles that already have (or had) a holder."""

    def change_handle(
        self, account_id: str, shop_id: str, new_handle: str, custom: str | None = None
    ) -> Result:
        """H-10: change the handle (quota, 30-day spacing); the old one is held for the
        former owner for a month (H-12, A-16)."""
        now = self._now()
        rec = self._holding_of(shop_id, account_id)
        if isinstance(rec, Refused):
            return rec
        old = rec.holding
        assert old is not None
        refused = check_change(old.history, now, self.policy)
        if refused:
            return refused
        custom = old.custom if custom is None else custom
        c = check_shop_name(new_handle, new_handle + custom, self._lexicon(), self.policy)
        if c.refused:
            return c.refused
        new_key = self.key(new_handle)
        put: list[HandleRecord] = []
        data: dict[str, Any] = {"shop": shop_id, "account": account_id, "old": old.handle}
        if new_key != rec.key and rec.complaints:
            return _complaint_open()
        if new_key != rec.key:
            target = self.lookup(new_handle, now)
            refused = self._change_target(target, account_id, now)
            if refused:
                return refused
            hold = release_hold(account_id, shop_id, now, self.policy)
            put.append(HandleRecord(rec.key, rec.handle, HandleStatus.ON_HOLD, hold=hold))
            assert hold.available_at is not None
            data["old_available_at"] = event_time(hold.available_at)
        assert c.custom is not None
        holding = Holding(
            shop_id, account_id, c.handle.text, c.custom, old.history.with_change(now)
        )
        put.append(HandleRecord(new_key, holding.handle, HandleStatus.ACTIVE, holding=holding))
        data.update(
            shop_name=holding.shop_name,
            changes_used=len(holding.history.changes),
            changes_left=changes_left(holding.history, self.policy),
        )
        return self._emit(EventKind.HANDLE_CHANGED, now, new_key, holding.handle, data, put=put)

    def _change_target(
        self, target: HandleRecord | None, account_id: str, now: datetime
    ) -> Refused | None:
        if target is None:
            return None
        if target.status is HandleStatus.ON_HOLD and target.hold is not None:
            return check_take(target.hold, account_id, now, self.policy)
        if target.status is HandleStatus.PENDING:
            return Refused(Refusal.PENDING_ELSEWHERE, target.handle)
        return Refused(BLOCKING[target.status], target.handle)

    def change_custom(self, account_id: str, shop_id: str, custom: str) -> Result:
        """H-10: the custom part (自定义区) changes without limit; the quota is untouched."""
        now = self._now()
        rec = self._holding_of(shop_id, account_id)
        if isinstance(rec, Refused):
            return rec
        old = rec.holding
        assert old is not None
        c = check_custom(old.handle, custom, self._lexicon(), self.policy)
        if c.refused:
            return c.refused
        assert c.custom is not None
        holding = replace(old, custom=c.custom)
        data = {
            "shop": shop_id,
            "account": account_id,
            "old_custom": old.custom,
            "custom": holding.custom,
            "shop_name": holding.shop_name,
        }
        return self._emit(
            EventKind.CUSTOM_CHANGED,
            now,
            rec.key,
            rec.handle,
            data,
            put=[replace(rec, holding=holding)],
        )

    # ---------------------------------------------------- release / reclaim
    def release(
        self, shop_id: str, cause: ReleaseCause, *, account_id: str | None = None
    ) -> Result:
        """H-12: a deleted (or withdrawing) shop's handle is held one month for the former
        owner; a penalty removal goes to RECLAIM_REVIEW and is never auto-released."""
        now = self._now()
        if cause is ReleaseCause.WITHDRAWN and account_id is None:
            raise ValueError("a withdrawal names the account giving the handle up")
        rec = self._holding_of(shop_id, account_id)
        if isinstance(rec, Refused):
            return rec
        holding = rec.holding
        assert holding is not None
        beta = self.policy.beta
        if cause is ReleaseCause.WITHDRAWN and beta is not None and now < beta.ends_at:
            return Refused(Refusal.CHANGE_FROZEN, "no withdrawal during the beta (H-10)")
        if cause is ReleaseCause.WITHDRAWN and rec.complaints:
            return _complaint_open()
        if cause is ReleaseCause.PENALTY:
            hold = review_hold(holding.account_id, shop_id, now)
            status = HandleStatus.RECLAIM_REVIEW
        else:
            hold = release_hold(holding.account_id, shop_id, now, self.policy)
            status = HandleStatus.ON_HOLD
        data = {
            "shop": shop_id,
            "account": holding.account_id,
            "cause": cause.value,
            "status": status.value,
            "available_at": event_time(hold.available_at) if hold.available_at else None,
        }
        new = HandleRecord(rec.key, rec.handle, status, hold=hold)
        return self._emit(EventKind.RELEASED, now, rec.key, rec.handle, data, put=[new])

    def reclaim(self, shop: Shop, handle: str, *, shop_name: str | None = None) -> Result:
        """A-16: during the hold only the former owner's account may take the handle back,
        for one of its live shops; the change history restarts."""
        now = self._now()
        rec = self.store.get(self.key(handle))
        if rec is None or rec.hold is None:
            return Refused(Refusal.NOTHING_TO_RECLAIM, handle)
        if rec.hold.kind is HoldKind.RECLAIM_REVIEW:
            return Refused(Refusal.UNDER_REVIEW, rec.handle)
        if rec.hold.expired(now):
            return Refused(Refusal.HOLD_EXPIRED, "the hold is over: apply instead")
        refused = (
            check_take(rec.hold, shop.account_id, now, self.policy)
            or check_shop_state(shop)
            or self._bound(shop.shop_id)
        )
        if refused:
            return refused
        c = check_shop_name(
            rec.handle, shop_name or shop.name, self._lexicon(), self.policy, brand_proof=True
        )
        if c.refused:
            return c.refused
        assert c.custom is not None
        holding = Holding(shop.shop_id, shop.account_id, rec.handle, c.custom, ChangeHistory(now))
        new = HandleRecord(rec.key, rec.handle, HandleStatus.ACTIVE, holding=holding)
        data = {
            "shop": shop.shop_id,
            "account": shop.account_id,
            "shop_name": holding.shop_name,
            "former_shop": rec.hold.former_shop,
        }
        return self._emit(EventKind.RECLAIMED, now, rec.key, rec.handle, data, put=[new])

    def resolve_review(self, handle: str, outcome: ReviewOutcome, note: str = "") -> Result:
        """H-12: the platform decides a penalty-removed handle (视情况回收)."""
        now = self._now()
        rec = self.store.get(self.key(handle))
        if rec is None or rec.status is not HandleStatus.RECLAIM_REVIEW:
            return Refused(Refusal.NOT_UNDER_REVIEW, handle)
        data = {"outcome": outcome.value, "note": note}
        if outcome is ReviewOutcome.RELEASE:
            return self._emit(
                EventKind.REVIEW_RESOLVED, now, rec.key, rec.handle, data, delete=[rec.key]
            )
        new = replace(rec, status=HandleStatus.RETAINED)
        return self._emit(EventKind.REVIEW_RESOLVED, now, rec.key, rec.handle, data, put=[new])


def _complaint_open() -> Refused:
    # H-13: a holder must not dodge an open trademark complaint by moving away from the
    # handle or giving it up; the operator decides first.
    return Refused(
        Refusal.COMPLAINT_PENDING,
        "a trademark complaint against this handle is open: it cannot be changed to "
        "another handle or withdrawn until the operator decides",
    )

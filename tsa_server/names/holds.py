"""What happens to a handle when its shop goes away (H-11, H-12, A-16).

A fully released (deleted) shop's handle is held for `hold_months` (one month, G-2
arithmetic from the deletion instant); during the hold only the former owner's
account may reclaim it (A-16), afterwards anyone may apply. A shop removed by
penalty sends its handle to review; it is never released automatically.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from tsa_server.clock.beijing import add_months, display, require_aware

from .config import HoldReclaim, Policy
from .reasons import Refusal, Refused


class HoldKind(enum.StrEnum):
    ON_HOLD = "on_hold"  # H-12: shop deleted, one-month hold
    RECLAIM_REVIEW = "reclaim_review"  # H-12: penalty removal (节点处罚清退)


@dataclass(frozen=True)
class HandleHold:
    """A handle that left its shop: who had it, since when, and until when it is kept."""

    kind: HoldKind
    former_account: str
    former_shop: str
    since: datetime
    available_at: datetime | None

    def expired(self, at: datetime) -> bool:
        """True from `available_at` on (half-open, G-3); never for a review hold."""
        return self.available_at is not None and require_aware(at) >= self.available_at


def release_hold(account: str, shop: str, deleted_at: datetime, policy: Policy) -> HandleHold:
    """H-12: `available_at = add_months(deleted_at, 1)` (also used when a holder withdraws
    or changes away from a handle)."""
    deleted_at = require_aware(deleted_at)
    return HandleHold(
        HoldKind.ON_HOLD, account, shop, deleted_at, add_months(deleted_at, policy.hold_months)
    )


def review_hold(account: str, shop: str, removed_at: datetime) -> HandleHold:
    """H-12: penalty removal goes to review (RECLAIM_REVIEW), no release date."""
    return HandleHold(HoldKind.RECLAIM_REVIEW, account, shop, require_aware(removed_at), None)


def check_take(hold: HandleHold, account: str, at: datetime, policy: Policy) -> Refused | None:
    """May `account` take the held handle at `at`? None if yes."""
    if hold.kind is HoldKind.RECLAIM_REVIEW:
        return Refused(Refusal.UNDER_REVIEW, "removed by penalty; platform review")
    if hold.expired(at):
        return None
    if policy.hold_reclaim_by is HoldReclaim.FORMER_OWNER and account == hold.former_account:
        return None
    assert hold.available_at is not None
    return Refused(Refusal.ON_HOLD, f"held until {display(hold.available_at)}")

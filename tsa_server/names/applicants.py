"""Who may apply, and when (H-11, H-14, H-15).

Group 1 (brand certification): a registered mark (R), or a mark application (TM) at
least `mark_min_age_months` old at the application instant (G-2 arithmetic), listed
in the national trademark database; the handle is the mark's text; not bound to the
beta window. Group 2 (public beta): everybody else; during a configured beta the
shop must have opened before the cut-off and the application must fall inside
`[applications_open, applications_close)`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from tsa_server.clock.beijing import add_months, display, require_aware

from .config import Policy
from .reasons import Refusal, Refused
from .validation import name_key


class ShopState(enum.StrEnum):
    ACTIVE = "active"
    BLOCKED = "blocked"  # 屏蔽期
    DELETED = "deleted"


class Group(enum.IntEnum):
    BRAND = 1  # 面向群体一
    PUBLIC = 2  # 面向群体二


class MarkKind(enum.StrEnum):
    REGISTERED = "R"
    APPLICATION = "TM"


@dataclass(frozen=True)
class Mark:
    """A trademark offered as proof by a Group-1 applicant."""

    kind: MarkKind
    text: str
    filed_at: datetime
    listed: bool = True  # visible in the national trademark database

    def __post_init__(self) -> None:
        object.__setattr__(self, "filed_at", require_aware(self.filed_at, "filed_at"))


@dataclass(frozen=True)
class BrandProof:
    """What a Group-1 applicant shows for its mark (H-9, H-14), for the operator's review:
    the registration (or application) number, and the proof document as an evidence
    item deposited with this TSA (`evidence_item`) and/or its SHA-256 (`evidence_sha256`,
    lowercase hex)."""

    registration_number: str
    evidence_item: str | None = None
    evidence_sha256: str | None = None

    def __post_init__(self) -> None:
        number = self.registration_number.strip()
        if not number or len(number) > 64 or not number.isprintable():
            raise ValueError("registration_number: 1-64 printable characters")
        object.__setattr__(self, "registration_number", number)
        if self.evidence_item is None and self.evidence_sha256 is None:
            raise ValueError("give the proof document: evidence_item or evidence_sha256")
        sha = self.evidence_sha256
        if sha is not None and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
            raise ValueError("evidence_sha256: 64 lowercase hex digits")

    def to_json(self) -> dict[str, str | None]:
        return {
            "registration_number": self.registration_number,
            "evidence_item": self.evidence_item,
            "evidence_sha256": self.evidence_sha256,
        }


@dataclass(frozen=True)
class Shop:
    """A snapshot of the shop applying, supplied by the shop system."""

    shop_id: str
    account_id: str
    name: str
    opened_at: datetime
    state: ShopState = ShopState.ACTIVE

    def __post_init__(self) -> None:
        object.__setattr__(self, "opened_at", require_aware(self.opened_at, "opened_at"))


def check_shop_state(shop: Shop) -> Refused | None:
    """H-11: blocked (屏蔽期) and deleted shops cannot apply."""
    if shop.state is ShopState.BLOCKED:
        return Refused(Refusal.SHOP_BLOCKED, shop.shop_id)
    if shop.state is ShopState.DELETED:
        return Refused(Refusal.SHOP_DELETED, "create a new shop to apply")
    return None


def search_direct_enabled(state: ShopState) -> bool:
    """H-11/H-18: a holder in its blocking period loses the search-direct benefit."""
    return state is ShopState.ACTIVE


def check_mark(mark: Mark | None, handle: str, at: datetime, policy: Policy) -> Refused | None:
    """H-14 Group 1: R, or TM at least 6 months old (`add_months(filed, 6) <= at`)."""
    if mark is None:
        return Refused(Refusal.MARK_REQUIRED, "group 1 needs a trademark")
    if not mark.listed:
        return Refused(Refusal.MARK_NOT_LISTED, mark.text)
    if mark.kind is MarkKind.APPLICATION:
        mature = add_months(mark.filed_at, policy.mark_min_age_months)
        if require_aware(at) < mature:
            shown = display(mature)
            return Refused(Refusal.MARK_TOO_RECENT, f"TM eligible from {shown}")
    if name_key(mark.text, policy) != name_key(handle, policy):
        return Refused(Refusal.MARK_MISMATCH, "the handle must be the mark's text")
    return None


def check_window(shop: Shop, at: datetime, policy: Policy) -> Refused | None:
    """H-15 Group 2: opening-date cut-off and application window of the beta, if any."""
    beta = policy.beta
    if beta is None:
        return None
    at = require_aware(at)
    if shop.opened_at >= beta.shop_opened_before:  # "before 07-31 (31st excluded)"
        return Refused(Refusal.SHOP_TOO_NEW, "must open before " + display(beta.shop_opened_before))
    if at < beta.applications_open:
        return Refused(Refusal.WINDOW_NOT_OPEN, display(beta.applications_open))
    if at >= beta.applications_close:
        return Refused(Refusal.WINDOW_CLOSED, display(beta.applications_close))
    return None


def check_eligibility(
    shop: Shop, group: Group, mark: Mark | None, handle: str, at: datetime, policy: Policy
) -> Refused | None:
    """H-11 + H-14 + H-15: None if `shop` may apply for `handle` at `at` in `group`."""
    refused = check_shop_state(shop)
    if refused:
        return refused
    if group is Group.BRAND:
        return check_mark(mark, handle, at, policy)
    return check_window(shop, at, policy)

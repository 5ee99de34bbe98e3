"""Trademark trump (H-13): pure rules of a mark holder's complaint against a held handle.

An unregistered but long-used handle is lost if someone else registers the mark and
wins a complaint; a registered-mark holder may complain at any time (no objection
window). Readings of this implementation ([DECISION]):

- only a **registered** mark (R) supports a complaint: a TM application is not a
  registration, and H-13 speaks of "registers the mark" / "holding a registered
  mark" (H-14's six-month-old TM is enough to *apply*, not to take a handle away);
- the proof is the registration number plus the certificate as an evidence item of
  the complainant's own organisation, as in a Group-1 application (H-9, H-14); that
  the mark's class covers the holder's main category is the operator's review;
- a holder whose own mark was certified (it got the handle as a Group-1 applicant)
  holds a mark for it: a complaint is refused (`holder_has_mark`); between two mark
  owners the trademark office decides, not this registry;
- one open complaint per complainant and handle; a dismissed one may be filed again.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from tsa_server.clock.beijing import require_aware

from .applicants import BrandProof, Mark, MarkKind, Shop
from .config import Policy
from .reasons import Refusal, Refused
from .validation import name_key


class Verdict(enum.StrEnum):
    """The operator's decision on a complaint."""

    UPHOLD = "uphold"  # the handle moves to the complainant
    DISMISS = "dismiss"  # nothing changes


@dataclass(frozen=True)
class Complaint:
    """A registered-mark holder's complaint against the current holder of a handle."""

    shop_id: str
    account_id: str
    handle: str  # NFKC form as complained about
    shop_name: str  # NFKC: the shop name the handle heads if the complaint is upheld
    mark: Mark
    proof: BrandProof
    filed_at: datetime
    statement: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "filed_at", require_aware(self.filed_at, "filed_at"))


def check_complaint_mark(
    mark: Mark | None, proof: BrandProof | None, handle: str, policy: Policy
) -> Refused | None:
    """H-13: a listed registered mark whose text is the handle, with its proof."""
    if mark is None:
        return Refused(Refusal.MARK_REQUIRED, "a complaint needs a registered mark")
    if not mark.listed:
        return Refused(Refusal.MARK_NOT_LISTED, mark.text)
    if mark.kind is not MarkKind.REGISTERED:
        return Refused(Refusal.REGISTERED_MARK_REQUIRED, "a TM application is not enough")
    if name_key(mark.text, policy) != name_key(handle, policy):
        return Refused(Refusal.MARK_MISMATCH, "the handle must be the mark's text")
    if proof is None:
        return Refused(Refusal.PROOF_REQUIRED, "the registration certificate")
    return None


def check_against_holder(
    shop: Shop,
    holder_shop: str,
    holder_account: str,
    holder_mark: Mark | None,
    open_complaints: Iterable[Complaint],
) -> Refused | None:
    """H-13: not against oneself, not against a holder with its own certified mark,
    one open complaint per complainant."""
    if shop.shop_id == holder_shop or shop.account_id == holder_account:
        return Refused(Refusal.SELF_COMPLAINT, shop.shop_id)
    if holder_mark is not None:
        return Refused(Refusal.HOLDER_HAS_MARK, f"{holder_mark.kind.value} {holder_mark.text}")
    if any(c.shop_id == shop.shop_id for c in open_complaints):
        return Refused(Refusal.COMPLAINT_PENDING, shop.shop_id)
    return None

"""What a caller asks of the registry, as plain values: who calls (`Caller`) and the
commands of names/operations.py. The web layer builds them from requests; nothing here
knows HTTP.

Accounts and shops: a caller's account id *and* shop id are its organisation id (one
shop per organisation; the shop's name is what the command gives, its opening date is
the organisation's creation). An organisation therefore only ever acts for its own shop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from .applicants import MarkKind, Shop

MAX_TEXT = 200  # characters of any text field (a handle is at most 14 bytes)


@dataclass(frozen=True)
class Caller:
    """The organisation behind an API key, and whether the key has the admin scope."""

    org_id: str
    key_id: str
    admin: bool = False
    opened_at: datetime | None = None  # the organisation's creation: when its shop opened

    def shop(self, shop_name: str) -> Shop:
        assert self.opened_at is not None, "a shop's command needs the organisation's creation"
        return Shop(self.org_id, self.org_id, shop_name, self.opened_at)


@dataclass(frozen=True)
class MarkClaim:
    """A mark as a brand applicant (H-14) or a complainant (H-13) states it."""

    kind: MarkKind
    filed_at: str  # ISO 8601 date or date-time; Beijing time without an offset (G-1)
    registration_number: str
    text: str | None = None  # default: the handle


@dataclass(frozen=True)
class ProofClaim:
    """The proof document: an evidence item of the caller, by id and/or content SHA-256."""

    item_id: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class ApplyCommand:
    handle: str
    shop_name: str
    group: int = 2  # 1: brand holder with mark and proof; 2: public
    mark: MarkClaim | None = None
    proof: ProofClaim | None = None
    claims_brand: bool = False  # the request named a mark or a proof (even as null)


@dataclass(frozen=True)
class ComplaintCommand:
    shop_name: str
    mark: MarkClaim
    proof: ProofClaim
    statement: str = ""


@dataclass(frozen=True)
class DecisionCommand:
    """An operator's decision; which one depends on the fields given and the handle's
    state (names/operations.decide)."""

    winner: str | None = None
    note: str = ""
    metrics: Any = None  # {shop id: {metric: value}} as sent; checked by metrics_from_json
    outcome: str | None = None
    brand: str | None = None
    verdict: str | None = None
    complaint: str | None = None


class ProofItem(Protocol):
    @property
    def sha256(self) -> str: ...


class EvidenceItems(Protocol):
    """The evidence items a brand proof may name (the evidence store)."""

    def item(self, org_id: str, item_id: str) -> ProofItem | None: ...

    def items_by_sha256(self, org_id: str, sha256: str) -> Any: ...

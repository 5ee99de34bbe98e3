"""One change of an organisation's credit ledger, as EvidenceService._commit applies it:
what a computation wants committed in one store transaction, and the check that
re-applies its new entries to the entries then in the database (a writer that got there
first makes it fail: StaleChange, and the change is computed again)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tsa_server.evidence.fee_items import wallet_check
from tsa_server.evidence.records import Certified, CreditEntry, NewItem
from tsa_server.fees import InvalidEntry, LedgerConflict, LedgerEntry, Notice


class StaleChange(Exception):
    """The entries computed no longer apply: another writer committed first."""


def atomic_check(org_id: str, earlier: list[CreditEntry], added: list[CreditEntry]) -> None:
    try:
        wallet_check(org_id, earlier, added)
    except (InvalidEntry, LedgerConflict) as exc:
        raise StaleChange(str(exc)) from None


@dataclass(frozen=True)
class Change:
    """What a computation wants committed (see EvidenceService._commit)."""

    entries: tuple[LedgerEntry, ...] = ()
    item_id: str | None = None
    item_changes: dict[str, Any] | None = None
    terms: dict[str, Any] | None = None
    notices: tuple[Notice, ...] = ()
    new_item: tuple[str, NewItem, Certified] | None = None
    result: Any = None

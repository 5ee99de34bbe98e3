"""EvidenceService: the evidence deposits, credit lots and stored originals of every
organisation, joining the pure fee rules (tsa_server.fees) to the store (store.py), the
blob store (blobs.py), the issuer (RFC 3161 tokens, in the token ledger) and the
operations log. The HTTP handlers (web/evidence*.py) and the CLI (cli/evidence.py,
cli/fees.py) call this and nothing below it; served.py builds the served one.

Every change follows one pattern: read the organisation's credit entries, fold them into
a wallet, let a rule function compute the entries / new item state / notices, and commit
them in ONE store transaction whose `check` re-applies the new entries to the entries
then in the database (fee_items.wallet_check). A concurrent writer that got there first
makes the check fail; the change is then computed again from the new state (at most
`_ATTEMPTS` times), so the balance never goes negative and nothing is debited twice.

Deposits, uploads and re-uploads (S-9, S-12, T-3, T-4, T-6) are in deposits.py (a base
class of the service) and uploads.py; the commit machinery's Change in changes.py.

Monthly quota (REC-10): with [evidence] monthly_item_quota set, a batch that would take
the organisation's items certified in the current Beijing calendar month (plus the
units this process holds for deposits still running and uploads still arriving) past
the quota is refused whole (MonthlyQuotaExceeded) before anything is reserved.
Idempotency-Key claims of deposit requests are in idempotency.py (`self.idempotency`);
uploads claim units before storing a byte (uploads.py).

Off the event loop: every store and blob write, and the fee computations around them,
run in the service's worker threads (`off_loop`; the store gives each thread its own
SQLite connection), so time-stamp issuance on the loop never waits for a deposit's
fsyncs or an organisation's long credit history. In-process counters (units held and
claimed, originals in flight) change under one lock.

Every method takes the organisation id first and reaches items only through it: another
organisation's item id is answered exactly like a missing one (ItemNotFound).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import math
import re
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, BinaryIO, TypeVar

from tsa_server.accounts.times import utc_now
from tsa_server.evidence.blobs import BlobStore
from tsa_server.evidence.changes import Change, StaleChange, atomic_check
from tsa_server.evidence.deposits import (
    DepositResult,
    Deposits,
    DepositSpec,
    ItemFailure,
    evidence_record,
)
from tsa_server.evidence.errors import IdempotencyConflict, ItemNotFound, OriginalGone
from tsa_server.evidence.fee_items import (
    fee_item,
    item_changes,
    new_credit_entry,
    storage_columns,
    stored_notice,
    wallet_of,
)
from tsa_server.evidence.idempotency import IdempotencyKeys
from tsa_server.evidence.ports import OpsRecorder, Timestamp
from tsa_server.evidence.records import (
    CreditEntry,
    Item,
    StoredNotice,
)
from tsa_server.evidence.settings import EvidenceSettings
from tsa_server.evidence.store import EvidenceStorage
from tsa_server.fees import (
    DEFAULT_POLICY,
    Artefact,
    EvidenceItem,
    FieldError,
    Forecast,
    LedgerConflict,
    Lot,
    Notice,
    OriginalLocked,
    Outcome,
    PricingPolicy,
    QuotaExceeded,
    StorageStatus,
    Wallet,
    delete_original,
    forecast,
    purchase,
    reinstate,
    reminders_due,
    require_download,
    set_auto_renew,
)
from tsa_server.fees.entries import purchase_key
from tsa_server.fees.quotas import Usage, check_quota, month_window

log = logging.getLogger("tsa.evidence")

__all__ = [  # importers of the deposit types and the commit machinery find them here
    "Change",
    "DepositResult",
    "DepositSpec",
    "EvidenceService",
    "EvidenceSettings",
    "ItemFailure",
    "MonthlyQuotaExceeded",
    "StaleChange",
    "atomic_check",
    "evidence_record",
]

#: Recomputations of one change when another writer committed first.
_ATTEMPTS = 5
#: Most units one lot grant may hold.
MAX_LOT_UNITS = 1_000_000
_GRANT_KEY = re.compile(r"[A-Za-z0-9._:/-]{1,100}")

#: Worker threads of one service: store writes serialise on SQLite's lock anyway.
WORKERS = 2
T = TypeVar("T")


class MonthlyQuotaExceeded(QuotaExceeded):
    """REC-10: the batch would take the month's certified items past the quota."""

    def __init__(self, usage: Usage, requested: int, now: datetime) -> None:
        super().__init__(
            f"monthly quota of {usage.limit} certified items reached: {usage.used} used, "
            f"{requested} requested; the quota renews at the next Beijing month"
        )
        self.usage, self.requested = usage, requested
        self.retry_after = max(1, math.ceil((usage.end - now).total_seconds()))


class EvidenceService(Deposits):
    """Deposits, credits, storage lifecycle, reminders and forecast (module docstring)."""

    def __init__(
        self,
        store: EvidenceStorage,
        blobs: BlobStore,
        timestamp: Timestamp,
        *,
        ops: OpsRecorder | None = None,
        policy: PricingPolicy = DEFAULT_POLICY,
        settings: EvidenceSettings | None = None,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store, self.blobs, self._timestamp = store, blobs, timestamp
        self.ops = ops  # tsa_server.issuance.opslog.OpsLog; None only in unit tests
        self.policy = policy
        self.settings = settings or EvidenceSettings()
        self.now = now
        self._lock = threading.Lock()  # the counters below, across threads
        self._in_flight: Counter[str] = Counter()  # originals of uploads still running
        self._held: Counter[str] = Counter()  # units of running deposits, per organisation
        self._claimed: Counter[str] = Counter()  # units claimed by uploads still arriving
        self.idempotency = IdempotencyKeys(store, now)
        self.live_batches: set[str] = set()  # deposits running in this process
        self._executor = ThreadPoolExecutor(WORKERS, thread_name_prefix="tsa-evidence")

    async def off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a worker thread of the service. A cancelled caller still waits
        for work already started (short, and durable once begun), then is cancelled."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, functools.partial(fn, *args))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if not future.done():
                await asyncio.wait([future])
            if not future.cancelled():
                future.exception()  # retrieved: the caller is cancelled anyway
            raise

    def close(self) -> None:
        """Let running work finish and stop the worker threads."""
        self._executor.shutdown(wait=True)

    # ------------------------------------------------------------ reading

    def wallet(self, org_id: str) -> Wallet:
        return wallet_of(self.store.credit_entries(org_id))

    def _org(self, org_id: str) -> None:
        if self.store.organisation(org_id) is None:
            raise ItemNotFound(f"no organisation {org_id}")

    def item(self, org_id: str, item_id: str) -> Item:
        item = self.store.item(org_id, item_id)
        if item is None or item.token is None:
            raise ItemNotFound(f"no item {item_id}")
        return item

    def fee_item(self, org_id: str, item_id: str) -> EvidenceItem:
        item = self.item(org_id, item_id)
        return fee_item(item, self.store.item_terms(org_id, item_id), self.policy)

    def items(self, org_id: str, *, limit: int = 100, offset: int = 0) -> list[Item]:
        return [i for i in self.store.items(org_id, limit=limit, offset=offset) if i.token]

    def fee_items(self, org_id: str, *, holding_original: bool = False) -> list[EvidenceItem]:
        rows = self.store.items_with_terms(org_id, holding_original=holding_original)
        return [fee_item(item, terms, self.policy) for item, terms in rows]

    def view(self, org_id: str, item: Item) -> dict[str, Any]:
        """The item's JSON form (views.item_json)."""
        from tsa_server.evidence.views import item_json

        terms = self.store.item_terms(org_id, item.id)
        fee = fee_item(item, terms, self.policy)
        return item_json(item, fee, self.now(), self.policy, terms=terms)

    def usage(self, org_id: str, at: datetime | None = None) -> Usage:
        """REC-10: the organisation's certified items in the current Beijing month
        (plus units held by its deposits running in this process) against the quota."""
        start, end = month_window(at or self.now())
        running = self._held[org_id] + self._claimed[org_id]
        used = self.store.count_certified(org_id, start, end) + running
        quota = self.settings.monthly_item_quota
        return Usage(start, end, used, quota or None)

    def require_quota(self, org_id: str, items: int) -> None:
        """MonthlyQuotaExceeded when `items` more would pass the monthly quota."""
        now = self.now()
        usage = self.usage(org_id, now)
        try:
            check_quota(usage, items)
        except QuotaExceeded:
            raise MonthlyQuotaExceeded(usage, items, now) from None

    def lots(self, org_id: str) -> list[Lot]:
        """The organisation's lots, in consumption order (FEFO, A-19)."""
        return sorted(self.wallet(org_id).lots.values(), key=lambda lot: lot.fefo_key)

    def balance(self, org_id: str, at: datetime | None = None) -> int:
        return self.wallet(org_id).balance(at or self.now())

    def reminders(self, org_id: str) -> tuple[Notice, ...]:
        """REC-3 reminders and the low-balance alert due now."""
        now = self.now()
        return reminders_due(self.wallet(org_id), self.fee_items(org_id), now, self.policy)

    def forecast(self, org_id: str) -> Forecast:
        """REC-3: the next months' storage obligations against the balance."""
        return forecast(self.wallet(org_id), self.fee_items(org_id), self.now(), self.policy)

    def notices(self, org_id: str, limit: int = 100) -> list[StoredNotice]:
        return self.store.notices(org_id, limit=limit)

    def token(self, org_id: str, item_id: str) -> bytes:
        """The item's TimeStampToken: downloadable in every state (A-6, REC-4)."""
        item = self.item(org_id, item_id)
        assert item.token is not None
        return item.token

    def open_original(self, org_id: str, item_id: str) -> tuple[Item, BinaryIO]:
        """The stored original, only while ACTIVE (S-10); OriginalLocked while EXPIRED,
        OriginalGone once deleted or purged (or for a hash-only item)."""
        item = self.item(org_id, item_id)
        fee = fee_item(item, self.store.item_terms(org_id, item_id), self.policy)
        try:
            require_download(fee, Artefact.ORIGINAL)
        except OriginalLocked as exc:
            if fee.status is StorageStatus.EXPIRED:
                raise
            raise OriginalGone(str(exc)) from None
        assert item.blob_key is not None
        return item, self.blobs.open(item.blob_key)

    # ------------------------------------------------------------ committing

    def _commit(self, org_id: str, compute: Callable[[Wallet], Change]) -> Change:
        """Compute a change from the current wallet and commit it atomically (see the
        module docstring); recompute when another writer committed first."""
        for attempt in range(_ATTEMPTS):
            change = compute(self.wallet(org_id))
            try:
                self.store.commit_change(
                    org_id,
                    entries=[new_credit_entry(org_id, e) for e in change.entries],
                    check=atomic_check,
                    new_item=change.new_item,
                    item_id=change.item_id,
                    item_changes=change.item_changes,
                    terms=change.terms,
                    notices=[stored_notice(org_id, n) for n in change.notices],
                )
            except (StaleChange, IdempotencyConflict) as exc:
                log.info("credit change of %s recomputed (%s), attempt %d", org_id, exc, attempt)
                continue
            return change
        raise LedgerConflict(f"credit ledger of {org_id} busy; try again")

    def apply_outcome(self, org_id: str, outcome: Outcome) -> None:
        """Commit one rule outcome (entries + item storage + notices) in one transaction."""
        self._commit(org_id, lambda wallet: self._outcome_change(org_id, outcome))

    def _outcome_change(self, org_id: str, outcome: Outcome) -> Change:
        item = outcome.item
        if item is None:
            return Change(entries=outcome.entries, notices=outcome.notices)
        assert item.storage is not None
        stored = self.item(org_id, item.item_id)
        terms = storage_columns(item.storage)
        if self.store.item_terms(org_id, item.item_id) is None:  # stored without us
            terms.update(epoch=item.epoch, work_content="", handle="", record_sha256="")
        return Change(
            entries=outcome.entries,
            item_id=item.item_id,
            item_changes=item_changes(item.storage, stored.sha256),
            terms=terms,
            notices=outcome.notices,
        )

    # ------------------------------------------------------------ credit lots

    def grant_lot(
        self, org_id: str, units: int, key: str, *, note: str = "", at: datetime | None = None
    ) -> tuple[Lot, bool]:
        """P-1: an operator grants a lot of `units` credits, lapsing 12 months on (P-3).
        Idempotent by `key`: the same key returns the same lot (created False); the same
        key with another quantity is a LedgerConflict."""
        self._org(org_id)
        errors = {}
        if isinstance(units, bool) or not isinstance(units, int) or not 1 <= units <= MAX_LOT_UNITS:
            errors["units"] = f"an integer 1-{MAX_LOT_UNITS}"
        if not isinstance(key, str) or not _GRANT_KEY.fullmatch(key):
            errors["idempotency_key"] = "1-100 characters of A-Z a-z 0-9 . _ : / -"
        if not isinstance(note, str) or len(note) > 500 or not note.isprintable():
            errors["note"] = "printable text of at most 500 characters"
        if errors:
            raise FieldError(errors)
        lot_id = "lot_" + hashlib.sha256(f"{org_id}\x00{key}".encode()).hexdigest()[:20]

        def compute(wallet: Wallet) -> Change:
            old = wallet.entry(purchase_key(lot_id))
            if old is not None:
                if old.units != units:
                    raise LedgerConflict(purchase_key(lot_id))
                return Change(result=False)
            when = at or self.now()
            return Change(purchase(wallet, lot_id, units, when, self.policy, note), result=True)

        created = self._commit(org_id, compute).result
        return self.wallet(org_id).lots[lot_id], bool(created)

    def entries(self, org_id: str, *, after_id: int = 0, limit: int = 100) -> list[CreditEntry]:
        return self.store.credit_entries(org_id, after_id=after_id, limit=limit)

    # ------------------------------------------------------------ storage lifecycle

    def drop_blob_if_unused(self, key: str) -> bool:
        """Delete an original no item holds and no request is storing (dedup-safe)."""
        with self._lock:  # an upload installing this key waits (install_staged)
            if self._in_flight.get(key):
                return False
            return self.blobs.drop_if_unused(key, lambda: bool(self.store.blob_references(key)))

    def delete_original(self, org_id: str, item_id: str, *, downloaded_confirmed: bool) -> Item:
        """S-8 / R-9 / R-10: delete the stored original; no storage fee afterwards."""
        fee = self.fee_item(org_id, item_id)
        outcome = delete_original(fee, self.now(), downloaded_confirmed=downloaded_confirmed)
        stored = self.item(org_id, item_id)
        self.apply_outcome(org_id, outcome)
        if stored.blob_key is not None:
            self.drop_blob_if_unused(stored.blob_key)
        return self.item(org_id, item_id)

    def set_auto_renew(self, org_id: str, item_id: str, on: bool) -> Item:
        """S-7 [EXT]: automatic renewal on or off (off: the original expires, without a
        debit, at the end of the paid period; the grace window still applies)."""
        outcome = set_auto_renew(self.fee_item(org_id, item_id), on, self.now())
        self.apply_outcome(org_id, outcome)
        return self.item(org_id, item_id)

    def reinstate(self, org_id: str, item_id: str) -> Item:
        """S-10 / R-14: pay the missed period(s) within the grace window; ACTIVE again."""

        def compute(wallet: Wallet) -> Change:
            outcome = reinstate(wallet, self.fee_item(org_id, item_id), self.now(), self.policy)
            return self._outcome_change(org_id, outcome)

        self._commit(org_id, compute)
        return self.item(org_id, item_id)

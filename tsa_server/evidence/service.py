"""EvidenceService: the evidence deposits, credit lots and stored originals of every
organisation, joining the pure fee rules (tsa_server.fees) to the store (store.py), the
blob store (blobs.py), the issuer (RFC 3161 tokens, in the token ledger) and the
operations log. The HTTP handlers (web/evidence.py) and the CLI (evidence_cli.py) call
this and nothing below it.

Every change follows one pattern: read the organisation's credit entries, fold them into
a wallet, let a rule function compute the entries / new item state / notices, and commit
them in ONE store transaction whose `check` re-applies the new entries to the entries
then in the database (fee_items.wallet_check). A concurrent writer that got there first
makes the check fail; the change is then computed again from the new state (at most
`_ATTEMPTS` times), so the balance never goes negative and nothing is debited twice.

Deposits (S-12, P-2, P-7, P-8, T-3, T-4, T-6): the whole batch reserves one unit per item
at once or nothing; each item is then time-stamped over its SHA-256 through
`Issuer.timestamp` (same path and ledger as any client); a certified item is stored with
its token, storage term and CONSUME entry in one transaction, after its evidence record
(a commitment: the SHA-256 of the record's canonical JSON, never the metadata itself)
went to the operations log; an item the TSA cannot time-stamp gets its unit back by a
REFUND entry.

Monthly quota (REC-10): with [evidence] monthly_item_quota set, a batch that would take
the organisation's items certified in the current Beijing calendar month (plus the
units this process holds for deposits still running) past the quota is refused whole
(MonthlyQuotaExceeded) before anything is reserved. Idempotency-Key claims of deposit
requests are in idempotency.py (`self.idempotency`).

Every method takes the organisation id first and reaches items only through it: another
organisation's item id is answered exactly like a missing one (ItemNotFound).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO

from tsa_server.evidence.accounts import new_id
from tsa_server.evidence.blobs import BlobRef, FileBlobStore
from tsa_server.evidence.errors import IdempotencyConflict, InvalidInput, ItemNotFound
from tsa_server.evidence.fee_items import (
    fee_item,
    item_changes,
    new_credit_entry,
    serial_hex,
    storage_columns,
    stored_notice,
    token_facts,
    wallet_check,
    wallet_of,
)
from tsa_server.evidence.idempotency import IdempotencyKeys
from tsa_server.evidence.records import (
    MAX_TEXT_CHARS,
    Certified,
    CreditEntry,
    Item,
    ItemMode,
    NewItem,
    StoredNotice,
    canonical_json,
    check_text,
)
from tsa_server.evidence.store import EvidenceStore
from tsa_server.evidence.times import utc_now
from tsa_server.fees import (
    DEFAULT_POLICY,
    Artefact,
    DepositForm,
    Digests,
    EvidenceItem,
    FieldError,
    Forecast,
    InvalidEntry,
    LedgerConflict,
    LedgerEntry,
    Lot,
    Mode,
    Notice,
    Outcome,
    PricingPolicy,
    QuotaExceeded,
    Wallet,
    certified_notice,
    consume,
    delete_original,
    forecast,
    new_item,
    purchase,
    refund,
    reinstate,
    reminders_due,
    require_download,
    reserve,
    reupload,
    set_auto_renew,
)
from tsa_server.fees.entries import purchase_key
from tsa_server.fees.quotas import Usage, check_quota, month_window

log = logging.getLogger("tsa.evidence")

#: Recomputations of one change when another writer committed first.
_ATTEMPTS = 5
#: Most units one lot grant may hold.
MAX_LOT_UNITS = 1_000_000
_GRANT_KEY = re.compile(r"[A-Za-z0-9._:/-]{1,100}")

Timestamp = Callable[[bytes, str], Awaitable[Any]]  # Issuer.timestamp


class MonthlyQuotaExceeded(QuotaExceeded):
    """REC-10: the batch would take the month's certified items past the quota."""

    def __init__(self, usage: Usage, requested: int, now: datetime) -> None:
        super().__init__(
            f"monthly quota of {usage.limit} certified items reached: {usage.used} used, "
            f"{requested} requested; the quota renews at the next Beijing month"
        )
        self.usage, self.requested = usage, requested
        self.retry_after = max(1, math.ceil((usage.end - now).total_seconds()))


class StaleChange(Exception):
    """The entries computed no longer apply: another writer committed first."""


def atomic_check(org_id: str, earlier: list[CreditEntry], added: list[CreditEntry]) -> None:
    try:
        wallet_check(org_id, earlier, added)
    except (InvalidEntry, LedgerConflict) as exc:
        raise StaleChange(str(exc)) from None


@dataclass(frozen=True)
class EvidenceSettings:
    """[evidence] values the service needs."""

    max_upload_bytes: int = 1 << 30
    max_batch_items: int = 100
    operators: frozenset[str] = frozenset()  # organisations whose admins grant lots
    monthly_item_quota: int = 0  # items certified per organisation per month; 0: none


@dataclass(frozen=True)
class DepositSpec:
    """One item of a deposit, validated (digests, metadata; original already stored)."""

    mode: Mode
    digests: Digests
    form: DepositForm
    size: int | None = None
    tags: tuple[str, ...] = ()
    blob: BlobRef | None = None


@dataclass(frozen=True)
class Failure:
    """An item of a batch the TSA did not certify; its unit was refunded (T-6)."""

    index: int
    sha256: str
    reason: str


@dataclass(frozen=True)
class DepositResult:
    batch: str
    items: tuple[Item, ...]
    failures: tuple[Failure, ...]


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


@dataclass
class _Uploads:
    """Originals stored during one request: kept from deletion while it runs."""

    service: EvidenceService
    keys: list[str] = field(default_factory=list)

    async def put(self, chunks: Any) -> BlobRef:
        ref = await self.service.blobs.put_stream(
            chunks, max_bytes=self.service.settings.max_upload_bytes
        )
        self.service._in_flight[ref.key] += 1
        self.keys.append(ref.key)
        return ref


def check_digests(fields: dict[str, Any], where: str = "") -> Digests:
    """SHA-256 required, SHA-512 and SM3 optional, hex of the right length (FieldError)."""
    errors: dict[str, str] = {}
    lengths = {"sha256": 64, "sha512": 128, "sm3": 64}
    values: dict[str, str | None] = {}
    for name, length in lengths.items():
        raw = fields.get(name)
        if raw is None:
            if name == "sha256":
                errors[where + name] = "required"
            values[name] = None
        elif not isinstance(raw, str) or not re.fullmatch(f"[0-9a-fA-F]{{{length}}}", raw):
            errors[where + name] = f"must be {length} hexadecimal digits"
        else:
            values[name] = raw.lower()
    if errors:
        raise FieldError(errors)
    return Digests(values["sha256"] or "", values["sha512"], values["sm3"])


def evidence_record(item_id: str, spec: DepositSpec, certified: Certified) -> dict[str, Any]:
    """The evidence record of one deposit (REC-1), canonical JSON-ready."""
    f = spec.form
    return {
        "item": item_id,
        "mode": spec.mode.value,
        "sha256": spec.digests.sha256,
        "sha512": spec.digests.sha512,
        "sm3": spec.digests.sm3,
        "size": spec.size,
        "file_name": f.file_name,
        "media_type": f.media_type,
        "depositor": f.depositor,
        "work_title": f.work_title,
        "work_content": f.work_content,
        "statement": f.statement,
        "handle": f.handle,
        "tags": list(spec.tags),
        "serial": serial_hex(certified.serial),
        "ledger_index": certified.ledger_index,
        "certified_at": certified.certified_at.isoformat().replace("+00:00", "Z"),
    }


class EvidenceService:
    """Deposits, credits, storage lifecycle, reminders and forecast (module docstring)."""

    def __init__(
        self,
        store: EvidenceStore,
        blobs: FileBlobStore,
        timestamp: Timestamp,
        *,
        ops: Any | None = None,
        policy: PricingPolicy = DEFAULT_POLICY,
        settings: EvidenceSettings | None = None,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store, self.blobs, self._timestamp = store, blobs, timestamp
        self.ops = ops  # tsa_server.opslog.OpsLog; None only in unit tests
        self.policy = policy
        self.settings = settings or EvidenceSettings()
        self.now = now
        self._in_flight: Counter[str] = Counter()
        self._held: Counter[str] = Counter()  # units of running deposits, per organisation
        self.idempotency = IdempotencyKeys(store, now)
        self.live_batches: set[str] = set()  # deposits running in this process

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
        used = self.store.count_certified(org_id, start, end) + self._held[org_id]
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
        """The stored original, only while ACTIVE (S-10); OriginalLocked otherwise."""
        item = self.item(org_id, item_id)
        fee = fee_item(item, self.store.item_terms(org_id, item_id), self.policy)
        require_download(fee, Artefact.ORIGINAL)
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

    # ------------------------------------------------------------ deposits

    @asynccontextmanager
    async def uploads(self) -> AsyncIterator[_Uploads]:
        """Originals streamed in one request; on exit, those no item references are
        deleted (a refused or failed deposit keeps nothing)."""
        session = _Uploads(self)
        try:
            yield session
        finally:
            for key in session.keys:
                self._in_flight[key] -= 1
                if self._in_flight[key] <= 0:
                    del self._in_flight[key]
                self.drop_blob_if_unused(key)

    def drop_blob_if_unused(self, key: str) -> bool:
        """Delete an original no item holds and no request is storing (dedup-safe)."""
        if self._in_flight.get(key) or self.store.blob_references(key):
            return False
        return self.blobs.delete(key)

    def require_credits(self, org_id: str, units: int) -> None:
        """Refuse early (InsufficientCredits) when the balance cannot pay `units` now;
        the reservation itself is still atomic (deposit)."""
        from tsa_server.fees.lots import draw_units

        draw_units(self.wallet(org_id), units, self.now())

    async def deposit(self, org_id: str, specs: Sequence[DepositSpec]) -> DepositResult:
        """Certify a batch: reserve all units or none (T-4), then one token per item."""
        self._org(org_id)
        if not specs:
            raise FieldError({"items": "at least one item"})
        if len(specs) > self.settings.max_batch_items:
            raise FieldError({"items": f"at most {self.settings.max_batch_items} per batch"})
        problems: dict[str, str] = {}
        for index, spec in enumerate(specs):  # refuse now what the store would refuse later
            try:
                _values(spec)
            except InvalidInput as exc:
                where = f"items[{index}]" if len(specs) > 1 else "item"
                problems[where] = str(exc)
        if problems:
            raise FieldError(problems)
        batch = new_id("bat")
        ids = [new_id("itm") for _ in specs]
        now = self.now()
        # No await from the quota check to the reservation: no other deposit of this
        # process slips in between; its units count as used until each item is done.
        self.require_quota(org_id, len(specs))
        self.live_batches.add(batch)
        held = 0
        try:
            self._commit(org_id, lambda wallet: Change(reserve(wallet, batch, ids, now)))
            held = len(specs)
            self._held[org_id] += held
            done: list[Item] = []
            failures: list[Failure] = []
            for index, (item_id, spec) in enumerate(zip(ids, specs, strict=True)):
                try:
                    done.append(await self._certify(org_id, item_id, spec))
                except asyncio.CancelledError:
                    self._refund(org_id, item_id, "request cancelled")
                    raise
                except Exception as exc:  # noqa: BLE001 - any failure refunds the unit (T-6)
                    reason = _reason(exc)
                    log.warning(
                        "deposit %s of %s not certified: %s: %s",
                        item_id,
                        org_id,
                        type(exc).__name__,
                        exc,
                    )
                    self._refund(org_id, item_id, reason)
                    failures.append(Failure(index, spec.digests.sha256, reason))
                finally:  # certified (counted by the store now) or refunded
                    held -= 1
                    self._held[org_id] -= 1
            return DepositResult(batch, tuple(done), tuple(failures))
        finally:
            self.live_batches.discard(batch)
            self._held[org_id] -= held
            if self._held[org_id] <= 0:
                del self._held[org_id]

    def _refund(self, org_id: str, item_id: str, reason: str) -> None:
        """Return an item's held unit (T-6). Never raises: a unit the store cannot
        refund now stays held and the renewal runner refunds it later."""
        try:
            self._commit(
                org_id, lambda wallet: Change(refund(wallet, item_id, self.now(), reason[:200]))
            )
        except Exception:  # noqa: BLE001 - the runner's stale-reservation sweep retries
            log.exception("refund of %s for %s deferred", item_id, org_id)

    async def _certify(self, org_id: str, item_id: str, spec: DepositSpec) -> Item:
        issued = await self._timestamp(bytes.fromhex(spec.digests.sha256), "sha256")
        if issued.token is None:
            raise _NotCertified("the TSA could not time-stamp the item (try again later)")
        serial, gen_time = token_facts(issued.token)
        certified = Certified(issued.token, issued.index, serial, gen_time)
        record = evidence_record(item_id, spec, certified)
        record_sha256 = hashlib.sha256(canonical_json(record).encode()).hexdigest()
        ops_index = None
        if self.ops is not None:  # write-ahead: the record's commitment, no metadata
            ops_index = self.ops.record(
                "evidence_item",
                item=item_id,
                mode=spec.mode.value,
                sha256=spec.digests.sha256,
                serial=serial_hex(serial),
                ledger_index=issued.index,
                record_sha256=record_sha256,
            )
        fee = new_item(
            item_id,
            serial_hex(serial),
            spec.mode,
            spec.digests,
            spec.size or 0,
            gen_time,
            spec.form,
            policy=self.policy,
        )
        values = _values(spec)
        terms = {
            "epoch": fee.epoch,
            "work_content": spec.form.work_content,
            "handle": spec.form.handle,
            "record_sha256": record_sha256,
            "ops_index": ops_index,
            **storage_columns(fee.storage),
        }

        def compute(wallet: Wallet) -> Change:
            return Change(
                consume(wallet, item_id, self.now()),
                new_item=(item_id, values, certified),
                terms=terms,
                notices=(certified_notice(fee),),
            )

        self._commit(org_id, compute)
        return self.item(org_id, item_id)

    # ------------------------------------------------------------ storage lifecycle

    def delete_original(self, org_id: str, item_id: str, *, downloaded_confirmed: bool) -> Item:
        """S-8 / R-9 / R-10: delete the stored original; no storage fee afterwards."""
        fee = self.fee_item(org_id, item_id)
        outcome = delete_original(fee, self.now(), downloaded_confirmed=downloaded_confirmed)
        stored = self.item(org_id, item_id)
        self.apply_outcome(org_id, outcome)
        if stored.blob_key is not None:
            self.drop_blob_if_unused(stored.blob_key)
        return self.item(org_id, item_id)

    async def reupload(self, org_id: str, item_id: str, chunks: Any) -> Item:
        """S-9 / R-11..R-13: the same bytes again, into a new term paid at once."""
        fee = self.fee_item(org_id, item_id)  # 404 / 409 / 402 before reading any byte
        reupload(self.wallet(org_id), fee, fee.digests.sha256, self.now(), self.policy)
        async with self.uploads() as session:
            ref = await session.put(chunks)

            def compute(wallet: Wallet) -> Change:
                current = self.fee_item(org_id, item_id)
                outcome = reupload(wallet, current, ref.sha256, self.now(), self.policy)
                return self._outcome_change(org_id, outcome)

            self._commit(org_id, compute)
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


def _values(spec: DepositSpec) -> NewItem:
    """The store's form of a deposit (InvalidInput for what the store would refuse:
    control characters, over-long fields)."""
    check_text(spec.form.work_content, "work_content", MAX_TEXT_CHARS, multiline=True)
    check_text(spec.form.handle, "handle", MAX_TEXT_CHARS)
    return NewItem(
        mode=ItemMode(spec.mode.value),
        sha256=spec.digests.sha256,
        size=spec.size,
        sha512=spec.digests.sha512,
        sm3=spec.digests.sm3,
        file_name=spec.form.file_name,
        media_type=spec.form.media_type,
        title=spec.form.work_title,
        statement=spec.form.statement,
        depositor=spec.form.depositor,
        tags=spec.tags,
        blob_key=spec.digests.sha256 if spec.mode is Mode.STORED else None,
    )


class _NotCertified(Exception):
    pass


def _reason(exc: BaseException) -> str:
    """A client-safe reason for a failed certification."""
    if isinstance(exc, _NotCertified):
        return str(exc)
    return "the TSA could not time-stamp the item (try again later)"


def open_evidence_service(
    conf: Any, store: EvidenceStore, blobs: FileBlobStore, issuer: Any, ops: Any
) -> EvidenceService:
    """The served EvidenceService of [evidence] (tsa_server.config.EvidenceConfig): the
    pricing policy file, or the built-in policy with a warning when it does not exist
    (a malformed file is a PricingError: the server does not start)."""
    from pathlib import Path

    from tsa_server.fees import load_policy

    path = Path(conf.pricing)
    if path.exists():
        policy = load_policy(path)
    else:
        log.warning("no pricing policy at %s: using the built-in defaults", path)
        policy = DEFAULT_POLICY
    settings = EvidenceSettings(
        max_upload_bytes=conf.max_upload_bytes,
        max_batch_items=conf.max_batch_items,
        operators=frozenset(conf.operators),
        monthly_item_quota=conf.monthly_item_quota,
    )
    return EvidenceService(
        store, blobs, issuer.timestamp, ops=ops, policy=policy, settings=settings
    )

"""Deposits (S-12, P-2, P-7, P-8, T-3, T-4, T-6) and originals arriving over HTTP: the
part of EvidenceService (service.py) that certifies batches and takes in uploads.

A batch reserves one unit per item at once or nothing; each item is then time-stamped
over its SHA-256 through `Issuer.timestamp` (same path and ledger as any client); a
certified item is stored with its token, storage term and CONSUME entry in one
transaction, after its evidence record's commitment (SHA-256 of its canonical JSON,
never the metadata) went to the operations log; an item the TSA cannot time-stamp gets
its unit back by a REFUND entry.

Uploads (uploads.py) claim their units before a byte is stored; their originals wait in
the blob store's tmp/ until the batch's units are reserved (the claim becomes the
reservation), and a re-upload (S-9) is claimed, bounded by the original's size and
checked against its digest before it is installed.

Every store and blob write runs in the service's worker threads (`off_loop`), and so
does every use of the service's lock (held through commits): the loop only awaits.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from ledger.serials import serial_text
from tsa_server.accounts.keys import new_id
from tsa_server.evidence.blobs import BlobRef, BlobStore
from tsa_server.evidence.changes import Change
from tsa_server.evidence.errors import InvalidInput
from tsa_server.evidence.fee_items import storage_columns, token_facts
from tsa_server.evidence.ports import OpsRecorder, Timestamp
from tsa_server.evidence.records import (
    MAX_TEXT_CHARS,
    Certified,
    Item,
    ItemMode,
    NewItem,
    canonical_json,
    check_text,
)
from tsa_server.evidence.settings import EvidenceSettings
from tsa_server.evidence.uploads import UploadSession
from tsa_server.fees import (
    DepositForm,
    DigestMismatch,
    Digests,
    EvidenceItem,
    FieldError,
    Mode,
    Outcome,
    PricingPolicy,
    Wallet,
    certified_notice,
    consume,
    new_item,
    refund,
    reserve,
    reupload,
)

log = logging.getLogger("tsa.evidence")
T = TypeVar("T")


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
class ItemFailure:
    """An item of a batch the TSA did not certify; its unit was refunded (T-6)."""

    index: int
    sha256: str
    reason: str


@dataclass(frozen=True)
class DepositResult:
    batch: str
    items: tuple[Item, ...]
    failures: tuple[ItemFailure, ...]


@dataclass
class _Batch:
    """One deposit in progress: its units still held (reserved, not yet consumed or
    refunded) and the items settled (certified or refunded)."""

    org_id: str
    batch: str
    ids: list[str]
    held: int = 0
    settled: set[str] = field(default_factory=set)


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
        "serial": serial_text(certified.serial),
        "ledger_index": certified.ledger_index,
        "certified_at": certified.certified_at.isoformat().replace("+00:00", "Z"),
    }


class Deposits:
    """EvidenceService's deposits and uploads (module docstring); the service provides
    the store, blob store, settings, clock, lock, counters and commit machinery."""

    blobs: BlobStore
    settings: EvidenceSettings
    live_batches: set[str]
    _lock: threading.Lock
    _in_flight: Counter[str]
    _held: Counter[str]
    _claimed: Counter[str]
    # The rest EvidenceService provides, declared for the type checker.
    policy: PricingPolicy
    ops: OpsRecorder | None
    _timestamp: Timestamp
    now: Callable[[], datetime]
    if TYPE_CHECKING:

        async def off_loop(self, fn: Callable[..., T], *args: Any) -> T: ...
        def wallet(self, org_id: str) -> Wallet: ...
        def _org(self, org_id: str) -> None: ...
        def item(self, org_id: str, item_id: str) -> Item: ...
        def fee_item(self, org_id: str, item_id: str) -> EvidenceItem: ...
        def require_quota(self, org_id: str, items: int) -> None: ...
        def _commit(self, org_id: str, compute: Callable[[Wallet], Change]) -> Change: ...
        def _outcome_change(self, org_id: str, outcome: Outcome) -> Change: ...
        def drop_blob_if_unused(self, key: str) -> bool: ...

    @asynccontextmanager
    async def uploads(self, org_id: str) -> AsyncIterator[UploadSession]:
        """One request's upload session (uploads.py); on exit nothing it staged or
        claimed is left, and installed originals no item references are deleted."""
        session = UploadSession(self, org_id)
        try:
            yield session
        finally:
            await session.close()

    async def deposit(
        self, org_id: str, specs: Sequence[DepositSpec], *, uploads: UploadSession | None = None
    ) -> DepositResult:
        """Certify a batch: reserve all units or none (T-4), then one token per item.
        `uploads`: the request's staged originals, installed once the units are
        reserved (its claim becomes the reservation)."""
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
        run = _Batch(org_id, new_id("bat"), [new_id("itm") for _ in specs])
        self.live_batches.add(run.batch)
        try:
            await self.off_loop(self._reserve, run, uploads)
            if uploads is not None:
                try:
                    await uploads.install()
                except Exception:
                    await self.off_loop(self._refund_rest, run, "the original was not stored")
                    raise
            done: list[Item] = []
            failures: list[ItemFailure] = []
            for index, (item_id, spec) in enumerate(zip(run.ids, specs, strict=True)):
                try:
                    done.append(await self._certify(run, item_id, spec))
                except asyncio.CancelledError:
                    await self.off_loop(self._refund_rest, run, "request cancelled")
                    raise
                except Exception as exc:  # noqa: BLE001 - any failure refunds the unit (T-6)
                    reason = _reason(exc)
                    what = f"{type(exc).__name__}: {exc}"
                    log.warning("deposit %s of %s not certified: %s", item_id, org_id, what)
                    await self.off_loop(self._refund, run, item_id, reason)
                    failures.append(ItemFailure(index, spec.digests.sha256, reason))
            return DepositResult(run.batch, tuple(done), tuple(failures))
        finally:
            self.live_batches.discard(run.batch)
            if run.held:  # never the lock on the loop: a worker may hold it through a commit
                await self.off_loop(self._settle_rest, run)

    def _reserve(self, run: _Batch, uploads: UploadSession | None) -> None:
        """Quota check and reservation in one step under the lock (no other deposit or
        upload of this process slips in between); the units count as used until each
        item is settled. An upload's claim becomes this reservation."""
        org_id = run.org_id
        self._org(org_id)
        with self._lock:
            if uploads is not None:
                uploads.release_claim()
            self.require_quota(org_id, len(run.ids))
            now = self.now()
            self._commit(org_id, lambda wallet: Change(reserve(wallet, run.batch, run.ids, now)))
            run.held = len(run.ids)
            self._held[org_id] += run.held

    def _unhold(self, run: _Batch, units: int) -> None:
        """(with self._lock held) `units` of the batch are no longer held."""
        run.held -= units
        self._held[run.org_id] -= units
        if self._held[run.org_id] <= 0:
            del self._held[run.org_id]

    def _settle_rest(self, run: _Batch) -> None:
        """Units still held when the deposit ends stop counting in this process."""
        with self._lock:
            self._unhold(run, run.held)

    def _settle(self, run: _Batch, item_id: str) -> None:
        with self._lock:
            if item_id not in run.settled:
                run.settled.add(item_id)
                self._unhold(run, 1)

    def _refund(self, run: _Batch, item_id: str, reason: str) -> None:
        """Return an item's held unit (T-6). Never raises: a unit the store cannot
        refund now stays held and the renewal runner refunds it later."""
        try:
            self._commit(
                run.org_id,
                lambda wallet: Change(refund(wallet, item_id, self.now(), reason[:200])),
            )
        except Exception:  # noqa: BLE001 - the runner's stale-reservation sweep retries
            log.exception("refund of %s for %s deferred", item_id, run.org_id)
        self._settle(run, item_id)

    def _refund_rest(self, run: _Batch, reason: str) -> None:
        for item_id in run.ids:
            if item_id not in run.settled:
                self._refund(run, item_id, reason)

    async def _certify(self, run: _Batch, item_id: str, spec: DepositSpec) -> Item:
        issued = await self._timestamp(bytes.fromhex(spec.digests.sha256), "sha256")
        if issued.token is None:
            raise _NotCertified("the TSA could not time-stamp the item (try again later)")
        return await self.off_loop(self._record_certified, run, item_id, spec, issued)

    def _record_certified(self, run: _Batch, item_id: str, spec: DepositSpec, issued: Any) -> Item:
        """The certified item: its record's commitment in the operations log, then the
        item, its storage term, the CONSUME entry and the notice in one transaction."""
        org_id = run.org_id
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
                serial=serial_text(serial),
                ledger_index=issued.index,
                record_sha256=record_sha256,
            )
        fee = new_item(
            item_id,
            serial_text(serial),
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
        self._settle(run, item_id)  # certified: counted by the store from now on
        return self.item(org_id, item_id)

    async def reupload(
        self, org_id: str, item_id: str, chunks: Any, *, length: int | None = None
    ) -> Item:
        """S-9 / R-11..R-13: the same bytes again, into a new term paid at once. Before a
        byte is read: 404 / 409 / 402, a body whose announced `length` is not the
        original's size (DigestMismatch), and the fee is claimed like an upload's units.
        The bytes are staged (never more than the original's size) and installed only
        when they hash to the certified SHA-256."""
        fee, units = await self.off_loop(self._reupload_check, org_id, item_id)
        if length is not None and length != fee.size:
            raise DigestMismatch(f"the original is {fee.size} bytes, this body {length}")
        async with self.uploads(org_id) as session:
            if units:
                await session.claim(units)
            ref = await session.stage(chunks, max_bytes=fee.size)
            if ref.sha256 != fee.digests.sha256:
                raise DigestMismatch("the uploaded bytes do not hash to the certified SHA-256")
            await self.off_loop(self._reupload_commit, session, item_id, ref)
        return await self.off_loop(self.item, org_id, item_id)

    def _reupload_check(self, org_id: str, item_id: str) -> tuple[EvidenceItem, int]:
        fee = self.fee_item(org_id, item_id)
        outcome = reupload(self.wallet(org_id), fee, fee.digests.sha256, self.now(), self.policy)
        return fee, sum(e.drawn for e in outcome.entries)

    def _reupload_commit(self, session: UploadSession, item_id: str, ref: BlobRef) -> None:
        org_id = session.org_id
        with self._lock:
            session.release_claim()
        session.install_now()

        def compute(wallet: Wallet) -> Change:
            current = self.fee_item(org_id, item_id)
            outcome = reupload(wallet, current, ref.sha256, self.now(), self.policy)
            return self._outcome_change(org_id, outcome)

        self._commit(org_id, compute)


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

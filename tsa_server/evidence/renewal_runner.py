"""The renewal scheduler (REC-3, S-7, S-10, R-1 .. R-8, R-15, P-3): applies what the pure
`fees.renewals.tick` decides to the store, and runs it periodically.

`RenewalRunner.run(now)` does, for every organisation:

1. `tick(wallet, stored items, now)`: lot lapses, renewals at each `expiry_k` (debit in
   advance or EXPIRED, never partial), purges at the end of the grace window, caught up
   in global order after downtime;
2. each step is committed in ONE transaction (entries + item status/term + notices),
   under the store's atomic credit check; a step another writer already committed is
   recomputed from the new state, and a period already paid is never paid again (R-5):
   an interrupted run, repeated, debits once;
3. after a purge, the original's blob is deleted when no item references it any more
   (deduplicated content may be held by another item or account);
4. reminders due now (T-30/T-7/T-1, lot lapses, low balance) are kept as notices, each
   key once;
5. units reserved by a deposit that never finished (the process died between
   reservation and certification) are refunded once the reservation is `stale_after`
   old and no item was stored for them (no lost refund);
6. RFC 4998 evidence records (evidence/ers/renewal.py): new items grouped into a hash
   tree whose root this TSA time-stamps, timestamp renewal before the last archive
   timestamp's TSA certificate ends, hash-tree renewal of weakening hash algorithms;
   its tokens come from the issuer on the server's event loop (`loop`, set by the
   scheduler), or from a loop of the caller's own when there is none (tests, CLI).

`RenewalScheduler` runs it at start-up and every `interval_s` seconds as an asyncio task
of the server, with an injectable clock. Each run happens in a thread of its own (one
SQLite connection of the store, fsync'd commits, CPU for every organisation's items):
a run over many items never stalls the event loop that issues time-stamps.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tsa_server.evidence.errors import IdempotencyConflict
from tsa_server.evidence.ers.renewal import ErsSettings, EvidenceRecords, StampUnavailable
from tsa_server.evidence.fee_items import new_credit_entry, stored_notice
from tsa_server.evidence.service import Change, EvidenceService, StaleChange, atomic_check
from tsa_server.evidence.store.jobs import JOB_LEASE_MIN, job_holder
from tsa_server.fees import (
    EntryKind,
    Outcome,
    StorageStatus,
    Wallet,
    refund,
    reminders_due,
    tick,
)
from tsa_server.fees.lots import HoldState

log = logging.getLogger("tsa.evidence.renewals")

#: A reservation without its item after this long belongs to a deposit that died.
STALE_RESERVATION = timedelta(minutes=15)
#: Longest wait for one evidence-record token from the issuer.
STAMP_TIMEOUT_S = 60.0


@dataclass
class RunReport:
    """What one run did (counts over every organisation)."""

    at: datetime
    renewed: int = 0
    expired: int = 0
    purged: int = 0
    lapsed: int = 0
    refunded: int = 0
    notices: int = 0
    debited_units: int = 0
    records_created: int = 0  # evidence records (RFC 4998) made for new items
    records_renewed: int = 0  # evidence records renewed (timestamp or hash tree)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "renewed": self.renewed,
            "expired": self.expired,
            "purged": self.purged,
            "lapsed": self.lapsed,
            "refunded": self.refunded,
            "notices": self.notices,
            "debited_units": self.debited_units,
            "records_created": self.records_created,
            "records_renewed": self.records_renewed,
            "errors": list(self.errors),
        }


class RenewalRunner:
    """One pass of the scheduler over every organisation (module docstring)."""

    def __init__(
        self,
        service: EvidenceService,
        *,
        on_step: Callable[[str, Outcome], None] | None = None,
        stale_after: timedelta = STALE_RESERVATION,
        records: ErsSettings | None = None,
    ) -> None:
        self.service = service
        self.on_step = on_step  # called after each committed step (tests inject crashes)
        self.stale_after = stale_after
        self.loop: asyncio.AbstractEventLoop | None = None  # the issuer's (scheduler)
        self.records = EvidenceRecords(
            service.store, self._stamp, service.ops, records or service.settings.records
        )
        # Set by the scheduler's stop(): a run ends after the step it is committing (each
        # step is atomic and a repeated run pays nothing twice), so shutdown never waits
        # for a whole large run.
        self.stopping = threading.Event()

    def run(self, now: datetime | None = None) -> RunReport:
        now = now or self.service.now()
        report = RunReport(now)
        for org in self.service.store.organisations():
            if self.stopping.is_set():
                break
            try:
                self.run_organisation(org.id, now, report)
            except Exception as exc:  # noqa: BLE001 - one account must not stop the others
                log.exception("renewal run for %s failed", org.id)
                report.errors.append(f"{org.id}: {type(exc).__name__}")
        return report

    def run_organisation(self, org_id: str, now: datetime, report: RunReport) -> None:
        service = self.service
        for _ in range(5):
            items = service.fee_items(org_id, holding_original=True)
            result = tick(service.wallet(org_id), items, now, service.policy)
            try:
                for step in result.steps:
                    if self.stopping.is_set():
                        return
                    self._apply(org_id, step, report)
            except (StaleChange, IdempotencyConflict):
                continue  # another writer moved the ledger: recompute from the new state
            break
        self._refund_stale(org_id, now, report)
        self._remind(org_id, now, report)
        if not self.stopping.is_set():
            counts = self.records.run(org_id, now)
            report.records_created += counts.created
            report.records_renewed += counts.renewed_timestamp + counts.renewed_hash_tree

    def _stamp(self, value: bytes, algorithm: str) -> bytes:
        """A token from the issuer (Issuer.timestamp) for an evidence record."""

        async def issue() -> Any:
            return await self.service._timestamp(value, algorithm)

        loop = self.loop
        try:
            if loop is not None and loop.is_running():
                future = asyncio.run_coroutine_threadsafe(issue(), loop)
                issued = future.result(STAMP_TIMEOUT_S)
            else:
                issued = asyncio.run(issue())
        except FutureTimeout:
            raise StampUnavailable("the issuer did not answer in time") from None
        if issued.token is None:
            raise StampUnavailable("the TSA could not time-stamp (clock or key unusable)")
        token: bytes = issued.token
        return token

    def _apply(self, org_id: str, step: Outcome, report: RunReport) -> None:
        service = self.service
        change = service._outcome_change(org_id, step)
        stored = service.item(org_id, step.item.item_id) if step.item is not None else None
        service.store.commit_change(
            org_id,
            entries=[new_credit_entry(org_id, e) for e in change.entries],
            check=atomic_check,
            item_id=change.item_id,
            item_changes=change.item_changes,
            terms=change.terms,
            notices=[stored_notice(org_id, n) for n in change.notices],
        )
        for e in step.entries:
            if e.kind is EntryKind.RENEW:
                report.renewed += 1
                report.debited_units += e.drawn
            elif e.kind is EntryKind.LAPSE:
                report.lapsed += 1
        if step.item is not None and step.item.storage is not None:
            status = step.item.storage.status
            if status is StorageStatus.EXPIRED:
                report.expired += 1
            elif status is StorageStatus.PURGED:
                report.purged += 1
                if stored is not None and stored.blob_key is not None:
                    service.drop_blob_if_unused(stored.blob_key)
        if self.on_step is not None:
            self.on_step(org_id, step)

    def _refund_stale(self, org_id: str, now: datetime, report: RunReport) -> None:
        service = self.service
        wallet = service.wallet(org_id)
        for hold in list(wallet.holds.values()):
            if hold.state is not HoldState.HELD:
                continue
            reserved = wallet.entry(f"reserve/{hold.batch}")
            if reserved is None or now - reserved.at < self.stale_after:
                continue
            if hold.batch in service.live_batches:  # still certifying in this process
                continue
            if service.store.item(org_id, hold.item) is not None:
                continue
            item = hold.item
            service._commit(org_id, functools.partial(_refund, item=item, now=now))
            report.refunded += 1

    def _remind(self, org_id: str, now: datetime, report: RunReport) -> None:
        service = self.service
        due = reminders_due(service.wallet(org_id), service.fee_items(org_id), now, service.policy)
        if not due:
            return
        known = {n.key for n in service.store.notices(org_id, limit=1000)}
        fresh = [stored_notice(org_id, n) for n in due if n.key not in known]
        if fresh:
            service.store.commit_change(org_id, notices=fresh)
            report.notices += len(fresh)


class RenewalScheduler:
    """The runner as a background task: at start-up, then every `interval_s` seconds, on
    the one node of a cluster that holds the "renewals" job (evidence/store/jobs.py)."""

    def __init__(
        self,
        runner: RenewalRunner,
        interval_s: float,
        *,
        now: Callable[[], datetime] | None = None,
        holder: str | None = None,
    ) -> None:
        self.runner = runner
        self.interval_s = interval_s
        self.now = now or runner.service.now
        self.last: RunReport | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._thread: ThreadPoolExecutor | None = None
        self._holder = holder or job_holder()

    def run_once(self) -> RunReport | None:
        """One run, unless another node holds the job (jobs.py: one runner per cluster)."""
        now = self.now()
        lease = now + max(3 * timedelta(seconds=self.interval_s), JOB_LEASE_MIN)
        if not self.runner.service.store.hold_job("renewals", self._holder, now, lease):
            log.debug("renewal run skipped: another node holds the job")
            return None
        report = self.runner.run(now)
        self.last = report
        if (
            report.renewed
            or report.expired
            or report.purged
            or report.lapsed
            or report.records_created
            or report.records_renewed
            or report.errors
        ):
            log.info("renewal run: %s", report.as_dict())
        return report

    async def loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                assert self._thread is not None
                # shielded: stop() waits for a run in progress instead of abandoning it
                await asyncio.shield(loop.run_in_executor(self._thread, self.run_once))
            except Exception:  # noqa: BLE001 - the next run retries
                log.exception("renewal run failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            self._wake.clear()

    def start(self) -> None:
        log.info("renewal scheduler: at start-up, then every %g s", self.interval_s)
        self.runner.stopping.clear()
        self.runner.loop = asyncio.get_running_loop()  # evidence-record tokens
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="tsa-renewals")
        self._task = asyncio.get_running_loop().create_task(self.loop())

    def wake(self) -> None:
        """Run now instead of at the next interval."""
        self._wake.set()

    async def stop(self) -> None:
        self.runner.stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._thread is not None:
            thread, self._thread = self._thread, None
            await asyncio.to_thread(thread.shutdown, wait=True)  # a run in progress ends


def _refund(wallet: Wallet, *, item: str, now: datetime) -> Change:
    """The refund of a stale reservation's unit (P-8)."""
    return Change(refund(wallet, item, now, "deposit did not finish"))

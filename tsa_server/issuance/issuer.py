"""THE issuance path: validate -> clock -> sequence -> build -> sign -> ledger (durable) -> reply.

Requests arriving while the event loop is busy are issued together: one flush assigns
their indices, serials and genTimes in order, signs them, appends them to the ledger in
one durable commit and only then releases the replies. A failure anywhere in a flush
answers every request of that flush with `systemFailure`; none of its tokens leaves the
process (docs/spec/ledger.md L-06).

Serial numbers are `2^120 | epoch << 64 | counter`: the epoch is claimed durably from
the store when the issuer starts, so a crash can discard signed tokens but never lets a
later run reuse their serials (L-04); the fixed width keeps token sizes stable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ledger.store.base import NewEntry, Store
from tsa_server.clock.base import Clock
from tsa_server.errors import FailureInfo, RequestRejected, TSAError
from tsa_server.issuance.commit import Batch, Committed, Committer, Issued, Pending
from tsa_server.issuance.gentime import UNIX_EPOCH as _UNIX_EPOCH
from tsa_server.issuance.gentime import gen_time
from tsa_server.issuance.keyring import KeyRing, SigningKey
from tsa_server.issuance.observer import IssuanceObserver
from tsa_server.rfc3161 import response
from tsa_server.rfc3161.oids import IMPRINT_HASH_BY_NAME
from tsa_server.rfc3161.request import parse_request
from tsa_server.rfc3161.request_types import Profile, TimeStampRequest
from tsa_server.rfc3161.token import BindingEncoder, TokenTemplate, TokenValues, to_be_signed
from tsa_server.signing.base import Signer
from tsa_server.signing.pool import BatchSigner, InlineSigner
from tsa_server.signing.schedule import Retirement

# Issued is re-exported: callers await it from Issuer.timestamp.
__all__ = ["IssuanceSettings", "Issued", "Issuer"]

log = logging.getLogger("tsa.issuance")

_SERIAL_MARK = 1 << 120
_INLINE_SIGN_MAX = 2  # batches this small are signed in-process when nothing else is
_MAX_COUNTER = (1 << 64) - 1


@dataclass(frozen=True)
class IssuanceSettings:
    max_batch: int = 256  # tokens per durable commit
    max_accuracy: timedelta = timedelta(seconds=1)  # never state a worse accuracy than this
    certificate_not_after: datetime | None = None  # no token with a genTime at or after it
    failure_memory: timedelta = timedelta(seconds=30)  # how long a failed batch unreadies
    max_in_flight: int = 3  # batches being signed at once
    key_expiry_warning: timedelta = timedelta(days=30)  # warn this long before retirement


class Issuer:
    """Turns request bodies into TimeStampResp bytes; owns the sequence of one ledger.

    A pipeline: indices, serials and genTimes are assigned in order on the event loop
    (the only sequencer); batches are signed concurrently (worker processes); one
    committer appends, strictly in index order, every batch signed so far in one
    durable transaction (in a thread, so the loop keeps serving while it syncs) and
    only then releases their replies. A batch that fails takes down every batch
    sequenced after it (their indices depended on it) and the sequence restarts at the
    last durable index; serials and genTimes are never reused.
    """

    def __init__(
        self,
        *,
        template: TokenTemplate,
        signer: Signer,
        clock: Clock,
        store: Store,
        profile: Profile,
        settings: IssuanceSettings = IssuanceSettings(),
        binding: BindingEncoder | None = None,
        batch_signer: BatchSigner | None = None,
        key: SigningKey | None = None,
    ) -> None:
        if key is None:  # one key for good (tests): retires when its certificate expires
            end = settings.certificate_not_after
            key = SigningKey(
                "", signer, batch_signer or InlineSigner(signer), template,
                retirement=Retirement(end, end, end) if end else None,
            )  # fmt: skip
        # The active key, its staged successor and the retired ones (issuance/keyring.py).
        self.keys = KeyRing(key, settings.key_expiry_warning)
        self._clock = clock
        self._store = store
        self._profile = profile
        self._settings = settings
        self._binding = binding
        state = store.claim_epoch()
        if state.epoch >= 1 << 56:
            raise TSAError("serial epoch space exhausted")
        self._epoch = state.epoch
        self._next_index = state.next_index
        self._durable_index = state.next_index  # first index not yet committed
        self._last_gen_ms = state.last_gen_time_ms
        self._counter = 0
        self._pending: list[Pending] = []
        self._flush_scheduled = False
        self._queue: deque[Batch] = deque()  # sequenced, not yet committed, index order
        self._signing = 0  # batches being signed
        self._handed = 0  # batches with the committer, not yet reported back
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Future[None]] = set()  # the loop keeps only weak references
        self._committer = Committer(store, self._epoch, state.next_index, self._report)
        self.issued = 0
        self.rejected = 0
        self.failures: Counter[FailureInfo] = Counter()  # rejections by failInfo
        self._observer: IssuanceObserver | None = None
        self.last_failure: str | None = None  # set when a batch fails, cleared by a success
        self._last_failure_at = 0.0
        self._probe: tuple[float, str | None] = (-1e9, None)  # (when, problem) of the signer

    @property
    def next_index(self) -> int:
        """The ledger size once every batch in flight has committed."""
        return self._durable_index

    @property
    def in_flight(self) -> int:
        """Batches sequenced and not yet committed (being signed or committed)."""
        return len(self._queue) + self._handed

    def observe(self, observer: IssuanceObserver) -> None:
        """Report batch sizes and signing, commit and signer failures to `observer`."""
        self._observer = observer
        self._committer.observer = observer

    def close(self) -> None:
        self._committer.close()

    async def issue(self, body: bytes) -> bytes:
        """Answer one request body with a DER TimeStampResp (granted or rejection)."""
        try:
            request = parse_request(body, self._profile)
        except RequestRejected as exc:
            self.rejected += 1
            self.failures[exc.failure] += 1
            return response.rejection(exc.failure, exc.text)
        return (await self.submit(request)).reply

    async def timestamp(self, digest: bytes, hash_name: str = "sha256") -> Issued:
        """Time-stamp a digest for the server's own services (evidence, names): the same
        path, ledger and policy as a client request, with certReq and no nonce."""
        imprint = IMPRINT_HASH_BY_NAME.get(hash_name)
        if imprint is None or imprint.name not in self._profile.accepted_hashes:
            raise ValueError(f"hash algorithm {hash_name!r} is not accepted")
        if len(digest) != imprint.size:
            raise ValueError(f"a {hash_name} digest has {imprint.size} bytes, not {len(digest)}")
        request = TimeStampRequest(imprint, digest, self._profile.default_policy, None, True)
        return await self.submit(request)

    async def submit(self, request: TimeStampRequest) -> Issued:
        """Queue a validated request for the next batch and wait for its outcome. (The
        clock is checked once per batch, in `_gen_time`: an unusable clock answers the
        whole batch with timeNotAvailable.)"""
        future: asyncio.Future[Issued] = asyncio.get_running_loop().create_future()
        self._pending.append(Pending(request, future))
        self._schedule_flush()
        return await future

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        # Requests arriving while every signer is busy wait and form a bigger batch.
        while self._pending and self._signing < self._settings.max_in_flight:
            pending = self._pending[: self._settings.max_batch]
            del self._pending[: len(pending)]
            sequenced = self._sequence(pending)
            if sequenced is not None:
                batch, key = sequenced
                key.batches += 1
                self._queue.append(batch)
                self._signing += 1
                self._spawn(self._sign(batch, key))

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _sequence(self, pending: list[Pending]) -> tuple[Batch, SigningKey] | None:
        """Assign indices, serials, one genTime and the key that signs (by that genTime),
        and build the to-be-signed parts; answer the requests at once (returning None)
        if they cannot be issued now."""
        try:
            gen_ms, accuracy_us, key = self._gen_time()
            gen_time = _UNIX_EPOCH + timedelta(milliseconds=gen_ms)
            template, binding = key.template, self._binding
            first, counter = self._next_index, self._counter
            tst_infos: list[bytes] = []
            attrs: list[bytes] = []
            digests: list[str] = []
            serials: list[int] = []
            for offset, item in enumerate(pending):
                request = item.request
                counter += 1
                if counter > _MAX_COUNTER:
                    raise TSAError("serial counter exhausted; restart to claim a new epoch")
                serial = _SERIAL_MARK | (self._epoch << 64) | counter
                extensions = binding.extensions(first + offset) if binding else b""
                fields = TokenValues(serial, gen_time, accuracy_us, extensions)
                tst = template.tst_info(request, fields)
                digest_name = template.signature_digest(request)
                tst_infos.append(tst)
                attrs.append(template.signed_attributes(tst, digest_name))
                digests.append(digest_name)
                serials.append(serial)
        except RequestRejected as exc:
            self._answer(pending, Issued(response.rejection(exc.failure, exc.text)), exc.failure)
            return None
        except Exception as exc:  # noqa: BLE001 - any fault before the commit is systemFailure
            self._failed(exc, len(pending))
            self._answer(pending, _SYSTEM_FAILURE)
            return None
        self._counter = counter
        self._next_index = first + len(pending)
        return Batch(pending, first, gen_ms, serials, tst_infos, attrs, digests), key

    async def _sign(self, batch: Batch, key: SigningKey) -> None:
        try:
            messages = [to_be_signed(a) for a in batch.attrs]
            idle = self._signing == 1 and len(self._queue) == 1 and not self._handed
            started = time.perf_counter()
            try:
                if idle and len(messages) <= _INLINE_SIGN_MAX:
                    # Nothing else in flight (light load): a round trip to a worker would
                    # cost more than signing these few here, on this process's own session.
                    signatures = await key.sign_small(messages, batch.digests)
                else:
                    signatures = await key.batch_signer.sign_batch(messages, batch.digests)
            except Exception:
                if self._observer is not None:
                    self._observer.signer_failed()
                raise
            if self._observer is not None:
                self._observer.signed(len(messages), time.perf_counter() - started)
            template = key.template
            entries: list[NewEntry] = []
            for item, serial, tst, attr, sig, digest_name in zip(
                batch.pending,
                batch.serials,
                batch.tst_infos,
                batch.attrs,
                signatures,
                batch.digests,
                strict=True,
            ):
                request = item.request
                token = template.assemble(tst, attr, sig, digest_name, request.cert_req)
                entries.append(
                    NewEntry(token, batch.gen_ms, serial, request.hash.name, request.digest)
                )
            batch.entries = entries
        except Exception as exc:  # noqa: BLE001 - the committer fails it, in order
            batch.error = exc
        finally:
            batch.signed = True
            self.keys.signed(key)
            self._signing -= 1
            self._hand_over()
            if self._pending:
                self._schedule_flush()

    def _hand_over(self) -> None:
        """Pass the signed head of the queue, in index order, to the committer."""
        queue = self._queue
        ready: list[Batch] = []
        while queue and queue[0].signed:
            ready.append(queue.popleft())
        if ready:
            self._loop = asyncio.get_running_loop()
            self._handed += len(ready)
            self._committer.put(ready)

    def _report(self, outcome: Committed) -> None:
        """From the committer thread: hand the outcome to the loop."""
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._committed, outcome)
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting for these replies any more

    def _committed(self, report: Committed) -> None:
        """On the loop: release the replies of committed batches, fail the others."""
        self._handed -= len(report.committed) + len(report.failed)
        self._durable_index = report.durable_index
        for batch in report.committed:
            assert batch.entries is not None
            self.issued += len(batch.entries)
            for offset, (item, entry) in enumerate(zip(batch.pending, batch.entries, strict=True)):
                token = entry.token
                if not item.future.done():
                    item.future.set_result(
                        Issued(response.granted(token), token, batch.first + offset)
                    )
        if report.committed and report.error is None and self.last_failure is not None:
            log.warning("issuance recovered after: %s", self.last_failure)
            self.last_failure = None
        failed = list(report.failed)
        if report.error is not None:
            # Everything sequenced after the failure depended on it: fail what is still
            # being signed too, and restart the sequence at the durable end.
            failed += self._queue
            self._queue.clear()
            self._next_index = report.durable_index
            self._failed(report.error, sum(len(b.pending) for b in failed))
        for batch in failed:
            self._answer(batch.pending, _SYSTEM_FAILURE)

    def _answer(
        self,
        pending: list[Pending],
        outcome: Issued,
        failure: FailureInfo = FailureInfo.SYSTEM_FAILURE,
    ) -> None:
        self.rejected += len(pending)
        self.failures[failure] += len(pending)
        for item in pending:
            if not item.future.done():
                item.future.set_result(outcome)

    def _failed(self, exc: BaseException, count: int) -> None:
        reason = _describe(exc)
        if self.last_failure != reason:
            log.error("issuance failing (batch of %d discarded): %s", count, reason)
        self.last_failure = reason
        self._last_failure_at = time.monotonic()

    async def problems(self) -> list[str]:
        """Why issuance would fail now (for /readyz): a recent failed batch, the signer
        (probed at most every 2 s with a real signature by the signers issuance uses,
        off the event loop), an expired certificate."""
        found: list[str] = []
        now = time.monotonic()
        if (
            self.last_failure
            and now - self._last_failure_at < self._settings.failure_memory.total_seconds()
        ):
            found.append(f"issuance: {self.last_failure}")
        probed_at, problem = self._probe
        if now - probed_at > 2.0:
            self._probe = (now, problem)  # concurrent probes wait for the next window
            try:
                await self.keys.current.batch_signer.sign_batch([b"readiness probe"], ["sha256"])
                problem = None
            except Exception as exc:  # noqa: BLE001 - any signer fault means not ready
                problem = f"signer: {_describe(exc)}"
                if self._observer is not None:
                    self._observer.signer_failed()
            self._probe = (now, problem)
        if problem:
            found.append(problem)
        retired = self.keys.problem(self._clock.now())
        if retired:
            found.append(retired)
        return found

    def warnings(self) -> list[str]:
        """What needs the operator soon without stopping issuance (for /readyz)."""
        return self.keys.warnings(self._clock.now())

    def _gen_time(self) -> tuple[int, int, SigningKey]:
        """genTime in ms (monotone), the accuracy in µs that honestly covers it, and the
        key that signs at that genTime (TSAError when it has retired)."""
        status = self._clock.status()
        if not status.usable:
            raise RequestRejected(FailureInfo.TIME_NOT_AVAILABLE, "time source not available")
        now = self._clock.now()
        gen_ms, accuracy_us = gen_time(
            now, status.error_bound, self._last_gen_ms, self._settings.max_accuracy
        )
        key = self.keys.select(_UNIX_EPOCH + timedelta(milliseconds=gen_ms), now)
        self._last_gen_ms = gen_ms
        return gen_ms, accuracy_us, key


_SYSTEM_FAILURE = Issued(response.rejection(FailureInfo.SYSTEM_FAILURE, "system failure"))


def _describe(exc: BaseException) -> str:
    # TSAError texts are written to be safe to log; anything else is named by type only.
    return str(exc) if isinstance(exc, TSAError) else type(exc).__name__ + ": " + str(exc)[:200]

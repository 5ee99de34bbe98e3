"""THE issuance path: validate -> clock -> sequence -> build -> sign -> ledger (durable) -> reply.

Requests arriving while the event loop is busy are issued together: one flush assigns
their indices, serials and genTimes in order, signs them, appends them to the ledger in
one durable commit and only then releases the replies. A failure anywhere in a flush
answers every request of that flush with `systemFailure`; none of its tokens leaves the
process (ledger.md L-06).

Serial numbers are `2^120 | epoch << 64 | counter`: the epoch is claimed durably from
the store when the issuer starts, so a crash can discard signed tokens but never lets a
later run reuse their serials (L-04); the fixed width keeps token sizes stable.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ledger.store.base import NewEntry, Store
from tsa_server.clock.base import Clock
from tsa_server.errors import FailureInfo, RequestRejected, TSAError
from tsa_server.rfc3161 import response
from tsa_server.rfc3161.oids import IMPRINT_HASH_BY_NAME
from tsa_server.rfc3161.request import Profile, TimeStampRequest, parse_request
from tsa_server.rfc3161.token import BindingEncoder, TokenFields, TokenTemplate, to_be_signed
from tsa_server.signing.base import Signer

log = logging.getLogger("tsa.issuance")

_SERIAL_MARK = 1 << 120
_MAX_COUNTER = (1 << 64) - 1
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class IssuanceSettings:
    max_batch: int = 256  # tokens per durable commit
    max_accuracy: timedelta = timedelta(seconds=1)  # never state a worse accuracy than this
    certificate_not_after: datetime | None = None  # no token with a genTime at or after it
    failure_memory: timedelta = timedelta(seconds=30)  # how long a failed batch unreadies


@dataclass(frozen=True)
class Issued:
    """The outcome of one request: the TimeStampResp, and the token and its ledger index
    when granted (both None for a rejection)."""

    reply: bytes
    token: bytes | None = None
    index: int | None = None


@dataclass
class _Pending:
    request: TimeStampRequest
    future: asyncio.Future


class Issuer:
    """Turns request bodies into TimeStampResp bytes; owns the sequence of one ledger."""

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
    ):
        self._template = template
        self._signer = signer
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
        self._last_gen_ms = state.last_gen_time_ms
        self._counter = 0
        self._pending: list[_Pending] = []
        self._flush_scheduled = False
        self.issued = 0
        self.rejected = 0
        self.last_failure: str | None = None  # set when a batch fails, cleared by a success
        self._last_failure_at = 0.0
        self._probe: tuple[float, str | None] = (-1e9, None)  # (when, problem) of the signer

    @property
    def next_index(self) -> int:
        return self._next_index

    async def issue(self, body: bytes) -> bytes:
        """Answer one request body with a DER TimeStampResp (granted or rejection)."""
        try:
            request = parse_request(body, self._profile)
        except RequestRejected as exc:
            self.rejected += 1
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
        """Queue a validated request for the next batch and wait for its outcome."""
        try:
            self._check_clock()
        except RequestRejected as exc:
            self.rejected += 1
            return Issued(response.rejection(exc.failure, exc.text))
        future = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(request, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        return await future

    def _check_clock(self) -> None:
        status = self._clock.status()
        if not status.usable:
            raise RequestRejected(FailureInfo.TIME_NOT_AVAILABLE, "time source not available")

    def _flush(self) -> None:
        self._flush_scheduled = False
        while self._pending:
            batch = self._pending[: self._settings.max_batch]
            del self._pending[: len(batch)]
            self._issue_batch(batch)

    def _issue_batch(self, batch: list[_Pending]) -> None:
        try:
            first = self._next_index
            tokens = self._sign_and_commit([p.request for p in batch])
            outcomes = [Issued(response.granted(t), t, first + i) for i, t in enumerate(tokens)]
        except RequestRejected as exc:
            outcomes = [Issued(response.rejection(exc.failure, exc.text))] * len(batch)
            self.rejected += len(batch)
        except Exception as exc:  # noqa: BLE001 - any fault before the commit is systemFailure
            reason = _describe(exc)
            if self.last_failure != reason:
                log.error("issuance failing (batch of %d discarded): %s", len(batch), reason)
            self.last_failure = reason
            self._last_failure_at = time.monotonic()
            failed = Issued(response.rejection(FailureInfo.SYSTEM_FAILURE, "system failure"))
            outcomes = [failed] * len(batch)
            self.rejected += len(batch)
        for pending, outcome in zip(batch, outcomes, strict=True):
            if not pending.future.done():
                pending.future.set_result(outcome)

    def _sign_and_commit(self, requests: list[TimeStampRequest]) -> list[bytes]:
        gen_ms, accuracy_us = self._gen_time()
        gen_time = _UNIX_EPOCH + timedelta(milliseconds=gen_ms)
        template = self._template
        tst_infos, attrs, digests = [], [], []
        binding = self._binding
        for offset, request in enumerate(requests):
            self._counter += 1
            if self._counter > _MAX_COUNTER:
                raise TSAError("serial counter exhausted; restart to claim a new epoch")
            serial = _SERIAL_MARK | (self._epoch << 64) | self._counter
            extensions = binding.extensions(self._next_index + offset) if binding else b""
            tst = template.tst_info(request, TokenFields(serial, gen_time, accuracy_us, extensions))
            digest_name = template.signature_digest(request)
            tst_infos.append((tst, serial))
            attrs.append(template.signed_attributes(tst, digest_name))
            digests.append(digest_name)
        signatures = self._signer.sign_many([to_be_signed(a) for a in attrs], digests)
        tokens, entries = [], []
        for request, (tst, serial), attr, sig, digest_name in zip(
            requests, tst_infos, attrs, signatures, digests, strict=True
        ):
            token = template.assemble(tst, attr, sig, digest_name, request.cert_req)
            tokens.append(token)
            entries.append(NewEntry(token, gen_ms, serial, request.hash.name, request.digest))
        self._store.append(self._epoch, self._next_index, entries)
        self._next_index += len(entries)
        self.issued += len(entries)
        if self.last_failure is not None:
            log.warning("issuance recovered after: %s", self.last_failure)
            self.last_failure = None
        return tokens

    def problems(self) -> list[str]:
        """Why issuance would fail now (for /readyz): a recent failed batch, the signer
        (probed at most every 2 s with a real signature), an expired certificate."""
        found = []
        now = time.monotonic()
        if (
            self.last_failure
            and now - self._last_failure_at < self._settings.failure_memory.total_seconds()
        ):
            found.append(f"issuance: {self.last_failure}")
        probed_at, problem = self._probe
        if now - probed_at > 2.0:
            try:
                self._signer.sign(b"readiness probe", "sha256")
                problem = None
            except Exception as exc:  # noqa: BLE001 - any signer fault means not ready
                problem = f"signer: {_describe(exc)}"
            self._probe = (now, problem)
        if problem:
            found.append(problem)
        not_after = self._settings.certificate_not_after
        if not_after is not None and self._clock.now() >= not_after:
            found.append(f"certificate: expired at {not_after.isoformat()}")
        return found

    def _gen_time(self) -> tuple[int, int]:
        """genTime in ms (monotone) and the accuracy in µs that honestly covers it."""
        status = self._clock.status()
        if not status.usable:
            raise RequestRejected(FailureInfo.TIME_NOT_AVAILABLE, "time source not available")
        now = self._clock.now()
        not_after = self._settings.certificate_not_after
        if not_after is not None and now >= not_after:
            raise TSAError(f"the TSA certificate expired at {not_after.isoformat()}")
        now_us = (now - _UNIX_EPOCH) // timedelta(microseconds=1)
        now_ms = now_us // 1000
        gen_ms = max(now_ms, self._last_gen_ms)
        # Truncating to ms and holding genTime up while the clock catches up both widen
        # the interval the true time can be in; the stated accuracy must cover them.
        held_back_us = max(0, gen_ms * 1000 - now_us)
        accuracy_us = (
            math.ceil(status.error_bound / timedelta(microseconds=1)) + 1000 + held_back_us
        )
        accuracy_us = -(-accuracy_us // 1000) * 1000  # whole milliseconds
        if accuracy_us > self._settings.max_accuracy / timedelta(microseconds=1):
            raise RequestRejected(
                FailureInfo.TIME_NOT_AVAILABLE, "time accuracy worse than the TSA policy allows"
            )
        self._last_gen_ms = gen_ms
        return gen_ms, accuracy_us


def _describe(exc: BaseException) -> str:
    # TSAError texts are written to be safe to log; anything else is named by type only.
    return str(exc) if isinstance(exc, TSAError) else type(exc).__name__ + ": " + str(exc)[:200]

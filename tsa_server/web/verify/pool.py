"""POST /verify's verifications run in worker processes of their own, at a lower CPU
priority than the server, a bounded number at a time.

Why processes: verification is pure-Python CPU work (parsing, signatures, path
building: ~10 ms for a usual token, ~0.1 s at the verifier's bounds). In a thread it
holds the GIL, and every hop of an issuance (the event loop, the signers' pipes, the
ledger commit) then waits for it: measured on two cores, one client verifying in a
loop raised /tsr's median latency from 3 ms to 45 ms, four clients to 130 ms. In
spawned processes (never forked: the server holds PKCS#11 sessions and threads) at
niceness +10 the kernel gives issuance the CPU first.

Bounds: WORKERS processes; MAX_PENDING verifications admitted (running + waiting),
past which the caller answers 503 with Retry-After at once. A slot is freed when its
verification ends, not when its client hangs up. A worker that dies breaks the pool:
the request is answered 503 and a fresh pool serves the next one.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from functools import lru_cache
from typing import Any, TypeVar

from asn1crypto import x509

from tsa_server.rfc3161.verify import VerificationReport, VerifyOptions, verify_token
from tsa_server.rfc3161.verify_load import to_asn1_certificate

log = logging.getLogger("tsa.web.verify")
T = TypeVar("T")

#: Worker processes. Two keep one core for issuance on a two-core machine.
WORKERS = 2
#: Verifications admitted at once (running + waiting): at ~0.1 s each at worst, a full
#: queue drains in under a second.
MAX_PENDING = 16
#: Added to the workers' niceness: under contention the kernel runs issuance first.
NICENESS = 10


def _verify(token: bytes | str, options: VerifyOptions) -> VerificationReport:
    """In a worker. Certificates travel as DER (asn1crypto objects do not survive
    pickling); the trust roots, the same in every request, are parsed once a worker."""
    return verify_token(
        token, replace(options, trust_roots=[_root(d) for d in options.trust_roots])
    )


@lru_cache(maxsize=1024)
def _root(der: bytes) -> x509.Certificate:
    return to_asn1_certificate(der)


def _portable(options: VerifyOptions) -> VerifyOptions:
    """``options`` with every certificate as DER bytes, for the trip to a worker."""
    return replace(
        options,
        trust_roots=[to_asn1_certificate(c).dump() for c in options.trust_roots],
        extra_certs=[to_asn1_certificate(c).dump() for c in options.extra_certs],
    )


def _lower_priority() -> None:
    try:
        os.nice(NICENESS)
    except OSError:  # not permitted here: the workers still run at the server's priority
        pass


class VerifierPool:
    """Runs `verify_token` in worker processes, refusing work past `max_pending`."""

    def __init__(self, workers: int = WORKERS, max_pending: int = MAX_PENDING) -> None:
        self._workers = workers
        self._max_pending = max_pending
        self._lock = threading.Lock()
        self._pending = 0
        self._executor: ProcessPoolExecutor | None = None

    def _pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:  # started on first use: the CLI never pays for it
                self._executor = ProcessPoolExecutor(
                    self._workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_lower_priority,
                )
                # The pool spawns a worker per task that finds none idle: start them all
                # now rather than in the middle of a burst (a spawn takes about a second).
                for _ in range(self._workers):
                    self._executor.submit(time.sleep, 0.05)
            return self._executor

    async def run(self, token: bytes | str, options: VerifyOptions) -> VerificationReport | None:
        """The report on ``token`` (as the client sent it), or None when the pool is full
        or broken (answer 503)."""
        return await self.call(_verify, token, _portable(options))

    async def call(self, fn: Callable[..., T], *args: Any) -> T | None:
        """``fn(*args)`` in a worker (a module-level function, picklable arguments), under
        the same admission as verifications: the verification center's documents
        (evidence/checking/worker.py). None when the pool is full or broken; the
        function's own exceptions reach the caller."""
        with self._lock:
            if self._pending >= self._max_pending:
                return None
            self._pending += 1
        pool = self._pool()
        try:
            future = pool.submit(fn, *args)
        except (BrokenProcessPool, RuntimeError):
            self._release(None)
            self._discard(pool)
            return None
        future.add_done_callback(self._release)
        try:
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            log.warning("a verifier worker process died; starting a fresh pool")
            self._discard(pool)
            return None

    def _release(self, _: object) -> None:
        with self._lock:
            self._pending -= 1

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is pool:
                self._executor = None
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            pool, self._executor = self._executor, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

"""Certificate PDFs drawn in a worker process of their own (issue 13, item 7).

Drawing a certificate is ~0.1 s of pure-Python CPU (reportlab). In a thread of the
server it would hold the interpreter lock that the event loop needs to answer `/tsr`:
clients fetching kits and certificates in a loop raised time-stamp latency tenfold. A
`CertificateRenderer` hands the drawing to one spawned process (never forked: the
server has threads and a PKCS#11 session), started on first use, so at most one core
draws PDFs whatever the number of requests, and the server's lock stays free. A worker
that dies is replaced on the next request.

With a document-signing key (certificate_sign.py) the worker also signs: it opens its own
session on the token once (the key never leaves it), signs each certificate (PAdES) and
reserves its document time stamp, whose digest the event loop has the Issuer time-stamp
(into the ledger like every token) before the token is written in. A signed certificate
carries a new time stamp, so the last `CACHE_SIZE` are kept by content: downloading the
same certificate again neither signs nor spends a ledger entry.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import multiprocessing
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from tsa_server.evidence.certificate import CertificateData
from tsa_server.evidence.certificate_pdf import render_certificate
from tsa_server.evidence.certificate_sign import (
    CertificateSigner,
    DocumentKey,
    Prepared,
    fill_timestamp,
)
from tsa_server.evidence.errors import EvidenceError

log = logging.getLogger("tsa.evidence.render")


CACHE_SIZE = 64
TimestampFn = Callable[[bytes], Awaitable[bytes]]
"""SHA-256 digest -> a TimeStampToken (ContentInfo DER) over it from this TSA."""

_worker_signer: CertificateSigner | None = None


class RenderError(EvidenceError):
    """No worker could draw the certificate (HTTP 500, logged on one line)."""


def _start_worker(key: DocumentKey | None) -> None:
    global _worker_signer
    if key is not None:
        _worker_signer = CertificateSigner(key)


def render_and_sign(data: CertificateData) -> bytes | Prepared:
    """(in the worker) The certificate, signed with its time stamp reserved when the
    worker has a document key."""
    pdf = render_certificate(data)
    if _worker_signer is None:
        return pdf
    reason = f"Time-stamp evidence certificate {data.serial_hex}, issued by {data.tsa_name}"
    return _worker_signer.sign_and_prepare(pdf, reason, data.verify_url)


class CertificateRenderer:
    """render(data) -> PDF bytes, in a worker process (module docstring); signed when
    `document_key` is given."""

    def __init__(self, workers: int = 1, document_key: DocumentKey | None = None) -> None:
        self.workers = workers
        self.document_key = document_key
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._cache: OrderedDict[str, bytes] = OrderedDict()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise RenderError("the certificate renderer is closed")
            if self._pool is None:
                context = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(
                    self.workers,
                    mp_context=context,
                    initializer=_start_worker,
                    initargs=(self.document_key,),
                )
            return self._pool

    def _drop(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    async def render(self, data: CertificateData, timestamp: TimestampFn | None = None) -> bytes:
        """The certificate PDF; signed ones get their document time stamp from
        `timestamp` (required with a document key)."""
        key = hashlib.sha256(repr(data).encode()).hexdigest()
        if (cached := self._cache.get(key)) is not None:
            self._cache.move_to_end(key)
            return cached
        made = await self._in_worker(data)
        if isinstance(made, Prepared):
            if timestamp is None:
                raise RenderError("a signed certificate needs a document time stamp")
            made = fill_timestamp(made, await timestamp(made.digest))
        self._cache[key] = made
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return made

    async def _in_worker(self, data: CertificateData) -> bytes | Prepared:
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            pool = self._executor()
            try:
                return await loop.run_in_executor(pool, render_and_sign, data)
            except BrokenProcessPool:
                log.warning("certificate worker died (attempt %d); starting another", attempt)
                self._drop(pool)
        raise RenderError("the certificate worker keeps dying")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

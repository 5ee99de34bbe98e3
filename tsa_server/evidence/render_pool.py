"""Certificate PDFs drawn in a worker process of their own (issue 13, item 7).

Drawing a certificate is ~0.1 s of pure-Python CPU (reportlab). In a thread of the
server it would hold the interpreter lock that the event loop needs to answer `/tsr`:
clients fetching kits and certificates in a loop raised time-stamp latency tenfold. A
`CertificateRenderer` hands the drawing to one spawned process (never forked: the
server has threads and a PKCS#11 session), started on first use, so at most one core
draws PDFs whatever the number of requests, and the server's lock stays free. A worker
that dies is replaced on the next request.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from tsa_server.evidence.certificate import CertificateData
from tsa_server.evidence.certificate_pdf import render_certificate
from tsa_server.evidence.errors import EvidenceError

log = logging.getLogger("tsa.evidence.render")


class RenderError(EvidenceError):
    """No worker could draw the certificate (HTTP 500, logged on one line)."""


class CertificateRenderer:
    """render(data) -> PDF bytes, in a worker process (module docstring)."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise RenderError("the certificate renderer is closed")
            if self._pool is None:
                context = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(self.workers, mp_context=context)
            return self._pool

    def _drop(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    async def render(self, data: CertificateData) -> bytes:
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            pool = self._executor()
            try:
                return await loop.run_in_executor(pool, render_certificate, data)
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

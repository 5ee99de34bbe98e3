"""Signing off the event loop: worker processes, each with its own PKCS#11 session.

SoftHSM signs about 7,000 P-256 signatures a second per process and does not scale with
threads (one session, one lock), so the server hands each batch of to-be-signed
attributes to a worker process and goes on parsing, sequencing and committing while it
signs. A worker is a plain `Pkcs11Signer` in a spawned process (never forked: PKCS#11
forbids using an initialised module in a child), fed over a pipe. The PIN travels
through that pipe, never through the command line or the environment.

`BatchSigner` is the interface the issuer awaits; `InlineSigner` adapts any `Signer` for
tests and for `signing_workers = 0`.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import os
import pickle
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from tsa_server.errors import SignerUnavailable
from tsa_server.signing.base import Signer

if TYPE_CHECKING:  # the parent never imports python-pkcs11: only its workers do
    from tsa_server.signing.pkcs11 import TokenLocation

log = logging.getLogger("tsa.signing")

_START_TIMEOUT_S = 30.0
_RESTART_BACKOFF_S = 1.0  # a worker that failed to start is not retried sooner

# What a batch's future resolves to: the signatures, or None and the reason they are not.
_Outcome = tuple[list[bytes] | None, str | None]


class BatchSigner(Protocol):
    """Signs a batch of messages without blocking the event loop."""

    async def sign_batch(self, messages: list[bytes], digest_names: list[str]) -> list[bytes]:
        """One signature per message, in order; SignerUnavailable when the key cannot sign."""
        ...

    def close(self) -> None: ...


class InlineSigner:
    """A `BatchSigner` that signs in the calling thread (tests, `signing_workers = 0`)."""

    def __init__(self, signer: Signer):
        self._signer = signer

    async def sign_batch(self, messages: list[bytes], digest_names: list[str]) -> list[bytes]:
        return self._signer.sign_many(messages, digest_names)

    def close(self) -> None:
        pass


def _worker_main(conn: multiprocessing.connection.Connection) -> None:
    """A worker process: open the key, then answer (batch id, messages, digests) requests
    with (batch id, signatures or None, error text) until the pipe closes."""
    from tsa_server.signing.pkcs11 import Pkcs11Signer  # imported in the child only

    location, label, rsa_pss = pickle.loads(conn.recv_bytes())
    try:
        signer = Pkcs11Signer(location, label, rsa_pss=rsa_pss)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which decides
        conn.send_bytes(pickle.dumps(("start", None, _safe_text(exc))))
        return
    conn.send_bytes(pickle.dumps(("start", signer.public_key_info(), None)))
    while True:
        try:
            request = conn.recv_bytes()
        except (EOFError, OSError):
            break
        batch_id, messages, digest_names = pickle.loads(request)
        reply: tuple[int, list[bytes] | None, str | None]
        try:
            reply = (batch_id, signer.sign_many(messages, digest_names), None)
        except Exception as exc:  # noqa: BLE001 - every fault is the batch's failure
            reply = (batch_id, None, _safe_text(exc))
        conn.send_bytes(pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))
    signer.close()


def _safe_text(exc: BaseException) -> str:
    # SignerUnavailable texts are written to be safe to log; others are named by type.
    return str(exc) if isinstance(exc, SignerUnavailable) else type(exc).__name__


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: multiprocessing.connection.Connection
    waiting: deque[tuple[int, asyncio.Future[_Outcome]]] = field(default_factory=deque)


class SigningPool:
    """Worker processes signing with the key `label`; batches go to the least busy one.

    A worker that dies fails its batches with SignerUnavailable and is replaced on the
    next batch. Every worker must present the public key the server started with, so a
    replaced token cannot switch keys under the certificate.
    """

    def __init__(
        self, location: TokenLocation, label: str, *, rsa_pss: bool, workers: int, spki: bytes
    ) -> None:
        if workers < 1:
            raise ValueError("a signing pool needs at least one worker")
        self._args = pickle.dumps((location, label, rsa_pss))
        self._spki = spki
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker | None] = [None] * workers
        self._next_id = 0
        self._closed = False
        self._restarting: dict[int, asyncio.Future[_Worker]] = {}
        self._failed_start: tuple[float, str] = (-1e9, "")
        for slot in range(workers):
            self._workers[slot] = self._start()

    @property
    def size(self) -> int:
        return len(self._workers)

    def _start(self) -> _Worker:
        parent, child = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_worker_main, args=(child,), name="tsa-signer", daemon=True
        )
        process.start()
        child.close()
        try:
            parent.send_bytes(self._args)
            if not parent.poll(_START_TIMEOUT_S):
                raise SignerUnavailable("a signing worker did not start in time")
            _, spki, error = pickle.loads(parent.recv_bytes())
        except (EOFError, OSError):
            error, spki = "a signing worker exited during start-up", None
        except SignerUnavailable as exc:
            error, spki = str(exc), None
        if error is None and spki != self._spki:
            error = "a signing worker found a different key under the configured label"
        if error is not None:
            parent.close()
            process.kill()
            process.join(5)
            raise SignerUnavailable(error)
        return _Worker(process, parent)

    async def sign_batch(self, messages: list[bytes], digest_names: list[str]) -> list[bytes]:
        if self._closed:
            raise SignerUnavailable("the signing pool is closed")
        loop = asyncio.get_running_loop()
        slot = self._least_busy()
        worker = self._workers[slot]
        if worker is None or not worker.process.is_alive():
            worker = await self._restart(slot)
        self._next_id += 1
        batch_id = self._next_id
        future: asyncio.Future[_Outcome] = loop.create_future()
        if not worker.waiting:
            loop.add_reader(worker.conn.fileno(), self._on_reply, slot)
            # libuv (uvloop) makes a watched descriptor non-blocking, but Connection
            # reads and writes whole messages: a reply larger than the socket buffer
            # would end in BlockingIOError half-way. The worker writes each reply at
            # once, so a blocking read waits only for the rest of it.
            os.set_blocking(worker.conn.fileno(), True)
        worker.waiting.append((batch_id, future))
        try:
            worker.conn.send_bytes(pickle.dumps((batch_id, messages, digest_names)))
        except OSError:
            self._fail_worker(slot, "a signing worker is gone")
        signatures, error = await future
        if error is not None:
            raise SignerUnavailable(error)
        assert signatures is not None  # a worker sends signatures or an error
        return signatures

    def _least_busy(self) -> int:
        loads = [len(w.waiting) if w is not None else 0 for w in self._workers]
        return loads.index(min(loads))

    async def _restart(self, slot: int) -> _Worker:
        """Replace a dead worker, in a thread (spawning takes a while); concurrent
        batches share one attempt, and a failed attempt is not repeated for a second."""
        loop = asyncio.get_running_loop()
        failed_at, reason = self._failed_start
        if loop.time() - failed_at < _RESTART_BACKOFF_S:
            raise SignerUnavailable(reason)
        pending = self._restarting.get(slot)
        if pending is None:
            old = self._workers[slot]
            if old is not None:
                self._fail_worker(slot, "a signing worker exited")
            log.warning("starting a new signing worker in slot %d", slot)
            pending = self._restarting[slot] = asyncio.ensure_future(
                loop.run_in_executor(None, self._start)
            )
            try:
                self._workers[slot] = await pending
            except SignerUnavailable as exc:
                self._failed_start = (loop.time(), str(exc))
                raise
            finally:
                del self._restarting[slot]
        return await asyncio.shield(pending)

    def _on_reply(self, slot: int) -> None:
        worker = self._workers[slot]
        assert worker is not None
        try:
            batch_id, signatures, error = pickle.loads(worker.conn.recv_bytes())
        except (EOFError, OSError):
            self._fail_worker(slot, "a signing worker exited")
            return
        expected, future = worker.waiting.popleft()
        if expected != batch_id:  # cannot happen over one ordered pipe; never guess
            self._fail_worker(slot, "a signing worker answered out of order")
            future.set_result((None, "signing worker protocol error"))
            return
        if not worker.waiting:
            asyncio.get_running_loop().remove_reader(worker.conn.fileno())
        if not future.done():
            future.set_result((signatures, error))

    def _fail_worker(self, slot: int, reason: str) -> None:
        worker = self._workers[slot]
        if worker is None:
            return
        self._workers[slot] = None
        try:
            asyncio.get_running_loop().remove_reader(worker.conn.fileno())
        except (RuntimeError, ValueError, OSError):
            pass
        worker.conn.close()
        worker.process.kill()
        while worker.waiting:
            _, future = worker.waiting.popleft()
            if not future.done():
                future.set_result((None, reason))

    def close(self) -> None:
        self._closed = True
        for slot, worker in enumerate(self._workers):
            if worker is None:
                continue
            self._workers[slot] = None
            worker.conn.close()  # the worker sees EOF and exits
            worker.process.join(5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(5)


def batch_signer_for(
    signer: Signer, location: TokenLocation, label: str, *, rsa_pss: bool, workers: int
) -> BatchSigner:
    """`workers` signing processes, or signing inline when it is 0."""
    if workers == 0:
        return InlineSigner(signer)
    return SigningPool(
        location, label, rsa_pss=rsa_pss, workers=workers, spki=signer.public_key_info()
    )

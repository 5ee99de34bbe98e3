"""Originals arriving in one request (POST /api/v1/deposits/upload and .../reupload):
what they may cost is checked before each one is stored, and a refused request keeps
nothing (issue 13, item 6).

An `UploadSession` belongs to one request of one organisation:

- `claim(n)`, before a file's first byte is read, holds n more units against the
  organisation's usable balance and its monthly quota, counting what its other uploads
  in this process already hold (InsufficientCredits / MonthlyQuotaExceeded otherwise):
  an organisation with one credit never has two files in flight, however many requests
  it opens. A claim is not a reservation: `EvidenceService.deposit` reserves atomically
  and releases the claim in the same step.
- `stage(part)` writes a file into the blob store's tmp/ (hashed, fsync'd, not under
  its key yet), bounded by [evidence] max_upload_bytes per file and what is left of
  max_upload_request_bytes for the whole request (BlobTooLarge, 413, naming the bound).
- `install()` moves every staged file under its key, once the deposit is reserved.
- Leaving the session (any way: refusal, client gone, cancellation) deletes what is
  still staged, releases the claim, and drops installed originals no item references.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from tsa_server.evidence.blobs import BlobRef, BlobStore, StagedBlob
from tsa_server.evidence.errors import BlobError, BlobTooLarge
from tsa_server.evidence.settings import EvidenceSettings
from tsa_server.fees import FieldError, Wallet
from tsa_server.fees.deposit import MAX_CHARS
from tsa_server.fees.errors import InsufficientCredits

T = TypeVar("T")


class UploadHost(Protocol):
    """What a session needs of the evidence service (EvidenceService is one): its
    bounds, blob store, clock, credits and quota, worker threads, and the counters it
    shares with the deposits of other requests, under the service's lock."""

    settings: EvidenceSettings
    blobs: BlobStore
    _lock: threading.Lock
    _claimed: Counter[str]
    _in_flight: Counter[str]

    def now(self) -> datetime: ...

    def wallet(self, org_id: str) -> Wallet: ...

    def require_quota(self, org_id: str, items: int) -> None: ...

    def drop_blob_if_unused(self, key: str) -> bool: ...

    async def off_loop(self, fn: Callable[..., T], *args: Any) -> T: ...


class RequestTooLarge(BlobTooLarge):
    """The files of one request together pass max_upload_request_bytes (HTTP 413)."""

    def __init__(self, limit: int) -> None:
        BlobError.__init__(
            self,
            f"the upload request exceeds [evidence] max_upload_request_bytes ({limit} "
            "bytes): send fewer or smaller files per request",
        )
        self.limit = limit


@dataclass
class UploadSession:
    """One request's claimed units and originals (module docstring)."""

    service: UploadHost
    org_id: str
    claimed: int = 0  # units held against the balance and the quota
    received: int = 0  # bytes of files staged so far
    staged: list[StagedBlob] = field(default_factory=list)
    installed: list[str] = field(default_factory=list)  # blob keys

    async def claim(self, units: int) -> None:
        """Hold `units` more (checked in a worker thread: it reads the credit entries)."""
        await self.service.off_loop(self._claim, units)

    def _claim(self, units: int) -> None:
        """Refused unless the usable balance and the monthly quota cover `units` on top
        of every unit this process already holds or has claimed for the organisation."""
        service, org_id = self.service, self.org_id
        with service._lock:
            now = service.now()
            wallet = service.wallet(org_id)
            balance = wallet.balance(now)
            others = service._claimed[org_id] - self.claimed
            if balance - others < self.claimed + units:
                raise InsufficientCredits(
                    self.claimed + units, max(0, balance - others), wallet.lapsed_units(now)
                )
            service.require_quota(org_id, units)
            service._claimed[org_id] += units
            self.claimed += units

    def release_claim(self) -> None:
        """Give the claimed units back (the caller holds the service's lock): they were
        reserved, or the request ends."""
        claimed = self.service._claimed
        claimed[self.org_id] -= self.claimed
        if claimed[self.org_id] <= 0:
            del claimed[self.org_id]
        self.claimed = 0

    def file_limit(self) -> int:
        """Bytes the next file may have: its own bound and what the request has left."""
        settings = self.service.settings
        return min(settings.max_upload_bytes, settings.max_upload_request_bytes - self.received)

    async def stage(self, chunks: Any, *, max_bytes: int | None = None) -> BlobRef:
        """Write one file into tmp/ (not visible under its key until install())."""
        settings = self.service.settings
        limit = self.file_limit() if max_bytes is None else max_bytes
        try:
            staged = await self.service.blobs.stage_stream(chunks, max_bytes=limit)
        except BlobTooLarge as exc:
            if exc.limit < settings.max_upload_bytes and max_bytes is None:
                raise RequestTooLarge(settings.max_upload_request_bytes) from None
            raise
        self.staged.append(staged)
        self.received += staged.ref.size
        return staged.ref

    async def hash(self, chunks: Any) -> tuple[str, int]:
        """SHA-256 and size of one file under the same bounds, storing nothing (the
        retry of an answered idempotent request only needs to be recognised)."""
        settings = self.service.settings
        limit = self.file_limit()
        try:
            sha256, size = await self.service.blobs.hash_stream(chunks, max_bytes=limit)
        except BlobTooLarge as exc:
            if exc.limit < settings.max_upload_bytes:
                raise RequestTooLarge(settings.max_upload_request_bytes) from None
            raise
        self.received += size
        return sha256, size

    async def install(self) -> None:
        await self.service.off_loop(self.install_now)

    def install_now(self) -> None:
        """Every staged original under its key (kept from deletion until the session
        ends: the items that reference them are committed meanwhile)."""
        service = self.service
        while self.staged:
            staged = self.staged.pop(0)
            with service._lock:  # before the file appears: drop_blob_if_unused waits
                service._in_flight[staged.ref.key] += 1
            self.installed.append(staged.ref.key)
            staged.install()

    async def close(self) -> None:
        await self.service.off_loop(self._end)

    def _end(self) -> None:
        """Discard what is still staged, release the claim, drop unused originals."""
        service = self.service
        for staged in self.staged:
            staged.discard()
        self.staged.clear()
        with service._lock:
            self.release_claim()
        for key in self.installed:
            with service._lock:
                service._in_flight[key] -= 1
                if service._in_flight[key] <= 0:
                    del service._in_flight[key]
            service.blobs.release(key)  # the items are committed (or were never made)
            service.drop_blob_if_unused(key)
        self.installed.clear()


# What a multipart upload delivered (web/evidence/upload_parts.py reads it)


@dataclass(frozen=True)
class UploadedFile:
    name: str  # the client's file name, as metadata
    media_type: str
    sha256: str
    ref: BlobRef | None  # staged original; None when only hashed


@dataclass
class UploadBody:
    metadata: dict[str, Any]  # as sent, `items` included
    per_file: list[Any]  # metadata["items"], or [] when not given
    files: list[UploadedFile] = field(default_factory=list)


def file_name(raw: str | None) -> str:
    """The client's file name as metadata: its last path component, never a path."""
    if not raw:
        return ""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    if len(name) > MAX_CHARS["file_name"] or not name.isprintable():
        raise FieldError({"file_name": "a printable name of at most 255 characters"})
    return name

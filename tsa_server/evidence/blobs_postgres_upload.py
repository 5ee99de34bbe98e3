"""One blob being written into the PostgreSQL store of originals under its upload id
(blobs_postgres.py says how: chunks under the upload id, hashed as they come, installed
under the content key in one transaction, or dropped)."""

from __future__ import annotations

import hashlib
import secrets
import threading
from typing import Any, Protocol

import psycopg

from tsa_server.evidence.blobs import CHUNK_BYTES, HAS_SM3, BlobRef
from tsa_server.evidence.errors import BlobError, BlobTooLarge


class _Store(Protocol):
    """What an upload needs of PostgresBlobStore."""

    def connection(self) -> psycopg.Connection[tuple[Any, ...]]: ...

    def _install(self, upload_id: str, ref: BlobRef) -> None: ...

    def _drop_upload(self, upload_id: str) -> None: ...


_TOUCH_AND_INSERT = """
WITH upload AS (
    UPDATE evidence_blob_uploads SET touched = now() WHERE id = %s RETURNING id
)
INSERT INTO evidence_blob_chunks (key, seq, data) SELECT id, %s, %s FROM upload
"""


class Upload:
    """One blob being written under its upload id: its hashes, size and next chunk.
    One operation at a time (a lock): abort waits for a write running in a thread."""

    def __init__(self, store: _Store, max_bytes: int) -> None:
        self._store = store
        self._max = max_bytes
        self._lock = threading.Lock()
        self.id = "upload-" + secrets.token_hex(16)
        store.connection().execute("INSERT INTO evidence_blob_uploads (id) VALUES (%s)", (self.id,))
        self._live = True  # rows may exist under the upload id
        self._buffer = bytearray()
        self._seq = 0
        self._hashes = [hashlib.sha256(), hashlib.sha512()]
        if HAS_SM3:
            self._hashes.append(hashlib.new("sm3"))
        self.size = 0
        self.ref: BlobRef | None = None  # once finished

    def write(self, chunk: bytes | bytearray | memoryview) -> None:
        with self._lock:
            if not self._live or self.ref is not None:
                raise BlobError("write after the blob was finished or abandoned")
            try:
                self.size += len(chunk)
                if self.size > self._max:
                    raise BlobTooLarge(self._max)
                for digest in self._hashes:
                    digest.update(chunk)
                self._buffer += chunk
                while len(self._buffer) >= CHUNK_BYTES:
                    self._insert(bytes(memoryview(self._buffer)[:CHUNK_BYTES]))
                    del self._buffer[:CHUNK_BYTES]
            except BaseException:
                self._abort_locked()
                raise

    def _insert(self, data: bytes) -> None:
        cursor = self._store.connection().execute(_TOUCH_AND_INSERT, (self.id, self._seq, data))
        if cursor.rowcount != 1:
            raise BlobError(f"{self.id} was swept as abandoned while it was being written")
        self._seq += 1

    def finish(self) -> BlobRef:
        """Every chunk written; the blob's digests. install() or abort() next."""
        with self._lock:
            if not self._live or self.ref is not None:
                raise BlobError("finish after the blob was finished or abandoned")
            try:
                if self._buffer:
                    self._insert(bytes(self._buffer))
                    self._buffer = bytearray()
                sha256, sha512 = (h.hexdigest() for h in self._hashes[:2])
                sm3 = self._hashes[2].hexdigest() if HAS_SM3 else None
                self.ref = BlobRef(sha256, self.size, sha256, sha512, sm3)
                return self.ref
            except BaseException:
                self._abort_locked()
                raise

    def install(self) -> BlobRef:
        """The finished blob under its key (deduplicated), in one transaction."""
        with self._lock:
            if not self._live or self.ref is None:
                raise BlobError("install of a blob that is not finished, or gone")
            try:
                self._store._install(self.id, self.ref)
                self._live = False
                return self.ref
            except BaseException:
                self._abort_locked()
                raise

    def abort(self) -> None:
        with self._lock:
            self._abort_locked()

    def _abort_locked(self) -> None:
        self._buffer = bytearray()
        if self._live:
            self._live = False
            try:
                self._store._drop_upload(self.id)
            except psycopg.Error:  # the database is out of reach: the sweep deletes it
                pass

"""Stored originals in the [database] PostgreSQL database, which every node reaches
(issue 16): the same content-addressed store as FileBlobStore (blobs.py), in chunks.

Tables (the EVIDENCE schema's third migration, schema_postgres.py): ``evidence_blobs``
has one row per installed blob (key = SHA-256 in lowercase hex, size, SHA-512, SM3,
created); ``evidence_blob_chunks`` holds its bytes as rows (key, seq, data) of exactly
CHUNK_BYTES (1 MiB) each but the last; ``evidence_blob_uploads`` lists the uploads in
progress. Keys go through check_key as in blobs.py, and only into query parameters.

Writing streams: each chunk is hashed (SHA-256, SHA-512, SM3 when OpenSSL has it) and
inserted under a random upload id (``upload-<32 hex>``) in a statement of its own, so
no transaction lasts longer than one chunk and no more than about two chunks are ever in
memory. Past ``max_bytes`` the write stops with BlobTooLarge and the upload's rows are
deleted; so they are on any other failure. Installing is one transaction: it removes the
upload, inserts the blob's row and renames the chunks under the content key (PostgreSQL
keeps the stored bytes where they are), or, when the key is already stored intact,
deletes the upload's chunks (deduplication; two nodes installing the same content take
turns on the key's row, and the second one drops its copy). Readers therefore see a
blob whole or not at all. A process that dies mid-upload leaves only upload rows, which
``sweep_temp`` deletes once untouched for an hour (every chunk touches its upload, so a
slow upload is not taken for a dead one); the server sweeps at start-up.

Deleting an original several nodes may be storing again: an install takes a hold on its
key (``evidence_blob_holds``, the sixth migration) in its transaction, and the upload
releases it once the items that reference the blob are committed; installs and
``drop_if_unused`` of one key take turns on a transaction advisory lock, so a deletion
sees either the hold or the committed items, and an install after a deletion stores its
own copy again. A hold a dead process left lapses after an hour (the blob is then merely
kept, never lost).

``open`` returns a buffered reader that fetches one chunk per query as it is read, never
the whole blob. Database work happens in the calling thread: ``put_stream`` and
``stage_stream`` run it in worker threads (each thread has its own connection,
tsa_server/database/postgres.py), so an upload never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import threading
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO

import psycopg

from tsa_server.database.postgres import PostgresDatabase
from tsa_server.evidence.blobs import (
    CHUNK_BYTES,
    BlobRef,
    StagedBlob,
    check_key,
    chunks_of,
    hash_stream,
    pump,
)
from tsa_server.evidence.blobs_postgres_upload import Upload
from tsa_server.evidence.errors import BlobError, BlobNotFound
from tsa_server.evidence.schema_postgres import EVIDENCE

#: An upload untouched for this long is taken for one a dead process left behind.
STALE_UPLOAD_SECONDS = 3600.0


class _ChunkReader(io.RawIOBase):
    """A blob's bytes, fetched one chunk (one query) at a time as they are read."""

    def __init__(self, store: PostgresBlobStore, key: str, size: int) -> None:
        super().__init__()
        self._store, self._key, self._size = store, key, size
        self._pos = self._seq = self._offset = 0
        self._chunk = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.closed:
            raise ValueError("read of a closed blob")
        if self._pos >= self._size:
            return 0
        if self._offset >= len(self._chunk):
            self._chunk = self._store._chunk(self._key, self._seq)
            self._seq += 1
            self._offset = 0
        view = memoryview(buffer).cast("B")
        n = min(len(view), len(self._chunk) - self._offset, self._size - self._pos)
        view[:n] = memoryview(self._chunk)[self._offset : self._offset + n]
        self._offset += n
        self._pos += n
        return n

    def close(self) -> None:
        self._chunk = b""
        super().close()


class PostgresBlobStore:
    """BlobStore in the PostgreSQL database at `url` (see the module docstring). Its
    EVIDENCE schema must be this code's (`tsa db upgrade`) unless `migrate` is set."""

    def __init__(self, url: str, *, max_bytes: int = 1 << 30, migrate: bool = False) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        self.max_bytes = max_bytes
        self.db = PostgresDatabase(url, EVIDENCE, migrate=migrate)
        self._holds: dict[str, list[str]] = {}  # key -> this process's hold ids
        self._holds_lock = threading.Lock()

    @property
    def description(self) -> str:
        return self.db.description

    def connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        """This thread's connection (autocommit: each statement commits by itself)."""
        return self.db.connection().raw

    def close(self) -> None:
        self.db.close()

    def _row(self, sql: str, params: tuple[Any, ...], *, binary: bool = False) -> Any:
        return self.connection().execute(sql, params, binary=binary).fetchone()

    # writing

    def put(
        self, data: bytes | BinaryIO | Iterable[bytes], *, max_bytes: int | None = None
    ) -> BlobRef:
        """Store bytes, a binary file object (read in chunks) or an iterable of chunks."""
        upload = Upload(self, self.max_bytes if max_bytes is None else max_bytes)
        try:
            for chunk in chunks_of(data):
                upload.write(chunk)
            upload.finish()
            ref = upload.install()
        except BaseException:
            upload.abort()
            raise
        self.release(ref.key)  # nothing of put()'s caller is pending: no hold to keep
        return ref

    async def put_stream(self, chunks: Any, *, max_bytes: int | None = None) -> BlobRef:
        """Store an async iterator of byte chunks, or anything with an async
        ``read_chunk(size)`` returning b"" at the end (aiohttp's BodyPartReader)."""
        staged = await self.stage_stream(chunks, max_bytes=max_bytes)
        try:
            return await asyncio.to_thread(staged.install)
        except BaseException:
            await _off_loop(staged.discard)
            raise

    async def stage_stream(self, chunks: Any, *, max_bytes: int | None = None) -> StagedBlob:
        """Write and hash a stream under an upload id (as put_stream), not installed."""
        limit = self.max_bytes if max_bytes is None else max_bytes
        upload = await asyncio.to_thread(Upload, self, limit)
        try:
            await pump(chunks, limit, upload.write)
            return StagedBlob(upload, await asyncio.to_thread(upload.finish))
        except BaseException:
            await _off_loop(upload.abort)
            raise

    async def hash_stream(self, chunks: Any, *, max_bytes: int | None = None) -> tuple[str, int]:
        """SHA-256 (hex) and size of a stream, storing nothing (BlobTooLarge past the
        limit); the hashing runs in a worker thread."""
        return await hash_stream(chunks, self.max_bytes if max_bytes is None else max_bytes)

    def _install(self, upload_id: str, ref: BlobRef) -> None:
        """Install under the key's lock, with a hold on the key (module docstring) that
        `release` ends once the items referencing the blob are committed."""
        conn = self.connection()
        with conn.transaction():
            _lock_key(conn, ref.key)
            gone = conn.execute("DELETE FROM evidence_blob_uploads WHERE id = %s", (upload_id,))
            if gone.rowcount != 1:
                raise BlobError(f"{upload_id} was swept as abandoned before it was installed")
            conn.execute(
                "INSERT INTO evidence_blob_holds (id, key) VALUES (%s, %s)", (upload_id, ref.key)
            )
            self._install_locked(conn, upload_id, ref)
        with self._holds_lock:
            self._holds.setdefault(ref.key, []).append(upload_id)

    def release(self, key: str) -> None:
        """End one hold this process took on `key` by installing it."""
        with self._holds_lock:
            ids = self._holds.get(key)
            if not ids:
                return
            hold = ids.pop()
            if not ids:
                del self._holds[key]
        try:
            self.connection().execute("DELETE FROM evidence_blob_holds WHERE id = %s", (hold,))
        except psycopg.Error:  # out of reach: the hold lapses (sweep_temp)
            pass

    def drop_if_unused(self, key: str, referenced: Callable[[], bool]) -> bool:
        """Delete the blob unless an upload on any node holds it or `referenced()` (asked
        under the key's lock, after every hold's items were committed) says an item does."""
        key = check_key(key)
        conn = self.connection()
        with conn.transaction():
            _lock_key(conn, key)
            held = conn.execute(
                "SELECT 1 FROM evidence_blob_holds WHERE key = %s "
                "AND since > now() - make_interval(secs => %s) LIMIT 1",
                (key, STALE_UPLOAD_SECONDS),
            ).fetchone()
            if held is not None or referenced():
                return False
            gone = conn.execute("DELETE FROM evidence_blobs WHERE key = %s", (key,)).rowcount
            conn.execute("DELETE FROM evidence_blob_chunks WHERE key = %s", (key,))
        return gone == 1

    def _install_locked(self, conn: psycopg.Connection[Any], upload_id: str, ref: BlobRef) -> None:
        values = (ref.key, ref.size, ref.sha512, ref.sm3)
        inserted = conn.execute(
            "INSERT INTO evidence_blobs (key, size, sha512, sm3) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (key) DO NOTHING RETURNING key",
            values,
        ).fetchone()
        if inserted is None:  # already stored: keep an intact copy, replace a damaged one
            stored = conn.execute(
                "SELECT size, (SELECT COALESCE(SUM(octet_length(data)), 0) "
                "FROM evidence_blob_chunks WHERE key = %s) FROM evidence_blobs "
                "WHERE key = %s FOR UPDATE",
                (ref.key, ref.key),
            ).fetchone()
            if stored is not None and tuple(stored) == (ref.size, ref.size):
                conn.execute("DELETE FROM evidence_blob_chunks WHERE key = %s", (upload_id,))
                return
            conn.execute("DELETE FROM evidence_blob_chunks WHERE key = %s", (ref.key,))
            conn.execute(
                "INSERT INTO evidence_blobs (key, size, sha512, sm3) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (key) DO UPDATE SET size = EXCLUDED.size, "
                "sha512 = EXCLUDED.sha512, sm3 = EXCLUDED.sm3",
                values,
            )
        conn.execute(
            "UPDATE evidence_blob_chunks SET key = %s WHERE key = %s", (ref.key, upload_id)
        )

    def _drop_upload(self, upload_id: str) -> None:
        conn = self.connection()
        with conn.transaction():
            conn.execute("DELETE FROM evidence_blob_uploads WHERE id = %s", (upload_id,))
            conn.execute("DELETE FROM evidence_blob_chunks WHERE key = %s", (upload_id,))

    # reading and deleting

    def open(self, key: str) -> BinaryIO:
        key = check_key(key)
        row = self._row("SELECT size FROM evidence_blobs WHERE key = %s", (key,))
        if row is None:
            raise BlobNotFound()
        return io.BufferedReader(_ChunkReader(self, key, int(row[0])), CHUNK_BYTES)

    def _chunk(self, key: str, seq: int) -> bytes:
        sql = "SELECT data FROM evidence_blob_chunks WHERE key = %s AND seq = %s"
        row = self._row(sql, (key, seq), binary=True)
        if row is None or not row[0]:
            raise BlobError(f"blob {key} lacks its chunk {seq} (deleted while it was read?)")
        return bytes(row[0])

    def exists(self, key: str) -> bool:
        key = check_key(key)
        return self._row("SELECT 1 FROM evidence_blobs WHERE key = %s", (key,)) is not None

    def delete(self, key: str) -> bool:
        """Remove a blob; False when there was none. Callers check references first."""
        key = check_key(key)
        conn = self.connection()
        with conn.transaction():
            gone = conn.execute("DELETE FROM evidence_blobs WHERE key = %s", (key,)).rowcount
            conn.execute("DELETE FROM evidence_blob_chunks WHERE key = %s", (key,))
        return gone == 1

    def verify(self, key: str) -> bool:
        """Do the stored chunks still hash to the key? (damage, tampering)"""
        digest = hashlib.sha256()
        with self.open(key) as handle:
            while chunk := handle.read(CHUNK_BYTES):
                digest.update(chunk)
        return digest.hexdigest() == key

    def sweep_temp(self, older_than_s: float = STALE_UPLOAD_SECONDS) -> int:
        """Delete the uploads a dead process left behind (untouched for `older_than_s`,
        by the database's clock: every node agrees) and their chunks; how many."""
        conn = self.connection()
        with conn.transaction():
            stale = [
                row[0]
                for row in conn.execute(
                    "DELETE FROM evidence_blob_uploads "
                    "WHERE touched < now() - make_interval(secs => %s) RETURNING id",
                    (float(older_than_s),),
                )
            ]
            conn.execute("DELETE FROM evidence_blob_chunks WHERE key = ANY(%s)", (stale,))
            conn.execute(  # holds of a process that died between install and release
                "DELETE FROM evidence_blob_holds WHERE since < now() - make_interval(secs => %s)",
                (float(older_than_s),),
            )
            orphans = conn.execute(  # chunks of no upload: none is written so, but sure
                "WITH gone AS (DELETE FROM evidence_blob_chunks c WHERE c.key LIKE 'upload-%%' "
                "AND NOT EXISTS (SELECT 1 FROM evidence_blob_uploads u WHERE u.id = c.key) "
                "RETURNING key) SELECT count(DISTINCT key) FROM gone"
            ).fetchone()
        return len(stale) + (int(orphans[0]) if orphans else 0)


def _lock_key(conn: psycopg.Connection[Any], key: str) -> None:
    """Serialize installs and deletions of one key across every node, to the commit."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('blob:' || %s, 0))", (key,))


async def _off_loop(call: Callable[[], None]) -> None:
    """Run a clean-up in a worker thread and wait for it, even when cancelled again."""
    task = asyncio.ensure_future(asyncio.to_thread(call))
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        pass  # it still runs to its end in its thread

"""Content-addressed storage of deposited originals.

A blob's key is the SHA-256 of its bytes in lowercase hex, stored at
``root/ab/cd/<key>`` (the first two byte pairs fan the files out over 65,536
directories). Keys are the only names this module turns into paths, and only after
checking they are exactly 64 hex digits: no user-supplied name, extension or path ever
reaches the filesystem, so ``../``, absolute paths, NULs and the like cannot name
anything. Files are opened with O_NOFOLLOW, so a symlink planted in the store is refused.

Writing (``put`` for bytes, file objects and iterables; ``put_stream`` for async
iterators such as an aiohttp multipart part) streams into a temporary file under
``root/tmp`` (same filesystem, so the final rename is atomic), hashing SHA-256, SHA-512
and SM3 (when OpenSSL has it) as the bytes go by, in chunks of at most CHUNK_BYTES: a
whole file is never in memory. Past ``max_bytes`` the write stops with BlobTooLarge and
the temporary file is deleted; any other failure (a client that goes away, a full
disk, cancellation) deletes it too. A complete blob is fsync'd, made read-only,
renamed into place and its directory fsync'd: after ``put`` returns the blob survives a
crash, and before it returns no partial file is ever visible under its key.

``stage_stream`` stops before the rename: the blob is complete and hashed in ``tmp/``,
and only ``StagedBlob.install`` makes it visible under its key (``discard`` deletes
it). A deposit stages every file of a request and installs them once the request is
accepted, so a refused request leaves nothing in the store. ``hash_stream`` only hashes
(SHA-256 and size) and writes nothing. ``delete`` also removes fan-out directories it
leaves empty.

Identical content has one key, so it is stored once (deduplication across every
organisation): deleting a blob is the caller's decision once no item references it
(EvidenceStore.blob_references).

``put_stream`` does the hashing and writing in a worker thread, a chunk at a time
(hashlib and file writes release the GIL), so a large upload does not stall the event
loop that signs timestamps.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from tsa_server.evidence.blob_streams import CHUNK_BYTES, chunks_of, hash_stream, pump
from tsa_server.evidence.errors import BlobError, BlobNotFound, BlobTooLarge, InvalidBlobKey

# Re-exported: the streaming helpers both backends share live in blob_streams.py.
__all__ = [
    "CHUNK_BYTES",
    "HAS_SM3",
    "BlobRef",
    "BlobStore",
    "FileBlobStore",
    "StagedBlob",
    "Staging",
    "check_key",
    "chunks_of",
    "hash_stream",
    "pump",
]

_KEY = re.compile(r"[0-9a-f]{64}")
_TEMP_PREFIX, _TEMP_SUFFIX = "put-", ".part"


def _sm3_available() -> bool:
    try:
        hashlib.new("sm3")
    except ValueError:
        return False
    return True


HAS_SM3 = _sm3_available()


@dataclass(frozen=True)
class BlobRef:
    key: str  # = sha256
    size: int
    sha256: str
    sha512: str
    sm3: str | None = None  # None when this OpenSSL has no SM3


class BlobStore(Protocol):
    """What the evidence layer needs of a store of originals: FileBlobStore (a directory,
    here) or PostgresBlobStore (chunks in the [database] PostgreSQL database that every
    node shares, blobs_postgres.py). Keys are checked by check_key in both."""

    max_bytes: int

    def put(
        self, data: bytes | BinaryIO | Iterable[bytes], *, max_bytes: int | None = None
    ) -> BlobRef: ...

    async def put_stream(self, chunks: Any, *, max_bytes: int | None = None) -> BlobRef: ...

    async def stage_stream(self, chunks: Any, *, max_bytes: int | None = None) -> StagedBlob: ...

    async def hash_stream(
        self, chunks: Any, *, max_bytes: int | None = None
    ) -> tuple[str, int]: ...

    def open(self, key: str) -> BinaryIO: ...

    def delete(self, key: str) -> bool: ...

    def drop_if_unused(self, key: str, referenced: Callable[[], bool]) -> bool:
        """Delete the blob unless an upload holds it or `referenced()` is true."""
        ...

    def release(self, key: str) -> None:
        """End the hold an install of this process took on `key`."""
        ...

    def exists(self, key: str) -> bool: ...

    def verify(self, key: str) -> bool: ...

    def sweep_temp(self, older_than_s: float = ...) -> int: ...

    def close(self) -> None: ...


class Staging(Protocol):
    """A complete, hashed blob waiting outside its key (a backend's writer)."""

    def install(self) -> BlobRef: ...

    def abort(self) -> None: ...


def check_key(key: object) -> str:
    """The key itself, when it is 64 lowercase hex digits; InvalidBlobKey otherwise."""
    if not isinstance(key, str) or _KEY.fullmatch(key) is None:
        raise InvalidBlobKey()
    return key


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Writer:
    """One blob being written: a temporary file, its hashes and its size. Thread-safe
    enough for put_stream: one operation at a time, abort waits for a running write."""

    def __init__(self, store: FileBlobStore, max_bytes: int) -> None:
        self._store = store
        self._max = max_bytes
        self._lock = threading.Lock()
        fd, name = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=_TEMP_SUFFIX, dir=store.tmp)
        self._path: Path | None = Path(name)
        self._file: BinaryIO | None = os.fdopen(fd, "wb")
        self._hashes = [hashlib.sha256(), hashlib.sha512()]
        if HAS_SM3:
            self._hashes.append(hashlib.new("sm3"))
        self.size = 0
        self.ref: BlobRef | None = None  # once finished

    def write(self, chunk: bytes | bytearray | memoryview) -> None:
        with self._lock:
            if self._file is None:
                raise BlobError("write after the blob was finished or abandoned")
            self.size += len(chunk)
            if self.size > self._max:
                self._abort_locked()
                raise BlobTooLarge(self._max)
            for digest in self._hashes:
                digest.update(chunk)
            self._file.write(chunk)

    def finish(self) -> BlobRef:
        """Complete, fsync'd and read-only in tmp/; its digests. install() or abort()."""
        with self._lock:
            if self._file is None or self._path is None:
                raise BlobError("finish after the blob was finished or abandoned")
            try:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
                self._file = None
                sha256, sha512 = (h.hexdigest() for h in self._hashes[:2])
                sm3 = self._hashes[2].hexdigest() if HAS_SM3 else None
                os.chmod(self._path, 0o444)
                self.ref = BlobRef(sha256, self.size, sha256, sha512, sm3)
                return self.ref
            except BaseException:
                self._abort_locked()
                raise

    def install(self) -> BlobRef:
        """Move the finished blob under its key (deduplicated)."""
        with self._lock:
            if self._file is not None or self._path is None or self.ref is None:
                raise BlobError("install of a blob that is not finished, or gone")
            try:
                self._store._install(self._path, self.ref)
                self._path = None
                return self.ref
            except BaseException:
                self._abort_locked()
                raise

    def commit(self) -> BlobRef:
        self.finish()
        return self.install()

    def abort(self) -> None:
        with self._lock:
            self._abort_locked()

    def _abort_locked(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._path is not None:
            self._path.unlink(missing_ok=True)
            self._path = None


class StagedBlob:
    """A complete blob in tmp/ (or in staging rows), not yet under its key: install()
    it (in a worker thread: it renames and fsyncs, or commits) or discard() it."""

    def __init__(self, writer: Staging, ref: BlobRef) -> None:
        self._writer = writer
        self.ref = ref

    def install(self) -> BlobRef:
        return self._writer.install()

    def discard(self) -> None:
        self._writer.abort()


class FileBlobStore:
    """BlobStore on a local directory (see the module docstring for the guarantees)."""

    def __init__(self, root: Path | str, *, max_bytes: int = 1 << 30) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.max_bytes = max_bytes
        self.tmp.mkdir(parents=True, exist_ok=True, mode=0o750)

    def path(self, key: str) -> Path:
        key = check_key(key)
        return self.root / key[:2] / key[2:4] / key

    # writing

    def put(
        self, data: bytes | BinaryIO | Iterable[bytes], *, max_bytes: int | None = None
    ) -> BlobRef:
        """Store bytes, a binary file object (read in chunks) or an iterable of chunks."""
        writer = _Writer(self, self.max_bytes if max_bytes is None else max_bytes)
        try:
            for chunk in chunks_of(data):
                writer.write(chunk)
            return writer.commit()
        except BaseException:
            writer.abort()
            raise

    async def put_stream(self, chunks: Any, *, max_bytes: int | None = None) -> BlobRef:
        """Store an async iterator of byte chunks, or anything with an async
        ``read_chunk(size)`` returning b"" at the end (aiohttp's BodyPartReader)."""
        staged = await self.stage_stream(chunks, max_bytes=max_bytes)
        try:
            return await asyncio.to_thread(staged.install)
        except BaseException:
            staged.discard()
            raise

    async def stage_stream(self, chunks: Any, *, max_bytes: int | None = None) -> StagedBlob:
        """Write and hash a stream into tmp/ (as put_stream), without installing it."""
        limit = self.max_bytes if max_bytes is None else max_bytes
        writer = await asyncio.to_thread(_Writer, self, limit)
        try:
            await pump(chunks, limit, writer.write)
            return StagedBlob(writer, await asyncio.to_thread(writer.finish))
        except BaseException:
            writer.abort()
            raise

    async def hash_stream(self, chunks: Any, *, max_bytes: int | None = None) -> tuple[str, int]:
        """SHA-256 (hex) and size of a stream, storing nothing (BlobTooLarge past the
        limit); the hashing runs in a worker thread."""
        return await hash_stream(chunks, self.max_bytes if max_bytes is None else max_bytes)

    def _install(self, temp: Path, ref: BlobRef) -> None:
        """Move a complete, fsync'd temporary file to its key's path (or drop it when an
        intact copy is already there: deduplication)."""
        final = self.path(ref.key)
        try:
            existing = os.lstat(final)
        except FileNotFoundError:
            existing = None
        if existing is not None and stat.S_ISREG(existing.st_mode) and existing.st_size == ref.size:
            temp.unlink()
            return
        for attempt in range(3):
            created = []
            for directory in (final.parent.parent, final.parent):
                try:
                    directory.mkdir(mode=0o750)
                    created.append(directory)
                except FileExistsError:
                    pass
            for directory in created:
                _fsync_dir(directory.parent)
            try:
                os.replace(temp, final)  # a damaged copy of the same key is replaced too
                break
            except FileNotFoundError:  # a delete() removed the emptied directory meanwhile
                if attempt == 2 or not temp.exists():
                    raise
        _fsync_dir(final.parent)

    # reading and deleting

    def open(self, key: str) -> BinaryIO:
        path = self.path(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise BlobNotFound() from None
        except OSError as exc:  # ELOOP: a symlink where a blob should be
            raise BlobError(f"blob {key} is unreadable ({exc.strerror})") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise BlobError(f"blob {key} is not a regular file")
        return os.fdopen(fd, "rb")

    def exists(self, key: str) -> bool:
        try:
            return stat.S_ISREG(os.lstat(self.path(key)).st_mode)
        except FileNotFoundError:
            return False

    def drop_if_unused(self, key: str, referenced: Callable[[], bool]) -> bool:
        """One directory serves one process, whose service lock orders uploads and
        deletions (EvidenceService.drop_blob_if_unused): no hold to check here."""
        return not referenced() and self.delete(key)

    def release(self, key: str) -> None:
        """Nothing to release (see drop_if_unused)."""

    def delete(self, key: str) -> bool:
        """Remove a blob; False when there was none. Callers check references first."""
        path = self.path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        _fsync_dir(path.parent)
        for directory in (path.parent, path.parent.parent):  # fan-out left empty
            try:
                directory.rmdir()
            except OSError:  # not empty (or already gone)
                break
        return True

    def verify(self, key: str) -> bool:
        """Does the stored file still hash to its key? (bit rot, tampering)"""
        digest = hashlib.sha256()
        with self.open(key) as handle:
            while chunk := handle.read(CHUNK_BYTES):
                digest.update(chunk)
        return digest.hexdigest() == key

    def sweep_temp(self, older_than_s: float = 24 * 3600) -> int:
        """Delete temporary files a crashed process left behind; the number deleted.
        Only old ones: a younger file may be an upload still in progress elsewhere."""
        cutoff, removed = time.time() - older_than_s, 0
        for path in self.tmp.glob(f"{_TEMP_PREFIX}*{_TEMP_SUFFIX}"):
            try:
                if path.lstat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
        return removed

    def close(self) -> None:
        """Nothing to release (BlobStore.close: the database backend's connections)."""

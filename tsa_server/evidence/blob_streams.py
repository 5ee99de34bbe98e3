"""Streaming bytes into a blob store, shared by both backends (blobs.py, blobs_postgres.py):
an async source (an aiohttp part, an async iterator) or a sync one (bytes, a file, an
iterable) cut into chunks of at most CHUNK_BYTES, fed to a writer in a worker thread so
that hashing and writing never stall the event loop, with the size bound checked before
more than it is buffered."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import Any, BinaryIO

from tsa_server.evidence.errors import BlobTooLarge

#: Unit of hashing and writing, and the most put_stream buffers before writing.
CHUNK_BYTES = 1 << 20


async def hash_stream(chunks: Any, limit: int) -> tuple[str, int]:
    """SHA-256 (hex) and size of a stream, storing nothing; BlobTooLarge past `limit`."""
    digest = hashlib.sha256()
    size = await pump(chunks, limit, digest.update)
    return digest.hexdigest(), size


async def pump(source: Any, limit: int, write: Callable[[bytearray], Any]) -> int:
    """Feed `source` to `write` in a worker thread, CHUNK_BYTES at a time; its size.
    BlobTooLarge before buffering more than `limit` bytes."""
    buffer, seen = bytearray(), 0
    async for chunk in _async_chunks(source):
        seen += len(chunk)
        if seen > limit:
            raise BlobTooLarge(limit)
        buffer += chunk
        if len(buffer) >= CHUNK_BYTES:
            await asyncio.to_thread(write, buffer)
            buffer = bytearray()
    if buffer:
        await asyncio.to_thread(write, buffer)
    return seen


def chunks_of(data: bytes | BinaryIO | Iterable[bytes]) -> Iterable[bytes | bytearray | memoryview]:
    if isinstance(data, bytes | bytearray | memoryview):
        view = memoryview(data)
        for start in range(0, len(view), CHUNK_BYTES):
            yield view[start : start + CHUNK_BYTES]
        return
    read = getattr(data, "read", None)
    if read is not None:
        while chunk := read(CHUNK_BYTES):
            yield chunk
        return
    for chunk in data:
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise TypeError("blob chunks must be bytes")
        yield chunk


async def _async_chunks(source: Any) -> AsyncIterator[bytes | bytearray | memoryview]:
    read_chunk = getattr(source, "read_chunk", None)
    if read_chunk is not None:
        while chunk := await read_chunk(256 * 1024):
            yield chunk
        return
    if not isinstance(source, AsyncIterable):
        raise TypeError("put_stream takes an async iterable of bytes or a read_chunk() reader")
    async for chunk in source:
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise TypeError("blob chunks must be bytes")
        yield chunk

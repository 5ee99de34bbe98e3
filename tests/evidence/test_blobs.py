"""The content-addressed blob store: layout, digests, deduplication, size limits,
keys that cannot be paths, crash safety, and bounded memory for a 300 MiB stream.

The store's contract runs on both backends (`make_blobs`, parametrized like
`engine_db`): the directory (FileBlobStore) and chunks in a real PostgreSQL server the
suite starts (PostgresBlobStore, issue 16); the layout on disk is the files' own."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tsa_server.evidence import blobs as blobs_module
from tsa_server.evidence.blobs import HAS_SM3, BlobStore, FileBlobStore, check_key
from tsa_server.evidence.blobs_postgres import PostgresBlobStore
from tsa_server.evidence.errors import BlobError, BlobNotFound, BlobTooLarge, InvalidBlobKey

MiB = 1 << 20
MakeBlobs = Callable[..., BlobStore]


@pytest.fixture(params=["files", "database"])
def make_blobs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeBlobs]:
    """Stores on this run's backend; several made by one test share one directory or one
    database schema (two nodes)."""
    made: list[BlobStore] = []
    url = request.getfixturevalue("postgres_url") if request.param == "database" else ""

    def make(max_bytes: int = 8 * MiB) -> BlobStore:
        store: BlobStore
        if url:
            store = PostgresBlobStore(url, max_bytes=max_bytes, migrate=True)
        else:
            store = FileBlobStore(tmp_path / "blobs", max_bytes=max_bytes)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def any_blobs(make_blobs: MakeBlobs) -> BlobStore:
    return make_blobs()


@pytest.fixture
def blobs(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "blobs", max_bytes=8 * MiB)


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink())


def temp_files(blobs: FileBlobStore) -> list[Path]:
    return list(blobs.tmp.iterdir())


def stored(store: BlobStore) -> list[str]:
    """The keys of the installed blobs."""
    if isinstance(store, FileBlobStore):
        return [p.name for p in files_under(store.root) if p.parent != store.tmp]
    rows = store.connection().execute("SELECT key FROM evidence_blobs ORDER BY key")
    return [row[0] for row in rows]


def leftovers(store: BlobStore) -> int:
    """Temporary files, or upload rows and chunks not under an installed blob."""
    if isinstance(store, FileBlobStore):
        return len(temp_files(store))
    assert isinstance(store, PostgresBlobStore)
    row = (
        store.connection()
        .execute(
            "SELECT (SELECT count(*) FROM evidence_blob_uploads) + (SELECT count(*) FROM "
            "evidence_blob_chunks c WHERE NOT EXISTS "
            "(SELECT 1 FROM evidence_blobs b WHERE b.key = c.key))"
        )
        .fetchone()
    )
    assert row is not None
    return int(row[0])


def nothing_stored(store: BlobStore) -> bool:
    return stored(store) == [] and leftovers(store) == 0


async def agen(chunks):
    for chunk in chunks:
        yield chunk
        await asyncio.sleep(0)


def test_any_backend_stores_by_sha256_with_all_digests(any_blobs: BlobStore) -> None:
    data = b"the original design drawing\n" * 1000
    ref = any_blobs.put(data)
    assert ref.key == ref.sha256 == hashlib.sha256(data).hexdigest()
    assert ref.sha512 == hashlib.sha512(data).hexdigest() and ref.size == len(data)
    if HAS_SM3:
        assert ref.sm3 == hashlib.new("sm3", data).hexdigest()
    assert stored(any_blobs) == [ref.key] and leftovers(any_blobs) == 0
    with any_blobs.open(ref.key) as handle:
        assert handle.read() == data
    with any_blobs.open(ref.key) as handle:  # read in pieces that straddle chunks
        assert b"".join(iter(lambda: handle.read(7777), b"")) == data
    assert any_blobs.exists(ref.key) and any_blobs.verify(ref.key)


def test_files_are_fanned_out_by_key_and_read_only(blobs: FileBlobStore) -> None:
    data = b"the original design drawing\n" * 1000
    ref = blobs.put(data)
    assert ref.key == ref.sha256 == hashlib.sha256(data).hexdigest()
    assert ref.sha512 == hashlib.sha512(data).hexdigest() and ref.size == len(data)
    if HAS_SM3:
        assert ref.sm3 == hashlib.new("sm3", data).hexdigest()
    path = blobs.root / ref.key[:2] / ref.key[2:4] / ref.key
    assert files_under(blobs.root) == [path] and path.read_bytes() == data
    assert not os.stat(path).st_mode & 0o222  # read-only once stored
    with blobs.open(ref.key) as handle:
        assert handle.read() == data
    assert blobs.exists(ref.key) and blobs.verify(ref.key)


def test_every_input_form_gives_the_same_blob(any_blobs: BlobStore) -> None:
    data = os.urandom(3 * MiB + 17)
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    refs = {
        any_blobs.put(data),
        any_blobs.put(io.BytesIO(data)),
        any_blobs.put(iter(chunks)),
        asyncio.run(any_blobs.put_stream(agen(chunks))),
    }
    assert len(refs) == 1 and len(stored(any_blobs)) == 1 and leftovers(any_blobs) == 0
    with any_blobs.open(refs.pop().key) as handle:
        assert handle.read() == data


def test_empty_original(any_blobs: BlobStore) -> None:
    ref = any_blobs.put(b"")
    assert ref.size == 0 and ref.key == hashlib.sha256(b"").hexdigest()
    with any_blobs.open(ref.key) as handle:
        assert handle.read() == b""
    assert any_blobs.verify(ref.key)


def test_identical_content_is_stored_once(any_blobs: BlobStore) -> None:
    first, second = any_blobs.put(b"same bytes"), any_blobs.put(b"same bytes")
    assert first == second and len(stored(any_blobs)) == 1
    assert leftovers(any_blobs) == 0


def test_a_damaged_copy_is_replaced_by_a_good_one(blobs: FileBlobStore) -> None:
    ref = blobs.put(b"precious")
    path = blobs.path(ref.key)
    path.chmod(0o644)
    path.write_bytes(b"bitrot")  # another size: not taken for the same content
    assert not blobs.verify(ref.key)
    blobs.put(b"precious")
    assert path.read_bytes() == b"precious" and blobs.verify(ref.key)


def test_concurrent_puts_of_the_same_content(make_blobs: MakeBlobs) -> None:
    """Four writers (two nodes' stores on the database) of the same bytes: one blob."""
    first, second = make_blobs(), make_blobs()
    data = os.urandom(2 * MiB + 3)
    refs = []
    threads = [
        threading.Thread(target=lambda s=store: refs.append(s.put(data)))
        for store in (first, second, first, second)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(refs) == 4 and len(set(refs)) == 1
    assert stored(first) == [refs[0].key] and leftovers(first) == 0
    with second.open(refs[0].key) as handle:
        assert handle.read() == data


@pytest.mark.parametrize("limit", [0, 1, MiB, 3 * MiB + 1])
def test_size_limit_exact_and_one_over(make_blobs: MakeBlobs, limit: int) -> None:
    blobs = make_blobs(max_bytes=limit)
    data = os.urandom(limit + 1)
    with pytest.raises(BlobTooLarge) as info:
        blobs.put(data)
    assert info.value.limit == limit
    with pytest.raises(BlobTooLarge):
        asyncio.run(blobs.put_stream(agen([data[: limit // 2], data[limit // 2 :]])))
    assert nothing_stored(blobs)
    assert blobs.put(data[:limit]).size == limit
    assert asyncio.run(blobs.put_stream(agen([data[:limit]]))).size == limit


def test_per_call_limit(any_blobs: BlobStore) -> None:
    with pytest.raises(BlobTooLarge):
        any_blobs.put(b"12345", max_bytes=4)
    assert any_blobs.put(b"12345", max_bytes=5).size == 5


PATH_TRICKS = [
    "../x",
    "ab/../../etc",
    "/etc/passwd",
    "..",
    "",
    "0" * 63,
    "0" * 65,
    "A" * 64,  # upper case is another string for the same digest: refused
    "g" * 64,
    "0" * 63 + "\n",
    "0" * 64 + "\n",
    "0" * 62 + "/.",
    "00/00/" + "0" * 64,
    "0" * 32 + "\x00" + "0" * 31,
    "٠" * 64,  # ARABIC-INDIC DIGIT ZERO: a digit, not hex
    None,
    64,
    b"0" * 64,
]


@pytest.mark.parametrize("key", PATH_TRICKS)
def test_keys_that_are_not_64_hex_digits_are_refused(any_blobs: BlobStore, key) -> None:
    calls = [any_blobs.open, any_blobs.delete, any_blobs.exists, any_blobs.verify, check_key]
    if isinstance(any_blobs, FileBlobStore):
        calls.append(any_blobs.path)
    for call in calls:
        with pytest.raises(InvalidBlobKey):
            call(key)


def test_missing_blob(any_blobs: BlobStore) -> None:
    key = "0" * 64
    assert not any_blobs.exists(key) and not any_blobs.delete(key)
    with pytest.raises(BlobNotFound):
        any_blobs.open(key)


def test_a_planted_symlink_is_not_followed(blobs: FileBlobStore, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("server secrets")
    key = hashlib.sha256(b"whatever").hexdigest()
    link = blobs.root / key[:2] / key[2:4] / key
    link.parent.mkdir(parents=True)
    link.symlink_to(secret)
    with pytest.raises(BlobError):
        blobs.open(key)
    assert not blobs.exists(key)


def test_delete(any_blobs: BlobStore) -> None:
    ref = any_blobs.put(b"delete me" * (MiB // 4))
    assert any_blobs.delete(ref.key) and not any_blobs.exists(ref.key)
    assert not any_blobs.delete(ref.key) and nothing_stored(any_blobs)


# crash safety: a failed put leaves nothing behind


def test_a_failing_source_leaves_no_file(any_blobs: BlobStore) -> None:
    blobs = any_blobs

    def broken():
        yield b"x" * MiB
        yield b"y" * MiB
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        blobs.put(broken())

    async def broken_async():
        yield b"x" * (2 * MiB)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        asyncio.run(blobs.put_stream(broken_async()))
    assert nothing_stored(blobs)


def test_a_failing_rename_leaves_no_file(blobs: FileBlobStore, monkeypatch) -> None:
    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(blobs_module.os, "replace", full_disk)
    with pytest.raises(OSError):
        blobs.put(b"never stored")
    assert files_under(blobs.root) == []


def test_a_failing_fsync_leaves_no_file(blobs: FileBlobStore, monkeypatch) -> None:
    def io_error(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(blobs_module.os, "fsync", io_error)
    with pytest.raises(OSError):
        asyncio.run(blobs.put_stream(agen([b"never stored"])))
    assert files_under(blobs.root) == []


def test_a_cancelled_upload_leaves_no_file(make_blobs: MakeBlobs) -> None:
    blobs = make_blobs(max_bytes=1 << 40)

    async def slow():
        while True:
            yield b"z" * 65536
            await asyncio.sleep(0.001)

    async def run():
        task = asyncio.create_task(blobs.put_stream(slow()))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert nothing_stored(blobs)


def test_a_multipart_reader_is_accepted(any_blobs: BlobStore) -> None:
    blobs = any_blobs

    class Part:  # the shape of aiohttp's BodyPartReader
        def __init__(self, data: bytes) -> None:
            self.stream = io.BytesIO(data)

        async def read_chunk(self, size: int = 8192) -> bytes:
            return self.stream.read(min(size, 8192))

    data = os.urandom(MiB + 5)
    assert asyncio.run(blobs.put_stream(Part(data))).key == hashlib.sha256(data).hexdigest()
    with pytest.raises(TypeError):
        asyncio.run(blobs.put_stream(agen(["text, not bytes"])))
    assert leftovers(blobs) == 0


def test_sweep_removes_only_old_temporary_files(blobs: FileBlobStore) -> None:
    old, young = blobs.tmp / "put-old.part", blobs.tmp / "put-young.part"
    old.write_bytes(b"left by a crash")
    young.write_bytes(b"an upload in progress")
    past = time.time() - 2 * 86400
    os.utime(old, (past, past))
    assert blobs.sweep_temp() == 1
    assert not old.exists() and young.exists()


@pytest.mark.slow
def test_a_300_mib_stream_is_hashed_in_bounded_memory(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path / "blobs", max_bytes=1 << 40)
    block = os.urandom(64 * 1024)
    count = 300 * 16  # 300 MiB in 64 KiB chunks, each a new bytes object
    expected = hashlib.sha256()

    async def upload():
        for i in range(count):
            chunk = i.to_bytes(8, "big") + block[8:]
            yield chunk

    for i in range(count):
        expected.update(i.to_bytes(8, "big") + block[8:])
    tracemalloc.start()
    try:
        ref = asyncio.run(blobs.put_stream(upload()))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ref.size == 300 * MiB and ref.key == expected.hexdigest()
    assert peak < 20 * MiB, f"peak {peak / MiB:.1f} MiB"
    assert os.path.getsize(blobs.path(ref.key)) == 300 * MiB


def test_staged_blobs_are_invisible_until_installed(any_blobs: BlobStore) -> None:
    """Issue 13, item 6: a request's files wait in tmp/ until the deposit is accepted."""
    blobs = any_blobs
    data = os.urandom(MiB + 5)

    async def stage():
        return await blobs.stage_stream(agen([data[:MiB], data[MiB:]]))

    staged = asyncio.run(stage())
    assert staged.ref.sha256 == hashlib.sha256(data).hexdigest() and staged.ref.size == len(data)
    assert not blobs.exists(staged.ref.key) and leftovers(blobs) >= 1
    with pytest.raises(BlobNotFound):
        blobs.open(staged.ref.key)
    staged.discard()
    assert nothing_stored(blobs)
    staged = asyncio.run(stage())
    assert staged.install() == staged.ref and blobs.exists(staged.ref.key)
    assert leftovers(blobs) == 0 and blobs.verify(staged.ref.key)


def test_hash_stream_writes_nothing_and_keeps_the_limit(any_blobs: BlobStore) -> None:
    blobs = any_blobs
    data = os.urandom(2 * MiB)
    digest, size = asyncio.run(blobs.hash_stream(agen([data[:MiB], data[MiB:]])))
    assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))
    with pytest.raises(BlobTooLarge):
        asyncio.run(blobs.hash_stream(agen([data]), max_bytes=MiB))
    assert nothing_stored(blobs)


def test_delete_removes_the_fan_out_it_empties(blobs: FileBlobStore) -> None:
    ref = blobs.put(b"alone in its directories")
    assert blobs.delete(ref.key)
    assert [p for p in blobs.root.iterdir() if p != blobs.tmp] == []
    again = blobs.put(b"alone in its directories")  # the directories come back
    assert again == ref and blobs.verify(ref.key)

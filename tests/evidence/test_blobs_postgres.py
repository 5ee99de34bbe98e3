"""Stored originals in PostgreSQL (issue 16, item 5), on a real server the suite starts:
two nodes' stores on one database see each other's blobs, an interrupted upload leaves
nothing under its key, a restart sweeps what a dead process left, a 20 MiB blob goes
both ways in bounded memory, and the wiring picks the backend from the configuration."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import threading
import tracemalloc
from pathlib import Path

import pytest

from tsa_server.config import Config
from tsa_server.config.validate import validate
from tsa_server.errors import ConfigError
from tsa_server.evidence.blobs import CHUNK_BYTES, FileBlobStore
from tsa_server.evidence.blobs_postgres import PostgresBlobStore
from tsa_server.evidence.blobs_postgres_upload import Upload
from tsa_server.wiring.databases import blobs_in_database, open_blobs

MiB = 1 << 20


@pytest.fixture
def nodes(postgres_url: str):
    one = PostgresBlobStore(postgres_url, max_bytes=64 * MiB, migrate=True)
    two = PostgresBlobStore(postgres_url, max_bytes=64 * MiB)
    yield one, two
    one.close()
    two.close()


def count(store: PostgresBlobStore, table: str) -> int:
    row = store.connection().execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def test_a_blob_put_by_one_node_is_read_by_the_other(nodes) -> None:
    one, two = nodes
    data = os.urandom(2 * CHUNK_BYTES + 5)
    ref = one.put(data)
    assert two.exists(ref.key) and two.verify(ref.key)
    with two.open(ref.key) as handle:
        assert handle.read() == data
    assert count(one, "evidence_blob_chunks") == 3  # 1 MiB, 1 MiB, 5 bytes
    assert two.delete(ref.key) and not one.exists(ref.key)
    assert count(one, "evidence_blob_chunks") == 0


def test_an_upload_interrupted_mid_stream_leaves_nothing_under_its_key(nodes) -> None:
    one, two = nodes
    data = os.urandom(3 * MiB)
    key = hashlib.sha256(data).hexdigest()

    async def dies_midway():
        yield data[: 2 * MiB]
        yield data[2 * MiB : 2 * MiB + 1000]
        raise ConnectionResetError("the client went away")

    with pytest.raises(ConnectionResetError):
        asyncio.run(one.put_stream(dies_midway()))
    assert not two.exists(key)
    for table in ("evidence_blobs", "evidence_blob_uploads", "evidence_blob_chunks"):
        assert count(one, table) == 0, table


def test_a_restart_sweeps_the_uploads_a_dead_process_left(nodes, postgres_url: str) -> None:
    one, _ = nodes
    dead = Upload(one, 64 * MiB)  # a process killed mid-upload: nothing aborts it
    dead.write(os.urandom(2 * MiB + 1))
    alive = Upload(one, 64 * MiB)  # another node's upload in progress
    alive.write(os.urandom(MiB))
    one.connection().execute(
        "UPDATE evidence_blob_uploads SET touched = now() - interval '2 hours' WHERE id = %s",
        (dead.id,),
    )
    config = dataclasses.replace(
        Config(), database=dataclasses.replace(Config().database, url=postgres_url)
    )
    restarted = open_blobs(config)  # the server's start-up sweeps
    try:
        assert isinstance(restarted, PostgresBlobStore)
        assert count(one, "evidence_blob_uploads") == 1
        assert count(one, "evidence_blob_chunks") == 1  # the live upload's first chunk
        alive.finish()
        assert restarted.exists(alive.install().key)
        assert restarted.sweep_temp() == 0
    finally:
        restarted.close()


def stage(store: PostgresBlobStore, data: bytes):
    async def one_chunk():
        yield data

    return asyncio.run(store.stage_stream(one_chunk()))


def test_a_deletion_on_one_node_spares_what_another_is_storing_again(nodes) -> None:
    """The cross-node race of deleting an original while another node stores the same
    bytes again for a new item: the deletion sees the other node's hold (its item not
    committed yet) and keeps the blob; once that upload releases its hold, the item's
    reference (`referenced`) keeps it; with neither, it goes."""
    one, two = nodes
    data = os.urandom(CHUNK_BYTES + 7)
    key = one.put(data).key
    stage(two, data).install()  # node two: stored again, its item not yet committed
    assert not one.drop_if_unused(key, lambda: False) and one.exists(key)
    two.release(key)  # node two's item is committed: it references the blob
    assert not one.drop_if_unused(key, lambda: True) and one.exists(key)
    assert one.drop_if_unused(key, lambda: False) and not two.exists(key)
    assert count(one, "evidence_blob_holds") == 0


def test_an_install_waits_for_a_deletion_of_its_key_and_stores_its_own_copy(nodes) -> None:
    """An install that meets a deletion in progress waits for it (the key's lock), then
    finds the blob gone and keeps its own bytes: the new item's original is never lost."""
    one, two = nodes
    data = os.urandom(CHUNK_BYTES + 11)
    key = one.put(data).key
    staged = stage(two, data)
    installing = threading.Thread(target=staged.install)

    def referenced() -> bool:  # asked under the key's lock, mid-deletion
        installing.start()
        installing.join(1.0)
        assert installing.is_alive(), "the install did not wait for the deletion"
        return False

    assert one.drop_if_unused(key, referenced)
    installing.join(30)
    assert not installing.is_alive()
    with one.open(key) as handle:
        assert handle.read() == data
    assert not one.drop_if_unused(key, lambda: False)  # held until node two releases
    two.release(key)


def test_a_20_mib_blob_round_trips_in_bounded_memory(nodes) -> None:
    one, two = nodes
    block = os.urandom(64 * 1024)
    expected = hashlib.sha256()
    count_chunks = 20 * 16

    async def upload():
        for i in range(count_chunks):
            yield i.to_bytes(8, "big") + block[8:]

    for i in range(count_chunks):
        expected.update(i.to_bytes(8, "big") + block[8:])
    tracemalloc.start()
    try:
        ref = asyncio.run(one.put_stream(upload()))
        _, stored_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        digest = hashlib.sha256()
        with two.open(ref.key) as handle:
            while chunk := handle.read(CHUNK_BYTES):
                digest.update(chunk)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ref.size == 20 * MiB and ref.key == expected.hexdigest() == digest.hexdigest()
    assert stored_peak < 6 * MiB, f"writing: peak {stored_peak / MiB:.1f} MiB"
    assert read_peak < 6 * MiB, f"reading: peak {read_peak / MiB:.1f} MiB"


def test_the_configuration_picks_the_backend(tmp_path: Path, postgres_url: str) -> None:
    base = Config()
    files = dataclasses.replace(base.evidence, blobs=str(tmp_path / "blobs"))
    on_files = dataclasses.replace(base, evidence=files)
    assert not blobs_in_database(on_files)
    store = open_blobs(on_files)
    assert isinstance(store, FileBlobStore)
    database = dataclasses.replace(base.database, url=postgres_url)
    auto = dataclasses.replace(on_files, database=database)
    assert blobs_in_database(auto)
    kept = dataclasses.replace(auto, evidence=dataclasses.replace(files, blob_backend="files"))
    assert not blobs_in_database(kept)
    with pytest.raises(ConfigError, match="tsa db upgrade"):  # an unmigrated database
        open_blobs(auto)
    wrong = dataclasses.replace(on_files, evidence=dataclasses.replace(files, blob_backend="s3"))
    with pytest.raises(ConfigError, match='must be "auto", "files" or "database"'):
        validate(wrong)
    alone = dataclasses.replace(
        on_files, evidence=dataclasses.replace(files, blob_backend="database")
    )
    with pytest.raises(ConfigError, match="needs \\[database\\] url"):
        validate(alone)

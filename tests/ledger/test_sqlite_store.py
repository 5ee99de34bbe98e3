"""The SQLite store's tree: roots and proofs from stored nodes agree with the reference
implementation at every size across stratum boundaries; checkpoints only advance."""

from __future__ import annotations

import random
import sqlite3

import pytest

from ledger.errors import LedgerWriteError
from ledger.hashing import leaf_hash
from ledger.proofs import verify_consistency, verify_inclusion
from ledger.store.base import NewEntry, SignedCheckpoint
from ledger.store.sqlite import SqliteStore
from tests.ledger.reference import ReferenceTree


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
    """A ledger of 66,000 entries appended in uneven batches, and its leaf hashes."""
    store = SqliteStore(tmp_path_factory.mktemp("tree") / "ledger.sqlite")
    epoch = store.claim_epoch().epoch
    leaves, index = [], 0
    rng = random.Random(7)
    while index < 66_000:
        batch = min(rng.choice([1, 2, 7, 255, 256, 1000, 4096]), 66_000 - index)
        entries = [
            NewEntry(b"t%d" % (index + i), index + i, index + i + 1, "sha256", b"")
            for i in range(batch)
        ]
        store.append(epoch, index, entries)
        leaves += [leaf_hash(e.token) for e in entries]
        index += batch
    yield store, leaves
    store.close()


def reference_root(leaves, size):
    from ledger.merkle import root_of

    return root_of(leaves[:size])


@pytest.mark.parametrize("size", [1, 2, 3, 255, 256, 257, 511, 512, 65_535, 65_536, 65_537, 66_000])
def test_roots_match_the_reference(grown, size) -> None:
    store, leaves = grown
    assert store.root(size) == reference_root(leaves, size)
    if size <= 600:  # the dumb recursive definition, on the entries themselves
        assert store.root(size) == ReferenceTree([b"t%d" % i for i in range(size)]).root(size)


def test_random_proofs_verify(grown) -> None:
    store, leaves = grown
    rng = random.Random(11)
    for _ in range(60):
        size = rng.randint(1, len(leaves))
        index = rng.randrange(size)
        root = reference_root(leaves, size)
        verify_inclusion(index, size, leaves[index], store.inclusion_proof(index, size), root)
        old = rng.randint(1, size)
        verify_consistency(
            old, size, store.consistency_proof(old, size), reference_root(leaves, old), root
        )


def test_tiles_hold_the_stored_nodes(grown) -> None:
    store, leaves = grown
    assert store.tile_hashes(0, 3, 256) == b"".join(leaves[768:1024])
    level1 = store.tile_hashes(1, 0, 257 - 1)
    assert level1[:32] == ReferenceTree([b"t%d" % i for i in range(256)]).root(256)
    assert len(store.tile_hashes(1, 0, 66_000 >> 8)) == 32 * (66_000 >> 8)


def test_missing_nodes_are_backfilled_on_open(tmp_path) -> None:
    path = tmp_path / "old.sqlite"
    store = SqliteStore(path)
    epoch = store.claim_epoch().epoch
    entries = [NewEntry(b"%d" % i, i, i + 1, "sha256", b"") for i in range(700)]
    store.append(epoch, 0, entries)
    expected = store.root(700)
    store.close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER nodes_no_delete")
    conn.execute("DELETE FROM nodes")
    conn.commit()
    conn.close()
    reopened = SqliteStore(path)
    assert reopened.root(700) == expected
    reopened.close()


def test_checkpoints_only_advance(tmp_path) -> None:
    store = SqliteStore(tmp_path / "l.sqlite")
    store.add_checkpoint(SignedCheckpoint(5, b"r" * 32, b"c" * 32, "note5", 1))
    for size in (5, 4):
        with pytest.raises(LedgerWriteError, match="larger than the last"):
            store.add_checkpoint(SignedCheckpoint(size, b"r" * 32, b"c" * 32, "other", 2))
    store.add_checkpoint(SignedCheckpoint(9, b"s" * 32, b"d" * 32, "note9", 3))
    assert [c.size for c in store.checkpoints()] == [5, 9]
    assert store.latest_checkpoint().note == "note9"
    store.close()


def test_the_wal_is_copied_back_by_the_thread_and_restarts_under_steady_commits(
    tmp_path,
) -> None:
    """The checkpoint thread copies the WAL into the database while commits keep coming,
    and the WAL stays bounded (it restarts once past the writer's threshold) instead of
    growing for as long as the stream lasts."""
    import os
    import time

    restart_pages = 64  # 256 KiB; the default is 64 MiB
    path = tmp_path / "ledger.sqlite"
    store = SqliteStore(path, wal_restart_pages=restart_pages)
    epoch = store.claim_epoch().epoch
    token = os.urandom(1500)
    largest_wal = 0
    for batch in range(300):  # no pause between commits
        entries = [NewEntry(token + b"%d.%d" % (batch, i), batch, batch * 10 + i + 1,
                            "sha256", b"")
                   for i in range(10)]  # fmt: skip
        store.append(epoch, batch * 10, entries)
        largest_wal = max(largest_wal, os.path.getsize(str(path) + "-wal"))
    # Without the restart the WAL holds every frame written (about 15 MiB here).
    assert largest_wal < 4 * 64 * 4096
    deadline = time.monotonic() + 10
    while store._checkpointer.rounds_copied == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store._checkpointer.rounds_copied >= 1
    store.close()
    reopened = SqliteStore(path)
    assert reopened.size() == 3000
    reopened.close()

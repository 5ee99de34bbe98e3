"""The ledger section of POST /verify (web/verify/ledger.py) on real ledger files built
with the store: the proof is against the latest signed checkpoint when it covers the
entry, against the current tree otherwise, and the work of a lookup does not grow with
the ledger (SQLite virtual-machine steps counted at two sizes 32 times apart)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ledger.proofs import verify_inclusion
from ledger.serials import serial_text
from ledger.store.base import NewEntry, SignedCheckpoint
from ledger.store.sqlite import SqliteReader, SqliteStore
from tsa_server.web.verify.ledger import ledger_lookup

SMALL, LARGE = 1_000, 32_000
NEWER = 10  # entries appended after the last checkpoint


def _token(index: int) -> bytes:
    return b"token-" + hashlib.sha256(index.to_bytes(8, "big")).digest()


def build(path: Path, size: int) -> None:
    """A ledger of `size` entries (serial i + 1), checkpointed at size - NEWER."""
    store = SqliteStore(path)
    try:
        epoch = store.claim_epoch().epoch
        for start in range(0, size, 8_000):
            batch = range(start, min(size, start + 8_000))
            store.append(
                epoch,
                start,
                [NewEntry(_token(i), 1_000 + i, i + 1, "sha256", bytes(32)) for i in batch],
            )
        signed = size - NEWER
        note = f"example.test/ledger\n{signed}\nroot\n\n— signed note {signed}\n"
        store.add_checkpoint(
            SignedCheckpoint(signed, store.root(signed), store.chain_head(signed), note)
        )
    finally:
        store.close()


@pytest.fixture(scope="module")
def ledgers(tmp_path_factory) -> dict[int, Path]:
    root = tmp_path_factory.mktemp("verify-ledger")
    paths = {}
    for size in (SMALL, LARGE):
        paths[size] = root / f"ledger-{size}.sqlite"
        build(paths[size], size)
    return paths


@contextmanager
def reader_of(path: Path) -> Iterator[SqliteReader]:
    reader = SqliteReader(path)
    try:
        yield reader
    finally:
        reader.close()


def steps(reader: SqliteReader, serial: int) -> tuple[dict, int]:
    """The lookup's answer and how many SQLite VM steps (in hundreds) it took."""
    count = 0

    def tick() -> int:
        nonlocal count
        count += 1
        return 0

    reader._conn.set_progress_handler(tick, 100)  # the reader's one connection
    try:
        return ledger_lookup(reader, serial), count
    finally:
        reader._conn.set_progress_handler(None, 100)


def test_proof_against_the_latest_signed_checkpoint(ledgers):
    with reader_of(ledgers[SMALL]) as reader:
        latest = reader.latest_checkpoint()
        for index in (0, 1, 517, latest.size - 1):
            found = ledger_lookup(reader, index + 1)
            assert found["found"] and found["index"] == index
            assert found["checkpoint"] == latest.note and found["checkpoint_pending"] is None
            assert found["tree_size"] == latest.size and found["root"] == latest.root.hex()
            proof = [bytes.fromhex(h) for h in found["inclusion_proof"]]
            leaf = bytes.fromhex(found["leaf_hash"])
            verify_inclusion(index, latest.size, leaf, proof, latest.root)


def test_entry_newer_than_the_checkpoint_is_proved_against_the_current_tree(ledgers):
    with reader_of(ledgers[SMALL]) as reader:
        index = SMALL - 1
        found = ledger_lookup(reader, index + 1)
        assert found["checkpoint"] is None
        assert f"latest has size {SMALL - NEWER}" in found["checkpoint_pending"]
        assert found["tree_size"] == SMALL and found["root"] == reader.root(SMALL).hex()
        proof = [bytes.fromhex(h) for h in found["inclusion_proof"]]
        leaf = bytes.fromhex(found["leaf_hash"])
        verify_inclusion(index, SMALL, leaf, proof, reader.root(SMALL))
        assert ledger_lookup(reader, SMALL + 5) == {
            "found": False,
            "serial": serial_text(SMALL + 5),
        }


def test_lookup_work_does_not_grow_with_the_ledger(ledgers):
    """32 times the entries, at most a few more steps (the B-tree and the proof grow
    with log n); the old lookup read every leaf hash: 32 times the work."""
    counts = {}
    for size, path in ledgers.items():
        with reader_of(path) as reader:
            for position in ("middle", "newest"):
                serial = size // 2 if position == "middle" else size
                answer, counts[size, position] = steps(reader, serial)
                assert answer["found"] and answer["index"] == serial - 1
    for position in ("middle", "newest"):
        assert counts[LARGE, position] < 2 * counts[SMALL, position] + 50, counts

"""The ledger store contract, over both backends (SQLite and a real PostgreSQL server).

Both stores receive the same few hundred realistic entries in uneven batches. Every
Reader method is checked against an independent computation over the leaf hashes
(ledger.merkle, ledger.proofs, ledger.chain), and the two backends must give identical
answers to the same calls. Fencing, index checks and checkpoint ordering are checked on
fresh stores of each backend.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger.chain import chain_values
from ledger.errors import LedgerWriteError
from ledger.hashing import CHAIN_GENESIS, leaf_hash
from ledger.merkle import MemoryTree, root_of
from ledger.proofs import (
    consistency_proof,
    inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from ledger.store.base import Entry, NewEntry, SignedCheckpoint, Store
from ledger.store.postgres import PostgresStore
from ledger.store.sqlite import SqliteStore
from tests.support.postgres import PostgresServer

BACKENDS = ["sqlite", "postgres"]
BATCHES = [1, 64, 3, 200, 64, 128, 1, 139]  # 600 entries: two full level-1 tiles
SIZE = sum(BATCHES)
START_MS = 1_765_000_000_000
POPULAR = [bytes([i]) * 32 for i in (0xA1, 0xB2, 0xC3)]  # imprints stamped many times
CHECKPOINTS = [(65, 1_765_000_100), (268, None), (600, 1_765_000_300)]


def make_entries(seed: int = 16) -> list[NewEntry]:
    """Token-sized DER-ish blobs, 128- to 159-bit serials (and a few at the 64-bit
    edges), genTimes that repeat and jump, three hash algorithms, repeated imprints and
    one token stored twice (its leaf hash is found at its first index)."""
    rng = random.Random(seed)
    special_serials = {0: 1, 7: (1 << 63) - 1, 8: 1 << 63, 9: (1 << 64) + 1}
    entries, now = [], START_MS
    for index in range(SIZE):
        body = rng.randbytes(rng.randint(900, 1800))
        token = b"\x30\x82" + len(body).to_bytes(2, "big") + body
        if index == 333:
            token = entries[12].token
        alg, width = rng.choice([("sha256", 32), ("sha384", 48), ("sha512", 64)])
        imprint = rng.choice(POPULAR) if rng.random() < 0.2 else rng.randbytes(width)
        if imprint in POPULAR:
            alg = "sha256"
        now += rng.choice([0, 0, 1, 3, 250, 1000])
        serial = special_serials.get(index, rng.getrandbits(159) | 1 << 127)
        entries.append(NewEntry(token, now, serial, alg, imprint))
    return entries


ENTRIES = make_entries()
LEAVES = [leaf_hash(new.token) for new in ENTRIES]
CHAIN = list(chain_values(LEAVES))
TREE = MemoryTree(LEAVES)


def expected_entry(index: int) -> Entry:
    new = ENTRIES[index]
    return Entry(
        index,
        new.token,
        new.gen_time_ms,
        new.serial,
        new.imprint_alg,
        new.imprint,
        LEAVES[index],
        CHAIN[index],
    )


def checkpoint(size: int, signed_at: int | None) -> SignedCheckpoint:
    head = CHAIN[size - 1] if size else CHAIN_GENESIS
    note = f"tsa.example/tokens\n{size}\n{root_of(LEAVES[:size]).hex()}\n\n— sig\n"
    return SignedCheckpoint(size, root_of(LEAVES[:size]), head, note, signed_at)


def open_store(backend: str, tmp: Path, postgres: Callable[[], str]) -> Store:
    if backend == "sqlite":
        return SqliteStore(tmp / "ledger.sqlite")
    return PostgresStore(postgres())


def grow(store: Store) -> None:
    epoch = store.claim_epoch().epoch
    index = 0
    for batch in BATCHES:
        store.append(epoch, index, ENTRIES[index : index + batch])
        index += batch
    for size, signed_at in CHECKPOINTS:
        store.add_checkpoint(checkpoint(size, signed_at))


@pytest.fixture(scope="module")
def grown_stores(
    tmp_path_factory: pytest.TempPathFactory, postgres: PostgresServer
) -> Iterator[dict[str, Store]]:
    """Both backends, holding the same 600 entries and three checkpoints."""
    stores = {}
    for backend in BACKENDS:
        store = open_store(backend, tmp_path_factory.mktemp(backend), postgres.create_schema)
        grow(store)
        stores[backend] = store
    yield stores
    for store in stores.values():
        store.close()


@pytest.fixture(params=BACKENDS)
def grown(request: pytest.FixtureRequest, grown_stores: dict[str, Store]) -> Store:
    return grown_stores[request.param]


@pytest.fixture(params=BACKENDS)
def empty_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh store of each backend (PostgreSQL: a database of the test's own)."""

    def database() -> str:
        url: str = request.getfixturevalue("postgres_url")
        return url

    store = open_store(request.param, tmp_path, database)
    yield store
    store.close()


# Entries


def test_entries_read_back_exactly(grown: Store) -> None:
    assert grown.size() == SIZE
    assert list(grown.entries()) == [expected_entry(i) for i in range(SIZE)]
    for start, end in [(0, 0), (5, 17), (590, 700), (SIZE, None), (10, 5), (599, None)]:
        stop = SIZE if end is None else min(end, SIZE)
        assert list(grown.entries(start, end)) == [
            expected_entry(i) for i in range(start, max(start, stop))
        ]
    for index in (0, 1, 63, 64, 255, 256, 599):
        assert grown.entry(index) == expected_entry(index)
    assert grown.entry(SIZE) is None
    assert grown.entry(-1) is None


def test_lookups_by_serial_leaf_and_imprint(grown: Store) -> None:
    for index, new in enumerate(ENTRIES):
        assert grown.entry_by_serial(new.serial) == expected_entry(index)
    assert grown.entry_by_serial(2) is None
    assert grown.entry_by_serial(1 << 200) is None
    # The token stored twice is found at its first index.
    assert grown.entry_by_leaf_hash(LEAVES[333]) == expected_entry(12)
    for index in (0, 100, 599):
        assert grown.entry_by_leaf_hash(LEAVES[index]) == expected_entry(index)
    assert grown.entry_by_leaf_hash(bytes(32)) is None
    for imprint in POPULAR:
        holders = [i for i, new in enumerate(ENTRIES) if new.imprint == imprint]
        assert len(holders) > 10
        assert grown.entries_by_imprint(imprint) == [expected_entry(i) for i in holders]
        assert grown.entries_by_imprint(imprint, limit=3) == [
            expected_entry(i) for i in holders[:3]
        ]
        later = [i for i in holders if i >= 300][:5]
        assert grown.entries_by_imprint(imprint, 5, 300) == [expected_entry(i) for i in later]
        assert grown.entries_by_imprint(imprint, 0) == []
    assert grown.entries_by_imprint(ENTRIES[42].imprint) == [expected_entry(42)]
    assert grown.entries_by_imprint(b"\x00" * 48) == []


def test_index_at_time(grown: Store) -> None:
    times = [new.gen_time_ms for new in ENTRIES]
    probes = [0, START_MS, times[0], times[0] + 1, times[-1], times[-1] + 1]
    probes += random.Random(3).sample(range(times[0], times[-1] + 2), 40) + times[::37]
    for probe in probes:
        expected = next((i for i, t in enumerate(times) if t >= probe), SIZE)
        assert grown.index_at_time(probe) == expected, probe


def test_entry_bundles(grown: Store) -> None:
    tokens = [new.token for new in ENTRIES]
    assert grown.entry_bundle(0, 256) == tokens[:256]
    assert grown.entry_bundle(1, 256) == tokens[256:512]
    assert grown.entry_bundle(2, SIZE - 512) == tokens[512:]
    assert grown.entry_bundle(0, 5) == tokens[:5]
    assert grown.entry_bundle(3, 1) == []


# The tree and the chain


def test_roots_and_nodes(grown: Store) -> None:
    for size in (0, 1, 2, 3, 64, 65, 255, 256, 257, 511, 512, 513, 599, 600):
        assert grown.root(size) == root_of(LEAVES[:size]), size
    with pytest.raises(LookupError):
        grown.root(SIZE + 1)
    reader = grown.node_reader(SIZE)
    for level, index in [(0, 0), (0, 599), (3, 17), (8, 0), (8, 1), (9, 0), (6, 8)]:
        assert reader(level, index) == TREE(level, index)
    with pytest.raises(LookupError):
        reader(8, 2)  # would need 768 leaves
    with pytest.raises(LookupError):
        grown.node_reader(300)(9, 0)  # inside the ledger, outside a tree of 300


def test_proofs_verify_and_match_the_reference(grown: Store) -> None:
    rng = random.Random(5)
    pairs = [(0, 1), (599, 600), (255, 256), (256, 257), (511, 600), (0, 600)]
    pairs += [(rng.randrange(size), size) for size in rng.sample(range(1, SIZE + 1), 25)]
    for index, size in pairs:
        proof = grown.inclusion_proof(index, size)
        assert proof == inclusion_proof(index, size, TREE)
        verify_inclusion(index, size, LEAVES[index], proof, root_of(LEAVES[:size]))
    sizes = [(1, 1), (1, 600), (256, 512), (255, 257), (512, 600), (600, 600)]
    sizes += [tuple(sorted(rng.sample(range(1, SIZE + 1), 2))) for _ in range(25)]
    for old, new in sizes:
        proof = grown.consistency_proof(old, new)
        assert proof == consistency_proof(old, new, TREE)
        verify_consistency(old, new, proof, root_of(LEAVES[:old]), root_of(LEAVES[:new]))


def test_tiles(grown: Store) -> None:
    assert grown.tile_hashes(0, 0, 256) == b"".join(LEAVES[:256])
    assert grown.tile_hashes(0, 2, SIZE - 512) == b"".join(LEAVES[512:])
    assert grown.tile_hashes(0, 1, 10) == b"".join(LEAVES[256:266])
    assert grown.tile_hashes(1, 0, 2) == TREE(8, 0) + TREE(8, 1)
    assert grown.tile_hashes(1, 0, 1) == TREE(8, 0)
    assert grown.tile_hashes(2, 0, 1) == b""


def test_chain_heads(grown: Store) -> None:
    assert grown.chain_head(0) == CHAIN_GENESIS
    for size in range(1, SIZE + 1):
        assert grown.chain_head(size) == CHAIN[size - 1]
    with pytest.raises(LookupError):
        grown.chain_head(SIZE + 1)


def test_archived_checkpoints(grown: Store) -> None:
    expected = [checkpoint(size, signed_at) for size, signed_at in CHECKPOINTS]
    assert grown.checkpoints() == expected
    assert grown.checkpoint_sizes() == [65, 268, 600]
    assert grown.checkpoint_sizes(after=65) == [268, 600]
    assert grown.checkpoint_sizes(after=64, limit=1) == [65]
    assert grown.checkpoint_sizes(after=600) == []
    assert grown.checkpoint_sizes(limit=0) == []
    assert grown.latest_checkpoint() == expected[-1]
    assert grown.checkpoint_at(268) == expected[1]
    assert grown.checkpoint_at(100) is None


def transcript(store: Store) -> list[Any]:
    """The answers of every Reader method to a fixed set of calls; errors by type."""
    calls: list[Callable[[], Any]] = [
        store.size,
        lambda: list(store.entries(17, 300)),
        lambda: [store.entry(i) for i in (0, 300, SIZE, -5)],
        lambda: [store.entry_by_serial(ENTRIES[i].serial) for i in (3, 9, 444)],
        lambda: store.entry_by_leaf_hash(LEAVES[333]),
        lambda: [store.entries_by_imprint(p, 4, s) for p in POPULAR for s in (0, 77, 599)],
        lambda: [store.index_at_time(t) for t in range(START_MS, START_MS + 200_000, 997)],
        lambda: [store.entry_bundle(i, 256) for i in (0, 1, 2)],
        lambda: [store.root(size) for size in range(0, SIZE + 2, 23)],
        lambda: [store.inclusion_proof(i, 600) for i in range(0, 600, 41)],
        lambda: [store.consistency_proof(o, 577) for o in range(1, 577, 53)],
        lambda: [store.tile_hashes(level, 0, 2) for level in (0, 1, 2)],
        lambda: [store.chain_head(s) for s in range(0, SIZE + 2, 31)],
        lambda: store.node_reader(600)(9, 0),
        lambda: store.node_reader(600)(9, 1),
        lambda: store.inclusion_proof(600, 600),
        lambda: store.consistency_proof(0, 5),
        store.checkpoints,
        lambda: [store.checkpoint_sizes(a, n) for a in (-1, 65, 268) for n in (-1, 1)],
        store.latest_checkpoint,
        lambda: [store.checkpoint_at(s) for s in (65, 66, 600)],
    ]
    answers: list[Any] = []
    for call in calls:
        try:
            answers.append(call())
        except Exception as exc:  # the same refusal on both sides
            answers.append(type(exc))
    return answers


def test_both_backends_agree(grown_stores: dict[str, Store]) -> None:
    sqlite, postgres = (transcript(grown_stores[backend]) for backend in BACKENDS)
    for position, (left, right) in enumerate(zip(sqlite, postgres, strict=True)):
        assert left == right, f"call {position} differs"


# Writing: fencing, indices, checkpoints


def batch(first: int, count: int, time_ms: int = START_MS) -> list[NewEntry]:
    return [
        NewEntry(b"\x30\x03tok%d" % i, time_ms + i, 10_000 + i, "sha256", bytes(32))
        for i in range(first, first + count)
    ]


def test_a_second_claim_deposes_the_first_writer(empty_store: Store) -> None:
    first = empty_store.claim_epoch()
    assert (first.next_index, first.chain_head) == (0, CHAIN_GENESIS)
    empty_store.append(first.epoch, 0, batch(0, 10))
    second = empty_store.claim_epoch()
    assert second.epoch > first.epoch
    assert second.next_index == 10
    assert second.last_gen_time_ms == START_MS + 9
    assert second.chain_head == empty_store.chain_head(10)
    with pytest.raises(LedgerWriteError, match="another writer"):
        empty_store.append(first.epoch, 10, batch(10, 5))
    assert empty_store.size() == 10
    empty_store.append(second.epoch, 10, batch(10, 5))
    assert empty_store.size() == 15
    leaves = [leaf_hash(new.token) for new in batch(0, 15)]
    assert empty_store.chain_head(15) == list(chain_values(leaves))[-1]
    assert empty_store.root(15) == root_of(leaves)


def test_wrong_first_index_is_refused(empty_store: Store) -> None:
    with pytest.raises(LedgerWriteError, match="before claim_epoch"):
        empty_store.append(1, 0, batch(0, 1))
    epoch = empty_store.claim_epoch().epoch
    with pytest.raises(LedgerWriteError):
        empty_store.append(epoch, 1, batch(1, 3))
    empty_store.append(epoch, 0, batch(0, 4))
    for wrong in (3, 5, 0):
        with pytest.raises(LedgerWriteError):
            empty_store.append(epoch, wrong, batch(wrong, 2))
    assert empty_store.size() == 4
    empty_store.append(epoch, 4, batch(4, 2))
    assert [e.index for e in empty_store.entries()] == list(range(6))
    leaves = [leaf_hash(new.token) for new in batch(0, 6)]
    assert [e.chain_hash for e in empty_store.entries()] == list(chain_values(leaves))


def test_gen_time_may_not_go_back(empty_store: Store) -> None:
    epoch = empty_store.claim_epoch().epoch
    empty_store.append(epoch, 0, batch(0, 3, START_MS + 100))
    with pytest.raises(LedgerWriteError):
        empty_store.append(epoch, 3, batch(3, 1, START_MS))
    assert empty_store.size() == 3


def test_checkpoints_only_advance(empty_store: Store) -> None:
    epoch = empty_store.claim_epoch().epoch
    empty_store.append(epoch, 0, batch(0, 40))
    assert empty_store.latest_checkpoint() is None
    assert empty_store.checkpoints() == []
    empty_store.add_checkpoint(SignedCheckpoint(10, b"r" * 32, b"c" * 32, "n10", 1))
    empty_store.add_checkpoint(SignedCheckpoint(20, b"s" * 32, b"d" * 32, "n20"))
    for stale in (20, 15, 0):
        with pytest.raises(LedgerWriteError):
            empty_store.add_checkpoint(SignedCheckpoint(stale, b"x" * 32, b"y" * 32, "no"))
    empty_store.add_checkpoint(SignedCheckpoint(30, b"t" * 32, b"e" * 32, "n30", 3))
    assert empty_store.checkpoint_sizes() == [10, 20, 30]
    assert empty_store.checkpoint_sizes(10, 1) == [20]
    latest = empty_store.latest_checkpoint()
    assert latest == SignedCheckpoint(30, b"t" * 32, b"e" * 32, "n30", 3)
    assert empty_store.checkpoint_at(20) == SignedCheckpoint(20, b"s" * 32, b"d" * 32, "n20")

"""ledger.merkle: B.1 roots, compact ranges and node readers against the RFC reference."""

from __future__ import annotations

import hashlib

import pytest

from ledger.hashing import EMPTY_ROOT, leaf_hash
from ledger.merkle import (
    CompactRange,
    MemoryTree,
    perfect_nodes,
    root_from_reader,
    root_of,
    subtree_hash,
)
from tests.ledger.reference import ReferenceTree

# transparency-dev/merkle testonly/constants.go (commit 582a6ad1): LeafInputs(), RootHashes().
CT_LEAVES = [
    bytes.fromhex(h)
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657"]
    + ["606162636465666768696a6b6c6d6e6f"]
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# NodeHashes() [level][index], and CompactTrees(): the peaks of each size.
CT_NODES = {
    (1, 0): "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    (1, 2): "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    (2, 0): "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    (3, 0): "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
CT_COMPACT = {3: [(1, 0), (0, 2)], 5: [(2, 0), (0, 4)], 6: [(2, 0), (1, 2)], 8: [(3, 0)]}

MAX_SIZE = 300


@pytest.fixture(scope="module")
def reference() -> ReferenceTree:
    return ReferenceTree([hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(MAX_SIZE)])


def test_ct_reference_roots() -> None:
    leaves = [leaf_hash(e) for e in CT_LEAVES]
    tree = MemoryTree(leaves)
    compact = CompactRange()
    for size, want in enumerate(CT_ROOTS):
        assert root_of(leaves[:size]).hex() == want
        assert tree.root(size).hex() == want
        assert compact.root().hex() == want
        if size < len(leaves):
            compact.append(leaves[size])
    assert root_of(leaves[:3]).hex().startswith("aeb6bcfe")  # B.1 size 3
    assert root_of(leaves).hex().startswith("5dc9da79")  # B.1 size 8


def test_ct_node_hashes_and_compact_trees() -> None:
    tree = MemoryTree(leaf_hash(e) for e in CT_LEAVES)
    for (level, index), want in CT_NODES.items():
        assert tree(level, index).hex() == want
    for size, nodes in CT_COMPACT.items():
        compact = CompactRange.from_reader(size, tree)
        assert compact.peaks == tuple(tree(level, index) for level, index in nodes)


def test_empty_tree() -> None:
    assert root_of([]) == EMPTY_ROOT
    assert CompactRange().root() == EMPTY_ROOT
    assert root_from_reader(0, MemoryTree()) == EMPTY_ROOT


def test_every_size_agrees_with_reference(reference: ReferenceTree) -> None:
    leaves = [reference.leaf_hash(i) for i in range(MAX_SIZE)]
    tree = MemoryTree()
    compact = CompactRange()
    for size in range(MAX_SIZE + 1):
        want = reference.root(size)
        assert root_of(leaves[:size]) == want
        assert compact.root() == want
        assert root_from_reader(size, tree) == want
        assert CompactRange.from_bytes(compact.to_bytes()) == compact
        assert CompactRange.from_reader(size, tree) == compact
        if size < MAX_SIZE:
            compact.append(leaves[size])
            tree.append(leaves[size])


def test_subtree_hash_of_ragged_ranges(reference: ReferenceTree) -> None:
    tree = MemoryTree(reference.leaf_hash(i) for i in range(MAX_SIZE))
    for start, end in [(0, 7), (4, 7), (8, 13), (64, 100), (256, 300), (5, 6)]:
        assert subtree_hash(start, end, tree) == reference.mth(start, end)


@pytest.mark.parametrize(
    ("start", "end", "nodes"),
    [(0, 1, [(0, 0)]), (0, 7, [(2, 0), (1, 2), (0, 6)]), (8, 13, [(2, 2), (0, 12)])],
)
def test_perfect_nodes(start: int, end: int, nodes: list[tuple[int, int]]) -> None:
    assert perfect_nodes(start, end) == nodes


@pytest.mark.parametrize(("start", "end"), [(0, 0), (3, 2), (-1, 1), (2, 5), (4, 9)])
def test_perfect_nodes_rejects_non_subtrees(start: int, end: int) -> None:
    with pytest.raises(ValueError):
        perfect_nodes(start, end)


def test_compact_range_rejects_bad_state() -> None:
    good = CompactRange(3, [bytes(32), bytes(32)])
    assert CompactRange.from_bytes(good.to_bytes()) == good
    with pytest.raises(ValueError):
        CompactRange(3, [bytes(32)])
    with pytest.raises(ValueError):
        CompactRange(1, [bytes(31)])
    with pytest.raises(ValueError):
        CompactRange.from_bytes(good.to_bytes()[:-1])
    with pytest.raises(ValueError):
        CompactRange.from_bytes(b"\x00" * 7)
    with pytest.raises(ValueError):
        CompactRange().append(b"short")


def test_compact_range_copy_is_independent() -> None:
    compact = CompactRange()
    compact.extend(leaf_hash(e) for e in CT_LEAVES[:5])
    copy = compact.copy()
    copy.append(leaf_hash(CT_LEAVES[5]))
    assert compact.size == 5 and copy.size == 6
    assert copy.root().hex() == CT_ROOTS[6]


def test_memory_tree_refuses_incomplete_nodes() -> None:
    tree = MemoryTree(leaf_hash(e) for e in CT_LEAVES[:3])
    with pytest.raises(KeyError):
        tree(1, 1)
    with pytest.raises(KeyError):
        tree(2, 0)
    with pytest.raises(ValueError):
        tree.root(4)

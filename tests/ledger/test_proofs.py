"""ledger.proofs: B.2/B.3 worked vectors, the RFC reference, large random trees, and
negative vectors named after their mutation."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import ConsistencyProofError, InclusionProofError, ProofError, ProofRequestError
from ledger.hashing import leaf_hash, node_hash
from ledger.merkle import MemoryTree, root_from_reader, root_of
from ledger.proofs import (
    consistency_proof,
    consistency_proof_length,
    inclusion_proof,
    inclusion_proof_length,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from tests.ledger.reference import ReferenceTree

CT_LEAVES = [
    bytes.fromhex(h)
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657"]
    + ["606162636465666768696a6b6c6d6e6f"]
]
MAX_SIZE = 300


def b64(text: str) -> bytes:
    return base64.b64decode(text)


@pytest.fixture(scope="module")
def ct_tree() -> MemoryTree:
    return MemoryTree(leaf_hash(e) for e in CT_LEAVES)


# --- B.2 / B.3 worked vectors -------------------------------------------------------------


def test_b2_inclusion_index_5_of_8(ct_tree: MemoryTree) -> None:
    leaf = b64("QnGia+DYqE8L1UyMMC58s6O10fpngKQLzOKHNHfatlg=")
    path = [
        b64("vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms="),
        b64("yoVOoSjtBQtBs1/8G4e46yveRh6eO1WW7Oa51ZdaCuA="),
        b64("037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc="),
    ]
    assert leaf == ct_tree(0, 5)
    assert inclusion_proof(5, 8, ct_tree) == path
    verify_inclusion(5, 8, leaf, path, ct_tree.root())


def test_b3_consistency_3_to_8(ct_tree: MemoryTree) -> None:
    root3 = b64("rra8/idLcKFPsGel5VeCZNsPqbUa9eC6FZFY8yngbnc=")
    proof = [
        b64("ApjRIpBtz8EIkstTpzmS/FufST6kybrbJ7eRtBJ6f+c="),
        b64("B1Bqhf2d0vEg62lPhgEeW7RmLlxBWmKRcDPUqWJEh+c="),
        b64("+sVCA+fMaWzw38tCySodnbr3CtnmIfS9jZhmLwDjwSU="),
        b64("a0eq8p7jwq+a+Im8H7klTavTEXfxYjLdaqsDXKOb9uQ="),
    ]
    assert root3 == ct_tree.root(3)
    assert consistency_proof(3, 8, ct_tree) == proof
    verify_consistency(3, 8, proof, root3, ct_tree.root())


# --- agreement with the recursive RFC 6962 reference ---------------------------------------


def test_every_proof_up_to_300_matches_reference() -> None:
    reference = ReferenceTree([i.to_bytes(2, "big") for i in range(MAX_SIZE)])
    tree = MemoryTree(reference.leaf_hash(i) for i in range(MAX_SIZE))
    for size in range(1, MAX_SIZE + 1):
        root = reference.root(size)
        for index in range(size):
            path = inclusion_proof(index, size, tree)
            assert path == reference.path(index, size), (index, size)
            assert len(path) == inclusion_proof_length(index, size)
            verify_inclusion(index, size, tree(0, index), path, root)
        for old in range(1, size + 1):
            proof = consistency_proof(old, size, tree)
            assert proof == reference.proof(old, size), (old, size)
            verify_consistency(old, size, proof, reference.root(old), root)


# --- large trees through a synthetic node reader -------------------------------------------

# Leaf i is SHA-256("leaf" || u64(i % 1024)), except that the first leaf of every block of
# 1024 hashes its full index. Blocks then share all nodes that do not contain their first
# leaf, so any node of a tree of millions of leaves costs O(log n) fresh hashes, while no
# two siblings are ever equal (a swapped index or order still changes the root).
BLOCK_BITS = 10
MAX_BIG = 1 << 22


def synthetic_leaf(index: int) -> bytes:
    offset = index % (1 << BLOCK_BITS)
    return hashlib.sha256(b"leaf" + (offset or index).to_bytes(8, "big")).digest()


@cache
def _synthetic(level: int, index: int) -> bytes:
    if level == 0:
        return synthetic_leaf(index)
    return node_hash(synthetic_node(level - 1, 2 * index), synthetic_node(level - 1, 2 * index + 1))


def synthetic_node(level: int, index: int) -> bytes:
    if level < BLOCK_BITS and (index << level) % (1 << BLOCK_BITS):
        index %= 1 << (BLOCK_BITS - level)  # the same node of block 0
    return _synthetic(level, index)


def test_synthetic_reader_is_a_real_tree() -> None:
    leaves = [synthetic_leaf(i) for i in range(3 * 1024 + 77)]
    for size in (1, 1023, 1024, 1025, 2048, 3 * 1024 + 77):
        assert root_from_reader(size, synthetic_node) == root_of(leaves[:size])


@st.composite
def index_and_size(draw: Callable) -> tuple[int, int]:
    size = draw(st.integers(1, MAX_BIG))
    return draw(st.integers(0, size - 1)), size


@st.composite
def two_sizes(draw: Callable) -> tuple[int, int]:
    size2 = draw(st.integers(1, MAX_BIG))
    return draw(st.integers(1, size2)), size2


@settings(max_examples=150, deadline=None)
@given(index_and_size(), st.data())
def test_random_inclusion_in_large_trees(case: tuple[int, int], data: st.DataObject) -> None:
    index, size = case
    root = root_from_reader(size, synthetic_node)
    leaf = synthetic_node(0, index)
    proof = inclusion_proof(index, size, synthetic_node)
    verify_inclusion(index, size, leaf, proof, root)
    if proof:
        k = data.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        bad[k] = bytes([bad[k][0] ^ 8]) + bad[k][1:]
        with pytest.raises(InclusionProofError) as err:
            verify_inclusion(index, size, leaf, bad, root)
        assert err.value.expected == root and err.value.computed not in (None, root)
    other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index)) if size > 1 else 0
    if other != index:
        with pytest.raises(InclusionProofError):
            verify_inclusion(other, size, leaf, proof, root)


@settings(max_examples=150, deadline=None)
@given(two_sizes(), st.data())
def test_random_consistency_in_large_trees(sizes: tuple[int, int], data: st.DataObject) -> None:
    size1, size2 = sizes
    root1 = root_from_reader(size1, synthetic_node)
    root2 = root_from_reader(size2, synthetic_node)
    proof = consistency_proof(size1, size2, synthetic_node)
    verify_consistency(size1, size2, proof, root1, root2)
    if proof:
        k = data.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        bad[k] = bytes([bad[k][0] ^ 16]) + bad[k][1:]
        with pytest.raises(ConsistencyProofError):
            verify_consistency(size1, size2, bad, root1, root2)
        with pytest.raises(ConsistencyProofError):
            verify_consistency(size1, size2, proof[:-1], root1, root2)
    if size1 < size2:
        # A wrong size is only certain to fail when it changes the proof's shape: with
        # the same shape, "root2 is the root of a tree of size2 + 1" can be true.
        wrong = next(n for n in range(size2 + 1, 1 << 64) if _cons_len(size1, n) != len(proof))
        with pytest.raises(ConsistencyProofError):
            verify_consistency(size1, wrong, proof, root1, root2)


def _cons_len(size1: int, size2: int) -> int:
    return consistency_proof_length(size1, size2) if size1 < size2 else 0


# --- negative vectors named after their mutation -------------------------------------------

SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def flip(proof: list[bytes], i: int, bit: int) -> list[bytes]:
    out = list(proof)
    out[i] = bytes([out[i][0] ^ (1 << bit)]) + out[i][1:]
    return out


def inclusion_mutations(index: int, size: int, tree: MemoryTree) -> dict[str, tuple]:
    """name -> (index, size, leaf, proof, root, is a root mismatch)."""
    leaf, proof, root = tree(0, index), inclusion_proof(index, size, tree), tree.root(size)
    wrong_index = index ^ 1 if index ^ 1 < size else index - 1
    # Only a size that changes the path's shape is certain to fail (see the large-tree test).
    wrong_size = next(
        n for n in range(size + 1, 1 << 64) if inclusion_proof_length(index, n) != len(proof)
    )
    cases = {
        "wrong-index": (wrong_index, size, leaf, proof, root, None),
        "index-out-of-range": (size, size, leaf, proof, root, False),
        "negative-index": (-1, size, leaf, proof, root, False),
        "wrong-size": (index, wrong_size, leaf, proof, root, False),
        "zero-size": (index, 0, leaf, proof, root, False),
        "wrong-leaf": (index, size, SOME_HASH, proof, root, True),
        "short-leaf-hash": (index, size, leaf[:31], proof, root, False),
        "wrong-root": (index, size, leaf, proof, SOME_HASH, True),
        "truncated-proof": (index, size, leaf, proof[:-1], root, False),
        "extra-hash": (index, size, leaf, [*proof, SOME_HASH], root, False),
        "preceding-hash": (index, size, leaf, [SOME_HASH, *proof], root, False),
        "short-proof-hash": (index, size, leaf, [proof[0][:31], *proof[1:]], root, False),
        "swapped-proof-hashes": (index, size, leaf, [proof[1], proof[0], *proof[2:]], root, True),
    }
    for i in range(len(proof)):
        cases[f"modified-proof[{i}]-bit-@3"] = (index, size, leaf, flip(proof, i, 3), root, True)
    return cases


INCLUSION_CASES = [(5, 8), (2, 7), (0, 11), (10, 11), (100, 257)]


def _inclusion_params() -> list:
    tree = MemoryTree(leaf_hash(i.to_bytes(2, "big")) for i in range(300))
    return [
        pytest.param(*args, id=f"{index}-of-{size}-{name}")
        for index, size in INCLUSION_CASES
        for name, args in inclusion_mutations(index, size, tree).items()
    ]


@pytest.mark.parametrize(
    ("index", "size", "leaf", "proof", "root", "mismatch"), _inclusion_params()
)
def test_inclusion_mutation_is_rejected(
    index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes, mismatch: bool | None
) -> None:
    with pytest.raises(InclusionProofError) as err:
        verify_inclusion(index, size, leaf, proof, root)
    if mismatch:
        assert err.value.expected == root and err.value.computed is not None
        assert root.hex() in str(err.value) and err.value.computed.hex() in str(err.value)
    elif mismatch is False:
        assert err.value.computed is None


def consistency_mutations(size1: int, size2: int, tree: MemoryTree) -> dict[str, tuple]:
    """name -> (size1, size2, proof, root1, root2)."""
    r1, r2, proof = tree.root(size1), tree.root(size2), consistency_proof(size1, size2, tree)
    wrong_new = next(n for n in range(size2 + 1, 1 << 64) if _cons_len(size1, n) != len(proof))
    cases = {
        "old-size-zero": (0, size2, proof, r1, r2),
        "old-size-larger": (size2 + 1, size2, proof, r1, r2),
        "wrong-old-size": (size1 + 1, size2, proof, r1, r2),
        "wrong-new-size": (size1, wrong_new, proof, r1, r2),
        "wrong-old-root": (size1, size2, proof, SOME_HASH, r2),
        "wrong-new-root": (size1, size2, proof, r1, SOME_HASH),
        "swapped-roots": (size1, size2, proof, r2, r1),
        "empty-proof": (size1, size2, [], r1, r2),
        "truncated-proof": (size1, size2, proof[:-1], r1, r2),
        "extra-hash": (size1, size2, [*proof, r2], r1, r2),
        "preceding-old-root": (size1, size2, [r1, *proof], r1, r2),
        "short-root": (size1, size2, proof, r1[:31], r2),
    }
    for i in range(len(proof)):
        cases[f"modified-proof[{i}]-bit-@4"] = (size1, size2, flip(proof, i, 4), r1, r2)
    return cases


CONSISTENCY_CASES = [(3, 8), (4, 8), (6, 7), (1, 2), (127, 300)]


def _consistency_params() -> list:
    tree = MemoryTree(leaf_hash(i.to_bytes(2, "big")) for i in range(300))
    return [
        pytest.param(*args, id=f"{size1}-to-{size2}-{name}")
        for size1, size2 in CONSISTENCY_CASES
        for name, args in consistency_mutations(size1, size2, tree).items()
    ]


@pytest.mark.parametrize(("size1", "size2", "proof", "root1", "root2"), _consistency_params())
def test_consistency_mutation_is_rejected(
    size1: int, size2: int, proof: list[bytes], root1: bytes, root2: bytes
) -> None:
    with pytest.raises(ConsistencyProofError):
        verify_consistency(size1, size2, proof, root1, root2)


def test_root_mismatch_errors_carry_both_roots(ct_tree: MemoryTree) -> None:
    proof = consistency_proof(3, 8, ct_tree)
    with pytest.raises(ConsistencyProofError) as err:
        verify_consistency(3, 8, proof, ct_tree.root(3), SOME_HASH)
    assert err.value.expected == SOME_HASH
    assert err.value.computed == ct_tree.root(8)
    assert "second root mismatch" in str(err.value) and ct_tree.root(8).hex() in str(err.value)
    assert isinstance(err.value, ProofError)


# --- B.3 step 0 edge cases and generation arguments ----------------------------------------


def test_b3_step0_edge_cases(ct_tree: MemoryTree) -> None:
    r3 = ct_tree.root(3)
    verify_consistency(3, 3, [], r3, r3)
    with pytest.raises(ConsistencyProofError, match="empty proof"):
        verify_consistency(3, 3, [r3], r3, r3)
    with pytest.raises(ConsistencyProofError) as err:
        verify_consistency(3, 3, [], r3, SOME_HASH)
    assert (err.value.expected, err.value.computed) == (r3, SOME_HASH)
    for first, second in [(0, 0), (0, 3), (4, 3)]:
        with pytest.raises(ConsistencyProofError):
            verify_consistency(first, second, [], r3, r3)


def test_single_leaf_tree(ct_tree: MemoryTree) -> None:
    leaf = ct_tree(0, 0)
    assert inclusion_proof(0, 1, ct_tree) == []
    assert root_from_inclusion_proof(0, 1, leaf, []) == leaf
    with pytest.raises(InclusionProofError):
        verify_inclusion(0, 1, leaf, [], b"")


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 1), (-1, 5), (5, 5)])
def test_inclusion_generation_rejects_bad_requests(index: int, size: int, ct_tree) -> None:
    with pytest.raises(ProofRequestError):
        inclusion_proof(index, size, ct_tree)


@pytest.mark.parametrize(("size1", "size2"), [(0, 5), (0, 0), (6, 5), (-1, 3)])
def test_consistency_generation_rejects_bad_requests(size1: int, size2: int, ct_tree) -> None:
    with pytest.raises(ProofRequestError):
        consistency_proof(size1, size2, ct_tree)
    assert issubclass(ProofRequestError, ValueError)


def test_expected_lengths() -> None:
    assert inclusion_proof_length(5, 8) == 3
    assert inclusion_proof_length(0, 1) == 0
    assert consistency_proof_length(3, 8) == 4
    assert consistency_proof_length(4, 8) == 1

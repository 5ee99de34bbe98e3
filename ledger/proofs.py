"""Inclusion and consistency proofs (docs/spec/ledger.md B.2 and B.3): generation and verification.

Generation follows RFC 6962 §2.1.1/§2.1.2 but is expressed as the list of subtree
ranges `[start, end)` each proof hash covers, so a store can fetch them in O(log n)
reads through a `NodeReader` (see ledger.merkle). Only the highest range of a proof can
be a ragged right edge; every other range is one perfect node.

Verification is RFC 9162 §2.1.3.2/§2.1.4.2 step by step, plus the checks B.2/B.3 add:
32-byte hashes, the exact expected proof length, and the edge cases of B.3 step 0.
Verifiers raise InclusionProofError/ConsistencyProofError and return None on success.
"""

from __future__ import annotations

from collections.abc import Sequence

from ledger.errors import ConsistencyProofError, InclusionProofError, ProofRequestError
from ledger.hashing import HASH_SIZE, node_hash
from ledger.merkle import NodeReader, subtree_hash

Range = tuple[int, int]


def _path_ranges(level: int, index: int, size: int) -> list[Range]:
    """Ranges of the audit path of perfect node (level, index) in a tree of `size` leaves."""
    last = (size - 1) >> level
    inner = (index ^ last).bit_length()
    ranges = []
    for i in range(inner):
        height = level + i
        start = ((index >> i) ^ 1) << height
        ranges.append((start, min(start + (1 << height), size)))
    # Above `inner` the path runs along the right border: only left siblings exist.
    rest, height = index >> inner, level + inner
    while rest:
        if rest & 1:
            start = (rest ^ 1) << height
            ranges.append((start, start + (1 << height)))
        rest, height = rest >> 1, height + 1
    return ranges


def inclusion_proof_ranges(index: int, size: int) -> list[Range]:
    """The subtrees whose hashes form PATH(index, D[size]), leaf sibling first."""
    if not 0 <= index < size:
        raise ProofRequestError(f"leaf index {index} is not in a tree of size {size}")
    return _path_ranges(0, index, size)


def consistency_proof_ranges(size1: int, size2: int) -> list[Range]:
    """The subtrees whose hashes form PROOF(size1, D[size2]), for 0 < size1 <= size2."""
    if not 0 < size1 <= size2:
        raise ProofRequestError(f"no consistency proof from size {size1} to size {size2}")
    if size1 == size2:
        return []
    # The last peak of the old tree; its audit path in the new tree proves both roots.
    level = (size1 & -size1).bit_length() - 1
    index = (size1 - 1) >> level
    ranges = _path_ranges(level, index, size2)
    if index:
        ranges.insert(0, (index << level, (index + 1) << level))
    return ranges


def inclusion_proof(index: int, size: int, reader: NodeReader) -> list[bytes]:
    """PATH(index, D[size]) (RFC 6962 §2.1.1) read through `reader`."""
    return [subtree_hash(s, e, reader) for s, e in inclusion_proof_ranges(index, size)]


def consistency_proof(size1: int, size2: int, reader: NodeReader) -> list[bytes]:
    """PROOF(size1, D[size2]) (RFC 6962 §2.1.2) read through `reader`."""
    return [subtree_hash(s, e, reader) for s, e in consistency_proof_ranges(size1, size2)]


def inclusion_proof_length(index: int, size: int) -> int:
    """The number of hashes in a valid inclusion proof (as transparency-dev/merkle)."""
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def consistency_proof_length(size1: int, size2: int) -> int:
    """The number of hashes in a valid consistency proof for 0 < size1 < size2."""
    level = (size1 & -size1).bit_length() - 1
    index = (size1 - 1) >> level
    inner = (index ^ ((size2 - 1) >> level)).bit_length()
    return (1 if index else 0) + inner + (index >> inner).bit_count()


def _check_hashes(hashes: Sequence[bytes], error: type[Exception], what: str) -> None:
    for i, value in enumerate(hashes):
        if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
            raise error(f"{what}[{i}] is not a {HASH_SIZE}-byte hash")


def _lsb_step(fn: int, sn: int) -> tuple[int, int]:
    """B.2/B.3: `repeat { fn >>= 1; sn >>= 1 } until LSB(fn) == 1 or fn == 0`."""
    while True:
        fn, sn = fn >> 1, sn >> 1
        if fn & 1 or fn == 0:
            return fn, sn


def root_from_inclusion_proof(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]
) -> bytes:
    """The root `proof` leads to from `leaf_hash` at `index` (B.2 steps 1-3)."""
    if not 0 <= index < size:
        raise InclusionProofError(f"leaf index {index} is not in a tree of size {size}")
    _check_hashes([leaf_hash], InclusionProofError, "leaf hash")
    _check_hashes(proof, InclusionProofError, "proof")
    want = inclusion_proof_length(index, size)
    if len(proof) != want:
        raise InclusionProofError(f"proof has {len(proof)} hashes, expected {want}")
    fn, sn, r = index, size - 1, bytes(leaf_hash)
    for p in proof:
        if sn == 0:
            raise InclusionProofError("proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                fn, sn = _lsb_step(fn, sn)
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise InclusionProofError("proof is shorter than the path to the root")
    return r


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that `leaf_hash` is leaf `index` of the tree of `size` with `root` (B.2)."""
    computed = root_from_inclusion_proof(index, size, leaf_hash, proof)
    if computed != root:
        raise InclusionProofError("root mismatch", expected=root, computed=computed)


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree (size2, root2) extends the tree (size1, root1) (B.3)."""
    if size1 <= 0 or size1 > size2:
        raise ConsistencyProofError(f"no consistency proof from size {size1} to size {size2}")
    _check_hashes([root1, root2], ConsistencyProofError, "root")
    _check_hashes(proof, ConsistencyProofError, "proof")
    if size1 == size2:
        if proof:
            raise ConsistencyProofError("equal sizes need an empty proof")
        if root1 != root2:
            raise ConsistencyProofError(
                "equal sizes, different roots", expected=root1, computed=root2
            )
        return
    if not proof:
        raise ConsistencyProofError("empty proof")
    want = consistency_proof_length(size1, size2)
    if len(proof) != want:
        raise ConsistencyProofError(f"proof has {len(proof)} hashes, expected {want}")
    first, second = _consistency_roots(size1, size2, proof, root1)
    if first != root1:
        raise ConsistencyProofError("first root mismatch", expected=root1, computed=first)
    if second != root2:
        raise ConsistencyProofError("second root mismatch", expected=root2, computed=second)


def _consistency_roots(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes
) -> tuple[bytes, bytes]:
    """B.3 steps 2-7 (after the length checks): the two roots the proof leads to."""
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ConsistencyProofError("proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                fn, sn = _lsb_step(fn, sn)
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ConsistencyProofError("proof is shorter than the path to the root")
    return fr, sr

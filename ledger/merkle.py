"""Fast RFC 6962 Merkle tree maths (docs/spec/ledger.md B.1) for stores, proofs and audits.

Three tools, all iterative:

* `root_of` computes MTH of a list of leaf hashes;
* `CompactRange` keeps the O(log n) state (one hash per set bit of the size) that
  lets a store or an auditor append leaves and read the root without the tree;
* `NodeReader` is the interface a store implements so proofs need O(log n) reads:
  the hash of the *perfect* subtree at (level, index), which covers the leaves
  `[index * 2**level, (index + 1) * 2**level)`. A tile store serves levels that are
  multiples of 8 straight from tiles; `subtree_hash` assembles any RFC 6962 subtree
  (a ragged right edge included) from such perfect nodes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Protocol

from ledger.hashing import EMPTY_ROOT, HASH_SIZE, node_hash

MAX_TREE_SIZE = (1 << 64) - 1


class NodeReader(Protocol):
    """Returns the hash of the perfect subtree at (level, index); level 0 is leaf hashes."""

    def __call__(self, level: int, index: int) -> bytes: ...


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of the leaves, level by level: an unpaired last node moves up unchanged.

    Promoting the odd node is what the RFC's "k = largest power of two < n" split
    amounts to, so no recursion is needed.
    """
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def perfect_nodes(start: int, end: int) -> list[tuple[int, int]]:
    """The perfect nodes (level, index), left to right, whose hashes make MTH(D[start:end]).

    The range must be a subtree of some RFC 6962 tree: non-empty, and `start` a multiple
    of the smallest power of two >= end - start. The node sizes are then the binary
    digits of `end - start`, largest first.
    """
    width = end - start
    if start < 0 or width <= 0:
        raise ValueError(f"empty or negative range [{start}, {end})")
    if start % (1 << (width - 1).bit_length()):
        raise ValueError(f"[{start}, {end}) is not a subtree of an RFC 6962 tree")
    nodes = []
    for level in range(width.bit_length() - 1, -1, -1):
        if width >> level & 1:
            nodes.append((level, start >> level))
            start += 1 << level
    return nodes


def fold_right(hashes: Sequence[bytes]) -> bytes:
    """Combine perfect-node hashes of descending sizes into their subtree's MTH."""
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def subtree_hash(start: int, end: int, reader: NodeReader) -> bytes:
    """MTH(D[start:end]) read from perfect nodes (one read when the range is perfect)."""
    return fold_right([reader(level, index) for level, index in perfect_nodes(start, end)])


def root_from_reader(size: int, reader: NodeReader) -> bytes:
    """The root of the tree of `size` leaves, from at most log2(size) + 1 node reads."""
    if size < 0:
        raise ValueError(f"negative tree size {size}")
    return EMPTY_ROOT if size == 0 else subtree_hash(0, size, reader)


class CompactRange:
    """O(log n) state of a growing tree: the peaks, one per set bit of the size.

    Peaks are the perfect subtrees `perfect_nodes(0, size)` from largest to smallest.
    """

    __slots__ = ("_size", "_peaks")

    def __init__(self, size: int = 0, peaks: Iterable[bytes] = ()) -> None:
        peaks = list(peaks)
        if not 0 <= size <= MAX_TREE_SIZE:
            raise ValueError(f"tree size {size} out of range")
        if len(peaks) != size.bit_count():
            raise ValueError(f"size {size} needs {size.bit_count()} peaks, got {len(peaks)}")
        if any(len(p) != HASH_SIZE for p in peaks):
            raise ValueError("every peak must be a 32-byte hash")
        self._size = size
        self._peaks = peaks

    @classmethod
    def from_reader(cls, size: int, reader: NodeReader) -> CompactRange:
        """Rebuild the state of a stored tree from log2(size) node reads."""
        return cls(size, [reader(level, index) for level, index in _peak_nodes(size)])

    @property
    def size(self) -> int:
        return self._size

    @property
    def peaks(self) -> tuple[bytes, ...]:
        return tuple(self._peaks)

    def copy(self) -> CompactRange:
        return CompactRange(self._size, self._peaks)

    def append(self, leaf_hash: bytes) -> None:
        """Add one leaf hash; merge equal-sized peaks like a binary counter carries."""
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError("a leaf hash must be 32 bytes")
        if self._size == MAX_TREE_SIZE:
            raise ValueError("tree is full")
        node = leaf_hash
        carries = (~self._size & (self._size + 1)).bit_length() - 1
        for _ in range(carries):
            node = node_hash(self._peaks.pop(), node)
        self._peaks.append(node)
        self._size += 1

    def append_subtree(self, level: int, node: bytes) -> None:
        """Add the 2**level leaves whose perfect subtree hashes to `node`, at a size that
        is a multiple of 2**level (what `append` of each leaf would leave)."""
        if len(node) != HASH_SIZE:
            raise ValueError("a node hash must be 32 bytes")
        if self._size % (1 << level) or self._size + (1 << level) > MAX_TREE_SIZE:
            raise ValueError(f"size {self._size} cannot take a subtree of level {level}")
        high = self._size >> level
        for _ in range((~high & (high + 1)).bit_length() - 1):
            node = node_hash(self._peaks.pop(), node)
        self._peaks.append(node)
        self._size += 1 << level

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        for leaf in leaf_hashes:
            self.append(leaf)

    def root(self) -> bytes:
        return fold_right(self._peaks) if self._peaks else EMPTY_ROOT

    def to_bytes(self) -> bytes:
        """u64be size || peaks (32 bytes each, largest first)."""
        return struct.pack(">Q", self._size) + b"".join(self._peaks)

    @classmethod
    def from_bytes(cls, data: bytes) -> CompactRange:
        if len(data) < 8:
            raise ValueError("compact range state is shorter than its size field")
        (size,) = struct.unpack(">Q", data[:8])
        body = data[8:]
        if len(body) != HASH_SIZE * size.bit_count():
            raise ValueError(f"compact range of size {size} must hold {size.bit_count()} peaks")
        return cls(size, [body[i : i + HASH_SIZE] for i in range(0, len(body), HASH_SIZE)])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self._size == other._size and self._peaks == other._peaks

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()})"


def _peak_nodes(size: int) -> list[tuple[int, int]]:
    return perfect_nodes(0, size) if size else []


class MemoryTree:
    """Every perfect node of a tree held in memory: a NodeReader for tests and small logs."""

    __slots__ = ("_levels",)

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        for leaf in leaf_hashes:
            self.append(leaf)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def append(self, leaf_hash: bytes) -> None:
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError("a leaf hash must be 32 bytes")
        self._levels[0].append(leaf_hash)
        level = 0
        while len(self._levels[level]) % 2 == 0:
            if level + 1 == len(self._levels):
                self._levels.append([])
            left, right = self._levels[level][-2:]
            self._levels[level + 1].append(node_hash(left, right))
            level += 1

    def __call__(self, level: int, index: int) -> bytes:
        if level < 0 or index < 0 or level >= len(self._levels):
            raise KeyError((level, index))
        nodes = self._levels[level]
        if index >= len(nodes):
            raise KeyError((level, index))
        return nodes[index]

    def root(self, size: int | None = None) -> bytes:
        """Root at `size` (default: all leaves); any earlier size works too."""
        size = self.size if size is None else size
        if size > self.size:
            raise ValueError(f"tree has {self.size} leaves, not {size}")
        return root_from_reader(size, self)

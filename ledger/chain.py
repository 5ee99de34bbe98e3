"""The B.8 hash chain over the same leaves as the tree: replay it and find divergence.

chain[-1] = 32 zero bytes; chain[i] = SHA-256(0x02 || chain[i-1] || leaf_hash[i]).
An auditor replays it in one linear pass with nothing but the entries and compares the
head with the published one; `first_mismatch` names the first index that disagrees.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import zip_longest

from ledger.errors import ChainError
from ledger.hashing import CHAIN_GENESIS, HASH_SIZE, chain_hash, leaf_hash


def chain_values(leaf_hashes: Iterable[bytes], previous: bytes = CHAIN_GENESIS) -> Iterator[bytes]:
    """chain[i] for each leaf hash in turn, starting after `previous` (default: genesis)."""
    if len(previous) != HASH_SIZE:
        raise ValueError("a chain value must be 32 bytes")
    for leaf in leaf_hashes:
        if len(leaf) != HASH_SIZE:
            raise ValueError("a leaf hash must be 32 bytes")
        previous = chain_hash(previous, leaf)
        yield previous


def chain_head(leaf_hashes: Iterable[bytes], previous: bytes = CHAIN_GENESIS) -> bytes:
    """The chain value after the last leaf (`previous` itself if there are none)."""
    head = previous
    for value in chain_values(leaf_hashes, previous):
        head = value
    return head


def chain_head_of_entries(entries: Iterable[bytes], previous: bytes = CHAIN_GENESIS) -> bytes:
    """The chain head over raw entries (token DER), hashing each as a leaf first."""
    return chain_head((leaf_hash(entry) for entry in entries), previous)


@dataclass(frozen=True)
class ChainMismatch:
    """The first disagreement; `expected` or `stored` is None where one side ran out."""

    index: int
    expected: bytes | None
    stored: bytes | None


def first_mismatch(
    leaf_hashes: Iterable[bytes],
    stored_chain: Iterable[bytes],
    *,
    previous: bytes = CHAIN_GENESIS,
    first_index: int = 0,
) -> ChainMismatch | None:
    """Replay the chain from `previous` and compare it with the stored values.

    `first_index` is the index of the first leaf given, so an incremental audit resuming
    at a checkpointed head reports absolute indices.
    """
    pairs = zip_longest(chain_values(leaf_hashes, previous), stored_chain)
    for offset, (expected, stored) in enumerate(pairs):
        if expected != stored:
            return ChainMismatch(first_index + offset, expected, stored)
    return None


def verify_chain(
    leaf_hashes: Iterable[bytes],
    stored_chain: Iterable[bytes],
    *,
    previous: bytes = CHAIN_GENESIS,
    first_index: int = 0,
) -> None:
    """Raise ChainError at the first stored value that disagrees with the replay."""
    mismatch = first_mismatch(leaf_hashes, stored_chain, previous=previous, first_index=first_index)
    if mismatch is not None:
        raise ChainError(mismatch.index, mismatch.expected, mismatch.stored)

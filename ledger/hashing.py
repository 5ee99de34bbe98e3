"""Domain-separated SHA-256 hashing of the ledger (docs/spec/ledger.md B.1 and B.8).

0x00 prefixes leaves, 0x01 interior nodes, 0x02 hash-chain links, so that no value of
one kind can be passed off as another.
"""

from __future__ import annotations

import hashlib

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
CHAIN_GENESIS = bytes(HASH_SIZE)

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
CHAIN_PREFIX = b"\x02"


def leaf_hash(entry: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 || d): the leaf hash of one entry (a token's DER)."""
    return hashlib.sha256(LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): an interior node of the Merkle tree."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def chain_hash(previous: bytes, leaf: bytes) -> bytes:
    """chain[i] = SHA-256(0x02 || chain[i-1] || leaf_hash[i]) (B.8)."""
    return hashlib.sha256(CHAIN_PREFIX + previous + leaf).digest()

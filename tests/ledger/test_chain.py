"""ledger.chain: the B.8 vector (tests/ledger/vectors/chain.json) and divergence reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ledger.chain import (
    ChainMismatch,
    chain_head,
    chain_head_of_entries,
    chain_values,
    first_mismatch,
    verify_chain,
)
from ledger.errors import ChainError
from ledger.hashing import CHAIN_GENESIS, leaf_hash

VECTOR = json.loads((Path(__file__).parent / "vectors" / "chain.json").read_text("utf-8"))
ENTRIES = [bytes.fromhex(v["entry"]) for v in VECTOR["values"]]
LEAVES = [bytes.fromhex(v["leaf_hash"]) for v in VECTOR["values"]]
CHAIN = [bytes.fromhex(v["chain"]) for v in VECTOR["values"]]


def test_b8_vector() -> None:
    assert bytes.fromhex(VECTOR["genesis"]) == CHAIN_GENESIS
    assert [leaf_hash(e) for e in ENTRIES] == LEAVES
    assert list(chain_values(LEAVES)) == CHAIN
    assert chain_head(LEAVES) == CHAIN[-1]
    assert chain_head_of_entries(ENTRIES) == CHAIN[-1]
    assert CHAIN[-1].hex().startswith("f9ee4dd8")


def test_resuming_from_a_checkpointed_head() -> None:
    assert list(chain_values(LEAVES[5:], CHAIN[4])) == CHAIN[5:]
    assert chain_head([], CHAIN[3]) == CHAIN[3]
    assert chain_head([]) == CHAIN_GENESIS


def test_matching_chain_has_no_mismatch() -> None:
    assert first_mismatch(LEAVES, CHAIN) is None
    verify_chain(LEAVES, CHAIN)
    verify_chain(LEAVES[6:], CHAIN[6:], previous=CHAIN[5], first_index=6)


def test_first_disagreeing_index_is_reported() -> None:
    stored = list(CHAIN)
    stored[5] = bytes(32)
    stored[6] = bytes(32)
    assert first_mismatch(LEAVES, stored) == ChainMismatch(5, CHAIN[5], bytes(32))
    with pytest.raises(ChainError) as err:
        verify_chain(LEAVES, stored)
    assert (err.value.index, err.value.expected, err.value.stored) == (5, CHAIN[5], bytes(32))
    assert CHAIN[5].hex() in str(err.value)


def test_a_changed_entry_shows_at_its_index() -> None:
    leaves = list(LEAVES)
    leaves[2] = leaf_hash(b"forged")
    assert first_mismatch(leaves, CHAIN).index == 2


def test_missing_or_extra_stored_values() -> None:
    assert first_mismatch(LEAVES, CHAIN[:6]) == ChainMismatch(6, CHAIN[6], None)
    extra = bytes(32)
    assert first_mismatch(LEAVES[:7], CHAIN[:7] + [extra]) == ChainMismatch(7, None, extra)
    mismatch = first_mismatch(LEAVES[4:], CHAIN[4:6], previous=CHAIN[3], first_index=4)
    assert mismatch == ChainMismatch(6, CHAIN[6], None)


def test_rejects_bad_hash_lengths() -> None:
    with pytest.raises(ValueError):
        list(chain_values([b"short"]))
    with pytest.raises(ValueError):
        chain_head(LEAVES, previous=b"")

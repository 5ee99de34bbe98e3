"""The transparency-dev/merkle inclusion and consistency probes (tests/ledger/vectors).

Each upstream file is one test, named after its path (so after its mutation). A probe
with wantErr must raise the typed error of its kind and nothing else. A second test
re-runs the upstream generator over the reference tree and checks that the stored
probes are exactly what it yields, which guards the transcription (see README.md).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from ledger.errors import ConsistencyProofError, InclusionProofError
from ledger.proofs import verify_consistency, verify_inclusion
from tests.ledger.reference import ReferenceTree

VECTORS = Path(__file__).parent / "vectors"
CT_LEAVES = [
    bytes.fromhex(h)
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657"]
    + ["606162636465666768696a6b6c6d6e6f"]
]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
EMPTY_HASH = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
# The five proofs of each kind, by folder number (upstream proof/verify_test.go).
INCLUSION_FOLDERS = [(0, 1), (0, 8), (5, 8), (2, 3), (1, 5)]
CONSISTENCY_FOLDERS = [(1, 1), (1, 8), (6, 8), (2, 5), (6, 7)]


def load(kind: str) -> list[dict]:
    return json.loads((VECTORS / f"{kind}.json").read_text(encoding="utf-8"))["vectors"]


def hashes(values: list[str] | None) -> list[bytes]:
    return [base64.b64decode(v) for v in values or []]


def test_vector_counts() -> None:
    assert len(load("inclusion")) == 82
    assert len(load("consistency")) == 84


@pytest.mark.parametrize("v", load("inclusion"), ids=lambda v: v["file"].split("/", 2)[2])
def test_inclusion_probe(v: dict) -> None:
    args = (v["leafIdx"], v["treeSize"], base64.b64decode(v["leafHash"]))
    proof, root = hashes(v["proof"]), base64.b64decode(v["root"])
    if v["wantErr"]:
        with pytest.raises(InclusionProofError):
            verify_inclusion(*args, proof, root)
    else:
        verify_inclusion(*args, proof, root)


@pytest.mark.parametrize("v", load("consistency"), ids=lambda v: v["file"].split("/", 2)[2])
def test_consistency_probe(v: dict) -> None:
    args = (v["size1"], v["size2"], hashes(v["proof"]))
    roots = (base64.b64decode(v["root1"]), base64.b64decode(v["root2"]))
    if v["wantErr"]:
        with pytest.raises(ConsistencyProofError):
            verify_consistency(*args, *roots)
    else:
        verify_consistency(*args, *roots)


def _inclusion_probes(tree: ReferenceTree, index: int, size: int) -> dict[str, tuple]:
    """corruptInclusionProof of proof/verify_test.go, keyed by the upstream desc."""
    root, leaf, proof = tree.root(size), tree.leaf_hash(index), tree.path(index, size)
    probes = {
        "happy path": (index, size, root, leaf, proof),
        "leafIdx - 1": ((index - 1) % (1 << 64), size, root, leaf, proof),
        "leafIdx + 1": (index + 1, size, root, leaf, proof),
        "leafIdx ^ 2": (index ^ 2, size, root, leaf, proof),
        "treeSize * 2": (index, size * 2, root, leaf, proof),
        "treeSize div 2": (index, size // 2, root, leaf, proof),
        "wrong leaf": (index, size, root, b"WrongLeaf", proof),
        "empty root": (index, size, EMPTY_HASH, leaf, proof),
        "random root": (index, size, SOME_HASH, leaf, proof),
        "trailing garbage": (index, size, root, leaf, [*proof, b""]),
        "trailing root": (index, size, root, leaf, [*proof, root]),
        "preceding garbage": (index, size, root, leaf, [b"", *proof]),
        "preceding root": (index, size, root, leaf, [root, *proof]),
    }
    for i in range(len(proof)):
        bad = [*proof[:i], bytes([proof[i][0] ^ 8]) + proof[i][1:], *proof[i + 1 :]]
        probes[f"modified proof[{i}] bit 3"] = (index, size, root, leaf, bad)
    if proof:
        probes["removed component"] = (index, size, root, leaf, proof[:-1])
    if len(proof) > 1:
        probes["inserted component"] = (index, size, root, leaf, [proof[0], SOME_HASH, *proof[1:]])
    return probes


def _consistency_probes(tree: ReferenceTree, size1: int, size2: int) -> dict[str, tuple]:
    """corruptConsistencyProof of proof/verify_test.go, keyed by the upstream desc."""
    r1, r2, proof = tree.root(size1), tree.root(size2), tree.proof(size1, size2)
    probes = {"happy path": (size1, size2, r1, r2, proof)}
    if not proof:
        return probes
    probes |= {
        "size1 - 1": (size1 - 1, size2, r1, r2, proof),
        "size1 + 1": (size1 + 1, size2, r1, r2, proof),
        "size1 ^ 2": (size1 ^ 2, size2, r1, r2, proof),
        "size2 * 2": (size1, size2 * 2, r1, r2, proof),
        "size2 div 2": (size1, size2 // 2, r1, r2, proof),
        "wrong root1": (size1, size2, b"WrongRoot", r2, proof),
        "wrong root2": (size1, size2, r1, b"WrongRoot", proof),
        "swapped roots": (size1, size2, r2, r1, proof),
        "empty proof": (size1, size2, r1, r2, []),
        "trailing garbage": (size1, size2, r1, r2, [*proof, b""]),
        "trailing root1": (size1, size2, r1, r2, [*proof, r1]),
        "trailing root2": (size1, size2, r1, r2, [*proof, r2]),
        "preceding garbage": (size1, size2, r1, r2, [b"", *proof]),
        "preceding root1": (size1, size2, r1, r2, [r1, *proof]),
        "preceding root2": (size1, size2, r1, r2, [r2, *proof]),
        "preceding proof[0]": (size1, size2, r1, r2, [proof[0], *proof]),
        "truncated proof": (size1, size2, r1, r2, proof[:-1]),
    }
    for i in range(len(proof)):
        bad = [*proof[:i], bytes([proof[i][0] ^ 16]) + proof[i][1:], *proof[i + 1 :]]
        probes[f"modified proof[{i}] bit 4"] = (size1, size2, r1, r2, bad)
    return probes


def test_stored_probes_are_what_the_upstream_generator_yields() -> None:
    tree = ReferenceTree(CT_LEAVES)
    for kind, folders, generate, fields in [
        ("inclusion", INCLUSION_FOLDERS, _inclusion_probes, "leafIdx treeSize root leafHash"),
        ("consistency", CONSISTENCY_FOLDERS, _consistency_probes, "size1 size2 root1 root2"),
    ]:
        stored = load(kind)
        expected = {
            (n, desc): probe
            for n, case in enumerate(folders)
            for desc, probe in generate(tree, *case).items()
        }
        assert len(stored) == len(expected)
        for v in stored:
            folder = int(v["file"].split("/")[2])
            want = expected[(folder, v["desc"])]
            got = [v[f] for f in fields.split()]
            got = [x if isinstance(x, int) else base64.b64decode(x) for x in got]
            assert got == list(want[:4]), v["file"]
            assert hashes(v["proof"]) == want[4], v["file"]
            assert v["wantErr"] == (v["desc"] != "happy path"), v["file"]

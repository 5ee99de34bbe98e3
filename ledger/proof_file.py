"""The offline proof file of C2SP tlog-proof@v1 (docs/spec/ledger.md B.7): a leaf index, its
inclusion path and the signed checkpoint it leads to, next to the token it proves.

    c2sp.org/tlog-proof@v1
    [extra <base64 opaque>]
    index <leaf index>
    <base64 path hash 1>
    ...
    <blank line>
    <checkpoint text + log signature + witness cosignatures>
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass

from ledger.checkpoint import Checkpoint, NoteVerifier, open_checkpoint
from ledger.errors import CheckpointError
from ledger.hashing import leaf_hash
from ledger.proofs import verify_inclusion

HEADER = "c2sp.org/tlog-proof@v1"


@dataclass(frozen=True)
class ProofFile:
    index: int
    path: tuple[bytes, ...]
    checkpoint: str  # the signed note, verbatim
    extra: bytes | None = None

    def encode(self) -> str:
        lines = [HEADER]
        if self.extra is not None:
            lines.append("extra " + base64.b64encode(self.extra).decode())
        lines.append(f"index {self.index}")
        lines += [base64.b64encode(h).decode() for h in self.path]
        return "\n".join(lines) + "\n\n" + self.checkpoint

    @classmethod
    def parse(cls, text: str) -> ProofFile:
        head, sep, note = text.partition("\n\n")
        lines = head.split("\n")
        if not sep or not lines or lines[0] != HEADER:
            raise CheckpointError("not a c2sp.org/tlog-proof@v1 file")
        rest, extra = lines[1:], None
        if rest and rest[0].startswith("extra "):
            extra = _b64(rest.pop(0)[6:])
        if not rest or not rest[0].startswith("index "):
            raise CheckpointError("tlog-proof: missing index line")
        index_text = rest.pop(0)[6:]
        if not index_text.isdigit() or (index_text != "0" and index_text[0] == "0"):
            raise CheckpointError("tlog-proof: bad index")
        path = tuple(_b64(line) for line in rest)
        if any(len(h) != 32 for h in path):
            raise CheckpointError("tlog-proof: path hashes must be 32 bytes")
        return cls(int(index_text), path, note, extra)

    def verify(
        self,
        entry: bytes,
        log: NoteVerifier,
        witnesses: Iterable[NoteVerifier] = (),
        origin: str | None = None,
    ) -> Checkpoint:
        """B.7 order: leaf hash, checkpoint signature (and witnesses), then inclusion.
        Returns the verified checkpoint; raises on any failure."""
        leaf = leaf_hash(entry)
        checkpoint, _ = open_checkpoint(self.checkpoint, log, witnesses, origin=origin)
        verify_inclusion(self.index, checkpoint.size, leaf, list(self.path), checkpoint.root)
        return checkpoint


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise CheckpointError("tlog-proof: bad base64") from None

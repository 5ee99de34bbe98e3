"""Checkpoints (docs/spec/ledger.md B.4): the C2SP tlog-checkpoint body, signed and opened
as a signed note.

Checkpoints carry no extension lines: we never emit them (B.4) and reject them on
parsing. The note format is in `note.py` and the Ed25519 keys in `note_keys.py`; their
names are re-exported here, where the rest of the code has always found them.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ledger.errors import CheckpointError, NoteError
from ledger.hashing import HASH_SIZE
from ledger.note import (
    GREASE_NAME,
    MAX_SIGNATURES,
    SIGNATURE_PREFIX,
    Note,
    NoteSignature,
    NoteVerifier,
    SignsNotes,
    VerifiedNote,
    check_name,
    check_text,
    decode_b64,
    decode_utf8,
    encode_b64,
    grease_signatures,
    key_id,
    open_note,
    parse_note,
    sign_note,
)
from ledger.note_keys import (
    MAX_TIMESTAMP,
    SIG_COSIGNATURE_V1,
    SIG_ED25519,
    CosignatureSigner,
    CosignatureVerifier,
    Ed25519Verifier,
    NoteSigner,
    VerifierKey,
    cosignature_message,
    cosignature_timestamp,
    encode_vkey,
    parse_vkey,
)

__all__ = [
    "GREASE_NAME",
    "MAX_SIGNATURES",
    "MAX_TIMESTAMP",
    "SIGNATURE_PREFIX",
    "SIG_COSIGNATURE_V1",
    "SIG_ED25519",
    "Checkpoint",
    "CosignatureSigner",
    "CosignatureVerifier",
    "Ed25519Verifier",
    "Note",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "SignsNotes",
    "VerifiedNote",
    "VerifierKey",
    "cosignature_message",
    "cosignature_timestamp",
    "encode_vkey",
    "grease_signatures",
    "key_id",
    "open_checkpoint",
    "open_note",
    "parse_note",
    "parse_vkey",
    "sign_checkpoint",
    "sign_note",
]

_SIZE_RE = re.compile(r"0|[1-9][0-9]{0,19}", re.ASCII)


@dataclass(frozen=True)
class Checkpoint:
    """The three lines of a tlog-checkpoint body: origin, tree size, root hash."""

    origin: str
    size: int
    root: bytes

    def __post_init__(self) -> None:
        check_name(self.origin, CheckpointError, "origin")
        if isinstance(self.size, bool) or not 0 <= self.size < 1 << 64:
            raise CheckpointError(f"tree size {self.size!r} out of range")
        if not isinstance(self.root, bytes) or len(self.root) != HASH_SIZE:
            raise CheckpointError("root must be a 32-byte hash")

    def body(self) -> bytes:
        """The signed text, final newline included."""
        return f"{self.origin}\n{self.size}\n{encode_b64(self.root)}\n".encode()

    @classmethod
    def parse(cls, body: bytes | str) -> Checkpoint:
        text = decode_utf8(body, CheckpointError)
        check_text(text, CheckpointError)
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise CheckpointError("a checkpoint is three lines, each ending in a newline")
        if len(lines) > 4:
            raise CheckpointError("extension lines are not accepted")
        origin, size, root = lines[:3]
        if not _SIZE_RE.fullmatch(size):
            raise CheckpointError(f"tree size {size!r} is not a decimal without leading zeros")
        raw = decode_b64(root, CheckpointError, "root hash")
        return cls(origin, int(size), raw)


def sign_checkpoint(
    checkpoint: Checkpoint,
    signers: Iterable[SignsNotes],
    *,
    existing: Sequence[NoteSignature] = (),
    grease: int = 0,
    rng: random.Random | None = None,
) -> bytes:
    """A signed checkpoint note (see sign_note for the options)."""
    return sign_note(checkpoint.body(), signers, existing=existing, grease=grease, rng=rng)


def open_checkpoint(
    data: bytes | str,
    log: NoteVerifier,
    witnesses: Iterable[NoteVerifier] = (),
    *,
    origin: str | None = None,
) -> tuple[Checkpoint, VerifiedNote]:
    """Verify the log's signature (required), any known witnesses (optional), and that
    the origin line is `origin` (default: the log key's name)."""
    opened = open_note(data, [log, *witnesses])
    if not any((s.name, s.key_id) == (log.name, bytes(log.key_id)) for s in opened.verified):
        raise NoteError(f"checkpoint is not signed by the log key {log.name}")
    checkpoint = Checkpoint.parse(opened.note.text)
    expected = log.name if origin is None else origin
    if checkpoint.origin != expected:
        raise CheckpointError(f"origin {checkpoint.origin!r} is not {expected!r}")
    return checkpoint, opened

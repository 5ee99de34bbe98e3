"""C2SP signed notes (docs/spec/ledger.md B.4): the note format, its signature lines, and
signing and opening a note with any key types (`NoteVerifier`, `SignsNotes`).

Opening a note verifies the lines of known keys, ignores unknown ones (grease
included), and raises NoteError if no known signature verifies or one fails. The
Ed25519 key types are in `note_keys.py`; the checkpoint body in `checkpoint.py`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ledger.errors import NoteError

SIGNATURE_PREFIX = "\u2014 "  # EM DASH, SPACE
MAX_SIGNATURES = 64
GREASE_NAME = "grease.invalid"


def encode_b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def decode_b64(text: str, error: type[Exception], what: str) -> bytes:
    """Strict, canonical, padded base64 (RFC 4648 §4)."""
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise error(f"{what} is not valid base64") from None
    if encode_b64(data) != text:
        raise error(f"{what} is not canonical base64")
    return data


def check_text(text: str, error: type[Exception]) -> None:
    if any(ch < " " and ch != "\n" for ch in text):
        raise error("text contains a control character other than newline")


def check_name(name: str, error: type[Exception], what: str = "key name") -> None:
    if not name or "+" in name or any(ch.isspace() or ch < " " for ch in name):
        raise error(f"{what} {name!r} must be non-empty, without spaces or '+'")


def decode_utf8(data: bytes | str, error: type[Exception]) -> str:
    if isinstance(data, str):
        return data
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise error("not valid UTF-8") from None


def key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    """SHA-256(name || 0x0A || type || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public_key).digest()[:4]


@dataclass(frozen=True)
class NoteSignature:
    """One `— <name> base64(key ID || signature)` line."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        return f"{SIGNATURE_PREFIX}{self.name} {encode_b64(self.key_id + self.signature)}\n"


@dataclass(frozen=True)
class Note:
    """A signed note: text (final newline included) and its signature lines, in order."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def encode(self) -> bytes:
        return (self.text + "\n" + "".join(s.line() for s in self.signatures)).encode()


def parse_note(data: bytes | str) -> Note:
    """Split a note at its last blank line and parse every signature line strictly."""
    text = decode_utf8(data, NoteError)
    check_text(text, NoteError)
    split = text.rfind("\n\n")
    if split < 0 or not text.endswith("\n"):
        raise NoteError("a note is text, a blank line, and signature lines")
    body, lines = text[: split + 1], text[split + 2 : -1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"more than {MAX_SIGNATURES} signatures")
    signatures = []
    for line in lines:
        if not line.startswith(SIGNATURE_PREFIX) or line.count(" ") != 2:
            raise NoteError(f"malformed signature line {line!r}")
        name, blob = line[len(SIGNATURE_PREFIX) :].split(" ")
        check_name(name, NoteError)
        raw = decode_b64(blob, NoteError, "signature")
        if len(raw) < 5:
            raise NoteError(f"signature of {name!r} is too short")
        signatures.append(NoteSignature(name, raw[:4], raw[4:]))
    return Note(body, tuple(signatures))


class NoteVerifier(Protocol):
    """Verifies the signature lines of one key (name, key ID)."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> bytes: ...

    def verify(self, text: bytes, signature: bytes) -> bool: ...


class SignsNotes(Protocol):
    def signature_for(self, text: bytes) -> NoteSignature: ...


def grease_signatures(count: int, rng: random.Random) -> list[NoteSignature]:
    """Signature lines of keys nobody knows, so verifiers exercise "ignore unknown keys"."""
    return [NoteSignature(GREASE_NAME, rng.randbytes(4), rng.randbytes(64)) for _ in range(count)]


def sign_note(
    text: bytes | str,
    signers: Iterable[SignsNotes],
    *,
    existing: Sequence[NoteSignature] = (),
    grease: int = 0,
    rng: random.Random | None = None,
) -> bytes:
    """Sign `text` with every signer; with `grease`, add that many unknown lines and
    shuffle all lines (Sunlight style). `existing` lines (e.g. cosignatures) are kept."""
    body = decode_utf8(text, NoteError)
    check_text(body, NoteError)
    if not body.endswith("\n"):
        raise NoteError("note text must end with a newline")
    raw = body.encode()
    lines = list(existing) + [s.signature_for(raw) for s in signers]
    if grease:
        rng = rng or random.SystemRandom()
        lines += grease_signatures(grease, rng)
        rng.shuffle(lines)
    if not lines or len(lines) > MAX_SIGNATURES:
        raise NoteError(f"a note needs 1 to {MAX_SIGNATURES} signatures")
    return Note(body, tuple(lines)).encode()


@dataclass(frozen=True)
class VerifiedNote:
    """A note whose `verified` lines passed a known verifier; the rest were ignored."""

    note: Note
    verified: tuple[NoteSignature, ...]

    @property
    def verified_names(self) -> frozenset[str]:
        return frozenset(s.name for s in self.verified)


def open_note(data: bytes | str, verifiers: Iterable[NoteVerifier]) -> VerifiedNote:
    """Parse and verify a note: every line of a known key must verify, at least one must."""
    note = parse_note(data)
    known: dict[tuple[str, bytes], NoteVerifier] = {}
    for verifier in verifiers:
        key = (verifier.name, bytes(verifier.key_id))
        if key in known:
            raise NoteError(f"two verifiers for key {key[0]}+{key[1].hex()}")
        known[key] = verifier
    text, verified, seen = note.text.encode(), [], set()
    for signature in note.signatures:
        key = (signature.name, signature.key_id)
        signer = known.get(key)
        if signer is None:
            continue
        if key in seen:
            raise NoteError(f"key {key[0]}+{key[1].hex()} signed twice")
        if not signer.verify(text, signature.signature):
            raise NoteError(f"invalid signature by {key[0]}+{key[1].hex()}")
        seen.add(key)
        verified.append(signature)
    if not verified:
        raise NoteError("no signature by a known key")
    return VerifiedNote(note, tuple(verified))

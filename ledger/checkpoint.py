"""Checkpoints and signed notes (docs/spec/ledger.md B.4): C2SP tlog-checkpoint, signed-note, vkeys
and Ed25519 witness cosignatures (tlog-cosignature, type 0x04).

Signing goes through a plain `sign(message) -> signature` callable, so the private key
can stay in a PKCS#11 token. Opening a note verifies the lines of known keys, ignores
unknown ones (grease included), and raises NoteError if no known signature verifies or
one fails. Checkpoints carry no extension lines: we never emit them (B.4) and reject
them on parsing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import random
import re
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.errors import CheckpointError, NoteError
from ledger.hashing import HASH_SIZE

SIG_ED25519 = 0x01
SIG_COSIGNATURE_V1 = 0x04
SIGNATURE_PREFIX = "\u2014 "  # EM DASH, SPACE
MAX_SIGNATURES = 64
MAX_TIMESTAMP = (1 << 63) - 1
GREASE_NAME = "grease.invalid"
_SIZE_RE = re.compile(r"0|[1-9][0-9]{0,19}", re.ASCII)


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: str, error: type[Exception], what: str) -> bytes:
    """Strict, canonical, padded base64 (RFC 4648 §4)."""
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise error(f"{what} is not valid base64") from None
    if _b64encode(data) != text:
        raise error(f"{what} is not canonical base64")
    return data


def _check_text(text: str, error: type[Exception]) -> None:
    if any(ch < " " and ch != "\n" for ch in text):
        raise error("text contains a control character other than newline")


def _check_name(name: str, error: type[Exception], what: str = "key name") -> None:
    if not name or "+" in name or any(ch.isspace() or ch < " " for ch in name):
        raise error(f"{what} {name!r} must be non-empty, without spaces or '+'")


def key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    """SHA-256(name || 0x0A || type || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public_key).digest()[:4]


@dataclass(frozen=True)
class Checkpoint:
    """The three lines of a tlog-checkpoint body: origin, tree size, root hash."""

    origin: str
    size: int
    root: bytes

    def __post_init__(self) -> None:
        _check_name(self.origin, CheckpointError, "origin")
        if isinstance(self.size, bool) or not 0 <= self.size < 1 << 64:
            raise CheckpointError(f"tree size {self.size!r} out of range")
        if not isinstance(self.root, bytes) or len(self.root) != HASH_SIZE:
            raise CheckpointError("root must be a 32-byte hash")

    def body(self) -> bytes:
        """The signed text, final newline included."""
        return f"{self.origin}\n{self.size}\n{_b64encode(self.root)}\n".encode()

    @classmethod
    def parse(cls, body: bytes | str) -> Checkpoint:
        text = _decode_utf8(body, CheckpointError)
        _check_text(text, CheckpointError)
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise CheckpointError("a checkpoint is three lines, each ending in a newline")
        if len(lines) > 4:
            raise CheckpointError("extension lines are not accepted")
        origin, size, root = lines[:3]
        if not _SIZE_RE.fullmatch(size):
            raise CheckpointError(f"tree size {size!r} is not a decimal without leading zeros")
        raw = _b64decode(root, CheckpointError, "root hash")
        return cls(origin, int(size), raw)


def _decode_utf8(data: bytes | str, error: type[Exception]) -> str:
    if isinstance(data, str):
        return data
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise error("not valid UTF-8") from None


@dataclass(frozen=True)
class NoteSignature:
    """One `— <name> base64(key ID || signature)` line."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        return f"{SIGNATURE_PREFIX}{self.name} {_b64encode(self.key_id + self.signature)}\n"


@dataclass(frozen=True)
class Note:
    """A signed note: text (final newline included) and its signature lines, in order."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def encode(self) -> bytes:
        return (self.text + "\n" + "".join(s.line() for s in self.signatures)).encode()


def parse_note(data: bytes | str) -> Note:
    """Split a note at its last blank line and parse every signature line strictly."""
    text = _decode_utf8(data, NoteError)
    _check_text(text, NoteError)
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
        _check_name(name, NoteError)
        raw = _b64decode(blob, NoteError, "signature")
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


def _ed25519_verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class _Ed25519Key:
    name: str
    public_key: bytes
    SIG_TYPE: ClassVar[int]

    def __post_init__(self) -> None:
        _check_name(self.name, NoteError)
        if not isinstance(self.public_key, bytes) or len(self.public_key) != 32:
            raise NoteError("an Ed25519 public key is 32 bytes")

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.SIG_TYPE, self.public_key)

    @property
    def vkey(self) -> str:
        return encode_vkey(self.name, self.SIG_TYPE, self.public_key)


@dataclass(frozen=True)
class Ed25519Verifier(_Ed25519Key):
    """Signature type 0x01: Ed25519 over the note text (the log's own signature)."""

    SIG_TYPE: ClassVar[int] = SIG_ED25519

    def verify(self, text: bytes, signature: bytes) -> bool:
        return len(signature) == 64 and _ed25519_verify(self.public_key, signature, text)


def cosignature_message(text: bytes, timestamp: int) -> bytes:
    """What a tlog-cosignature/v1 Ed25519 witness signs."""
    return b"cosignature/v1\ntime %d\n" % timestamp + text


def cosignature_timestamp(signature: bytes) -> int:
    """The witness's time (POSIX seconds) in a type 0x04 signature: u64be || ed25519."""
    if len(signature) != 72:
        raise NoteError("a cosignature is 8 bytes of time and 64 of Ed25519 signature")
    (timestamp,) = struct.unpack(">Q", signature[:8])
    return int(timestamp)


@dataclass(frozen=True)
class CosignatureVerifier(_Ed25519Key):
    """Signature type 0x04: a witness's timestamped Ed25519 cosignature."""

    SIG_TYPE: ClassVar[int] = SIG_COSIGNATURE_V1

    def verify(self, text: bytes, signature: bytes) -> bool:
        if len(signature) != 72:
            return False
        timestamp = cosignature_timestamp(signature)
        message = cosignature_message(text, timestamp)
        return timestamp <= MAX_TIMESTAMP and _ed25519_verify(
            self.public_key, signature[8:], message
        )


@dataclass(frozen=True)
class VerifierKey:
    """A parsed vkey: `<name>+<8 hex key ID>+base64(type || public key)`."""

    name: str
    sig_type: int
    public_key: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.sig_type, self.public_key)

    def encode(self) -> str:
        return encode_vkey(self.name, self.sig_type, self.public_key)

    def verifier(self) -> NoteVerifier:
        if self.sig_type == SIG_ED25519:
            return Ed25519Verifier(self.name, self.public_key)
        if self.sig_type == SIG_COSIGNATURE_V1:
            return CosignatureVerifier(self.name, self.public_key)
        raise NoteError(f"unsupported signature type 0x{self.sig_type:02x}")


def encode_vkey(name: str, sig_type: int, public_key: bytes) -> str:
    _check_name(name, NoteError)
    blob = _b64encode(bytes([sig_type]) + public_key)
    return f"{name}+{key_id(name, sig_type, public_key).hex()}+{blob}"


def parse_vkey(vkey: str) -> VerifierKey:
    parts = vkey.split("+", 2)  # the name has no "+", the base64 key may
    if len(parts) != 3 or not re.fullmatch(r"[0-9a-f]{8}", parts[1], re.ASCII):
        raise NoteError(f"malformed vkey {vkey!r}")
    name, hex_id, blob = parts
    _check_name(name, NoteError)
    raw = _b64decode(blob, NoteError, "vkey")
    if len(raw) < 2:
        raise NoteError("vkey holds no public key")
    key = VerifierKey(name, raw[0], raw[1:])
    if key.key_id.hex() != hex_id:
        raise NoteError(f"vkey key ID {hex_id} does not match its key")
    if key.sig_type in (SIG_ED25519, SIG_COSIGNATURE_V1) and len(key.public_key) != 32:
        raise NoteError("an Ed25519 public key is 32 bytes")
    return key


@dataclass(frozen=True)
class NoteSigner(_Ed25519Key):
    """Signs notes with type 0x01 through `sign`, e.g. a PKCS#11 EdDSA mechanism.

    Each signature is checked against `public_key` before use, so a token holding the
    wrong key fails here rather than in every verifier.
    """

    sign: Callable[[bytes], bytes]
    SIG_TYPE: ClassVar[int] = SIG_ED25519

    def signature_for(self, text: bytes) -> NoteSignature:
        signature = self.sign(text)
        if not Ed25519Verifier(self.name, self.public_key).verify(text, signature):
            raise NoteError(f"signer {self.name!r} produced an invalid signature")
        return NoteSignature(self.name, self.key_id, signature)


@dataclass(frozen=True)
class CosignatureSigner(_Ed25519Key):
    """A witness's type 0x04 cosigner; `clock` gives the POSIX time to sign."""

    sign: Callable[[bytes], bytes]
    clock: Callable[[], int]
    SIG_TYPE: ClassVar[int] = SIG_COSIGNATURE_V1

    def signature_for(self, text: bytes) -> NoteSignature:
        timestamp = int(self.clock())
        if not 0 <= timestamp <= MAX_TIMESTAMP:
            raise NoteError(f"cosignature time {timestamp} out of range")
        blob = struct.pack(">Q", timestamp) + self.sign(cosignature_message(text, timestamp))
        if not CosignatureVerifier(self.name, self.public_key).verify(text, blob):
            raise NoteError(f"cosigner {self.name!r} produced an invalid signature")
        return NoteSignature(self.name, self.key_id, blob)


class Signer(Protocol):
    def signature_for(self, text: bytes) -> NoteSignature: ...


def grease_signatures(count: int, rng: random.Random) -> list[NoteSignature]:
    """Signature lines of keys nobody knows, so verifiers exercise "ignore unknown keys"."""
    return [NoteSignature(GREASE_NAME, rng.randbytes(4), rng.randbytes(64)) for _ in range(count)]


def sign_note(
    text: bytes | str,
    signers: Iterable[Signer],
    *,
    existing: Sequence[NoteSignature] = (),
    grease: int = 0,
    rng: random.Random | None = None,
) -> bytes:
    """Sign `text` with every signer; with `grease`, add that many unknown lines and
    shuffle all lines (Sunlight style). `existing` lines (e.g. cosignatures) are kept."""
    body = _decode_utf8(text, NoteError)
    _check_text(body, NoteError)
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


def sign_checkpoint(
    checkpoint: Checkpoint,
    signers: Iterable[Signer],
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

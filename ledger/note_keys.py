"""Ed25519 keys of signed notes: the log's type 0x01 signatures and witnesses' type 0x04
cosignatures (C2SP tlog-cosignature), their verifiers and signers, and vkeys.

Signing goes through a plain `sign(message) -> signature` callable, so the private key
can stay in a PKCS#11 token.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.errors import NoteError
from ledger.note import NoteSignature, NoteVerifier, check_name, decode_b64, encode_b64, key_id

SIG_ED25519 = 0x01
SIG_COSIGNATURE_V1 = 0x04
MAX_TIMESTAMP = (1 << 63) - 1


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
        check_name(self.name, NoteError)
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
    check_name(name, NoteError)
    blob = encode_b64(bytes([sig_type]) + public_key)
    return f"{name}+{key_id(name, sig_type, public_key).hex()}+{blob}"


def parse_vkey(vkey: str) -> VerifierKey:
    parts = vkey.split("+", 2)  # the name has no "+", the base64 key may
    if len(parts) != 3 or not re.fullmatch(r"[0-9a-f]{8}", parts[1], re.ASCII):
        raise NoteError(f"malformed vkey {vkey!r}")
    name, hex_id, blob = parts
    check_name(name, NoteError)
    raw = decode_b64(blob, NoteError, "vkey")
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

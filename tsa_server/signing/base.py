"""The Signer interface and the algorithm tables every signer shares.

A signer holds one private key it never reveals and signs messages (the DER of CMS
signed attributes, a TBSCertificate, a CSR). The token builder asks it which
signature algorithm it will use for a given digest so the AlgorithmIdentifier can be
written into the token before signing.
"""

from __future__ import annotations

import enum
import functools
import hashlib
from dataclasses import dataclass
from typing import Protocol

from asn1crypto import algos


class KeySpec(enum.Enum):
    """Key types the key ceremony can generate in the token."""

    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"
    RSA2048 = "rsa2048"
    RSA3072 = "rsa3072"
    RSA4096 = "rsa4096"
    ED25519 = "ed25519"

    @property
    def family(self) -> str:
        return {"ec": "ec", "rs": "rsa", "ed": "ed25519"}[self.value[:2]]

    @property
    def curve(self) -> str | None:
        return {"ec-p256": "secp256r1", "ec-p384": "secp384r1"}.get(self.value)

    @property
    def rsa_bits(self) -> int | None:
        return int(self.value[3:]) if self.family == "rsa" else None


# Signature digests we use. SHA3 and SM3 imprints are signed with the SHA-2 digest of
# the same strength: every verifier we target (openssl, Java, Windows) knows SHA-2 with
# these keys, not all know ECDSA/RSA with SHA3 or SM3.
SIGNATURE_DIGEST_FOR_IMPRINT = {
    "sha1": "sha256",
    "sha256": "sha256",
    "sha384": "sha384",
    "sha512": "sha512",
    "sha3_256": "sha256",
    "sha3_384": "sha384",
    "sha3_512": "sha512",
    "sm3": "sha256",
}

_ECDSA_OIDS = {"sha256": "sha256_ecdsa", "sha384": "sha384_ecdsa", "sha512": "sha512_ecdsa"}
_RSA_OIDS = {"sha256": "sha256_rsa", "sha384": "sha384_rsa", "sha512": "sha512_rsa"}
_DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}


@dataclass(frozen=True)
class SignatureAlgorithm:
    """What a signer will do for one digest: the digest it uses and the CMS/X.509 identifier."""

    digest: str
    identifier: algos.SignedDigestAlgorithm

    @functools.cached_property
    def der(self) -> bytes:  # spliced into every token: encode once
        encoded: bytes = self.identifier.dump()  # asn1crypto is untyped
        return encoded


def signature_algorithm(key: KeySpec, digest: str, *, rsa_pss: bool = False) -> SignatureAlgorithm:
    """The algorithm a key of type `key` signs with when asked for `digest`."""
    if key.family == "ed25519":
        # RFC 8419 §3: with Ed25519 the CMS digest algorithm is SHA-512.
        return SignatureAlgorithm("sha512", algos.SignedDigestAlgorithm({"algorithm": "ed25519"}))
    if digest not in _DIGEST_SIZES:
        raise ValueError(f"unsupported signature digest {digest!r}")
    if key.family == "ec":
        ident = algos.SignedDigestAlgorithm({"algorithm": _ECDSA_OIDS[digest]})
    elif rsa_pss:
        ident = algos.SignedDigestAlgorithm(
            {
                "algorithm": "rsassa_pss",
                "parameters": {
                    "hash_algorithm": {"algorithm": digest},
                    "mask_gen_algorithm": {
                        "algorithm": "mgf1",
                        "parameters": {"algorithm": digest},
                    },
                    "salt_length": _DIGEST_SIZES[digest],
                },
            }
        )
    else:
        ident = algos.SignedDigestAlgorithm({"algorithm": _RSA_OIDS[digest], "parameters": None})
    return SignatureAlgorithm(digest, ident)


def digest(name: str, data: bytes) -> bytes:
    """Hash `data` with the named digest (asn1crypto names: sha256, sha3_256, sm3...)."""
    return hashlib.new(name, data).digest()


class Signer(Protocol):
    """A private key that signs; the public half is described by its certificate."""

    @property
    def key_spec(self) -> KeySpec: ...

    @property
    def rsa_pss(self) -> bool: ...

    def public_key_info(self) -> bytes:
        """DER SubjectPublicKeyInfo of the key."""
        ...

    def sign(self, message: bytes, digest_name: str) -> bytes:
        """Sign `message` (hashing it with `digest_name` where the scheme hashes)."""
        ...

    def sign_many(self, messages: list[bytes], digest_names: list[str]) -> list[bytes]:
        """Sign several messages; a batch lets a backend amortise locking or round trips."""
        ...

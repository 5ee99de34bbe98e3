"""Digest and signature primitives for the RFC 3161 token verifier.

Algorithms are named by their asn1crypto identifiers ("sha256", "sha256_rsa",
"rsassa_pss", ...). Signatures are checked with pyca/cryptography over bytes
the caller supplies exactly as they were signed; nothing here re-encodes ASN.1.
Supported: RSA PKCS#1 v1.5, RSASSA-PSS, ECDSA, Ed25519 and Ed448 (RFC 5652
§5.6 with the algorithm profiles of RFC 3370, RFC 4056, RFC 5753 and RFC 8419).
"""

from __future__ import annotations

from asn1crypto import algos, keys
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

__all__ = [
    "HASHES",
    "SignatureInvalid",
    "digest_name",
    "hash_bytes",
    "new_hash",
    "verify_signature",
]

#: Digest algorithms the verifier accepts, by asn1crypto name. MD5 and MD2 are absent on purpose.
HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
    "sha512_224": hashes.SHA512_224,
    "sha512_256": hashes.SHA512_256,
    "sha3_224": hashes.SHA3_224,
    "sha3_256": hashes.SHA3_256,
    "sha3_384": hashes.SHA3_384,
    "sha3_512": hashes.SHA3_512,
}

#: Algorithms refused on purpose, with the reason a user is told.
REFUSED = {
    name: f"{name.upper()} is refused on purpose: collisions can be made at will, so an "
    "imprint made with it proves nothing; time-stamp with SHA-256 or stronger"
    for name in ("md2", "md4", "md5")
}

_DISPLAY = {
    "sha1": "SHA-1",
    "sha224": "SHA-224",
    "sha256": "SHA-256",
    "sha384": "SHA-384",
    "sha512": "SHA-512",
    "sha512_224": "SHA-512/224",
    "sha512_256": "SHA-512/256",
}

_RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
_EC_PUBLIC_KEY = "1.2.840.10045.2.1"


class SignatureInvalid(Exception):
    """The signature does not verify, or its algorithm cannot be used; the message says why."""


def digest_name(name: str) -> str:
    """Human name of a digest algorithm ("SHA-256" for "sha256")."""
    return _DISPLAY.get(name, name.upper().replace("_", "-"))


def new_hash(name: str) -> hashes.Hash:
    """A fresh hash context for an asn1crypto digest name; ValueError when not supported."""
    try:
        return hashes.Hash(HASHES[name]())
    except KeyError:
        raise ValueError(f"unsupported digest algorithm {name}") from None


def hash_bytes(name: str, data: bytes) -> bytes:
    """Digest of ``data`` with the named algorithm."""
    ctx = new_hash(name)
    ctx.update(data)
    return ctx.finalize()


def _load_public_key(spki: keys.PublicKeyInfo) -> object:
    try:
        return serialization.load_der_public_key(spki.dump())
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SignatureInvalid(f"the public key cannot be used: {exc}") from None


def _named_hash(algorithm: algos.SignedDigestAlgorithm) -> str | None:
    """The digest a combined signature OID names (sha256_rsa -> sha256), else None."""
    oid = algorithm["algorithm"].dotted
    if oid in (_RSA_ENCRYPTION, _EC_PUBLIC_KEY) or algorithm.signature_algo in (
        "rsassa_pss",
        "ed25519",
        "ed448",
    ):
        return None
    name: str = algorithm.hash_algo
    return name


def _kind(algorithm: algos.SignedDigestAlgorithm) -> str:
    if algorithm["algorithm"].dotted == _EC_PUBLIC_KEY:
        return "ecdsa"
    try:
        kind: str = algorithm.signature_algo
        return kind
    except ValueError:
        raise SignatureInvalid(
            f"unsupported signature algorithm {algorithm['algorithm'].dotted}"
        ) from None


def _pss_padding(algorithm: algos.SignedDigestAlgorithm, digest: str) -> padding.PSS:
    """RSASSA-PSS parameters (RFC 4056 §2.2); the hash must match the SignerInfo digest."""
    params = algorithm["parameters"]
    pss_hash = params["hash_algorithm"]["algorithm"].native
    mgf = params["mask_gen_algorithm"]
    if mgf["algorithm"].native != "mgf1":
        raise SignatureInvalid("RSASSA-PSS with a mask generation function other than MGF1")
    mgf_hash = mgf["parameters"]["algorithm"].native
    if pss_hash != digest or params["trailer_field"].native != "trailer_field_bc":
        raise SignatureInvalid(
            f"RSASSA-PSS parameters use {pss_hash}, the digest algorithm is {digest}"
        )
    if mgf_hash not in HASHES:
        raise SignatureInvalid(f"RSASSA-PSS with unsupported MGF1 hash {mgf_hash}")
    return padding.PSS(
        mgf=padding.MGF1(HASHES[mgf_hash]()), salt_length=params["salt_length"].native
    )


def verify_signature(
    spki: keys.PublicKeyInfo,
    algorithm: algos.SignedDigestAlgorithm,
    digest: str | None,
    data: bytes,
    signature: bytes,
) -> str:
    """Check ``signature`` over ``data``; return a description such as "ECDSA with SHA-256".

    ``digest`` is the digest algorithm that goes with the signature (the SignerInfo's
    digestAlgorithm for CMS, RFC 5652 §5.4); None for certificates and CRLs, whose
    signature OID names it. A combined OID naming another digest is refused.
    Raises SignatureInvalid with the reason.
    """
    kind = _kind(algorithm)
    named = None if kind in ("ed25519", "ed448") else _named_hash(algorithm)
    if kind == "rsassa_pss":
        named = algorithm["parameters"]["hash_algorithm"]["algorithm"].native
    if digest is not None and named is not None and named != digest:
        raise SignatureInvalid(
            f"the signature algorithm names {named} but the digest algorithm is {digest}"
        )
    digest = digest or named
    key = _load_public_key(spki)
    try:
        return _dispatch(kind, key, algorithm, digest, data, signature)
    except InvalidSignature:
        raise SignatureInvalid("the signature value does not verify with the public key") from None


def _dispatch(
    kind: str,
    key: object,
    algorithm: algos.SignedDigestAlgorithm,
    digest: str | None,
    data: bytes,
    signature: bytes,
) -> str:
    if kind == "ed25519" and isinstance(key, ed25519.Ed25519PublicKey):
        key.verify(signature, data)
        return "Ed25519"
    if kind == "ed448" and isinstance(key, ed448.Ed448PublicKey):
        key.verify(signature, data)
        return "Ed448"
    if digest not in HASHES:
        raise SignatureInvalid(f"unsupported digest algorithm {digest} for {kind}")
    hash_alg = HASHES[digest]()
    if kind == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, data, padding.PKCS1v15(), hash_alg)
        return f"RSA PKCS#1 v1.5 with {digest_name(digest)}"
    if kind == "rsassa_pss" and isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, data, _pss_padding(algorithm, digest), hash_alg)
        return f"RSASSA-PSS with {digest_name(digest)}"
    if kind == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(hash_alg))
        return f"ECDSA ({key.curve.name}) with {digest_name(digest)}"
    raise SignatureInvalid(
        f"the signature algorithm {kind} does not fit the {type(key).__name__.lstrip('_')} key"
    )

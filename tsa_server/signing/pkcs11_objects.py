"""The objects in a PKCS#11 token: generating a key pair (non-extractable), finding a
key by label, its KeySpec and public key, and a session copy to sign with. Part of the
PKCS#11 backend (`pkcs11.py`, whose module docstring says what was measured)."""

from __future__ import annotations

import pkcs11
from asn1crypto import keys as asn1_keys
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.types import SignMixin
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters
from pkcs11.util.rsa import encode_rsa_public_key

from tsa_server.errors import SignerUnavailable
from tsa_server.signing.base import KeySpec

_ED25519_PARAMS = bytes.fromhex("06032b6570")  # OID 1.3.101.112 as CKA_EC_PARAMS


def generate_key(session: pkcs11.Session, spec: KeySpec, label: str) -> None:
    """Generate a non-extractable key pair in the token (the key ceremony's one act)."""
    if _objects(session, ObjectClass.PRIVATE_KEY, label):
        raise ValueError(f"the token already holds a key labelled {label!r}")
    private = {
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
        Attribute.SIGN: True,
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
    }
    public = {Attribute.VERIFY: True, Attribute.TOKEN: True}
    if spec.family == "rsa":
        session.generate_keypair(
            KeyType.RSA,
            spec.rsa_bits,
            label=label,
            store=True,
            private_template=private,
            public_template=public,
        )
        return
    if spec.family == "ec":
        assert spec.curve is not None  # every "ec" KeySpec names its curve
        params = encode_named_curve_parameters(spec.curve)
        key_type, mechanism = KeyType.EC, Mechanism.EC_KEY_PAIR_GEN
    else:
        params, key_type, mechanism = (
            _ED25519_PARAMS,
            KeyType.EC_EDWARDS,
            Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
        )
    domain = session.create_domain_parameters(key_type, {Attribute.EC_PARAMS: params}, local=True)
    domain.generate_keypair(
        label=label,
        store=True,
        mechanism=mechanism,
        private_template=private,
        public_template=public,
    )


def _objects(session: pkcs11.Session, kind: ObjectClass, label: str) -> list[pkcs11.Object]:
    """The token's own objects of that kind and label: never a session copy, which any
    session of this process would see too."""
    template = {Attribute.CLASS: kind, Attribute.LABEL: label, Attribute.TOKEN: True}
    return list(session.get_objects(template))


def signing_key(session: pkcs11.Session, label: str) -> SignMixin:
    keys = _objects(session, ObjectClass.PRIVATE_KEY, label)
    if not keys:
        raise SignerUnavailable(f"the token holds no private key labelled {label!r}")
    key = keys[0]
    if not isinstance(key, SignMixin):  # python-pkcs11 mixes sign() in when CKA_SIGN is set
        raise SignerUnavailable(f"the private key labelled {label!r} may not sign")
    return key


def session_copy(key: SignMixin) -> SignMixin:
    """The key copied into a session object of the token (C_CopyObject, CKA_TOKEN false),
    or the key itself when the token refuses (CKA_COPYABLE false, PKCS#11 2.40).

    The copy stays inside the token, as sensitive and as unextractable as the key (a copy
    may not relax either), and goes with the session. SoftHSM re-reads a token object's
    file for every use and signs with a session object from memory: an ECDSA P-256
    signature costs about 55 µs instead of 80 here. The copy would outlive its token's
    store, though: Pkcs11Signer uses it only after touching the key itself."""
    try:
        copy = key.copy({Attribute.TOKEN: False})
    except pkcs11.PKCS11Error:
        return key
    try:
        kept = copy[Attribute.SENSITIVE] and not copy[Attribute.EXTRACTABLE]
    except pkcs11.PKCS11Error:
        kept = False
    if kept and isinstance(copy, SignMixin):
        return copy
    copy.destroy()  # a token that relaxed what it must not: sign with the original
    return key


def key_spec_of(session: pkcs11.Session, label: str) -> KeySpec:
    key = signing_key(session, label)
    if key.key_type == KeyType.RSA:
        bits = key[Attribute.MODULUS_BITS] if _has(key, Attribute.MODULUS_BITS) else None
        if bits is None:
            pub = _public_key(session, label)
            bits = pub[Attribute.MODULUS_BITS]
        by_bits = {2048: KeySpec.RSA2048, 3072: KeySpec.RSA3072, 4096: KeySpec.RSA4096}
        return by_bits[bits]
    if key.key_type == KeyType.EC_EDWARDS:
        return KeySpec.ED25519
    params = key[Attribute.EC_PARAMS]
    return {
        encode_named_curve_parameters("secp256r1"): KeySpec.EC_P256,
        encode_named_curve_parameters("secp384r1"): KeySpec.EC_P384,
    }[params]


def _has(obj: pkcs11.Object, attribute: Attribute) -> bool:
    try:
        obj[attribute]
    except pkcs11.PKCS11Error:
        return False
    return True


def _public_key(session: pkcs11.Session, label: str) -> pkcs11.PublicKey:
    keys = _objects(session, ObjectClass.PUBLIC_KEY, label)
    if not keys or not isinstance(keys[0], pkcs11.PublicKey):
        raise SignerUnavailable(f"the token holds no public key labelled {label!r}")
    return keys[0]


def public_key_info(session: pkcs11.Session, label: str, spec: KeySpec) -> bytes:
    """DER SubjectPublicKeyInfo of the key pair `label`."""
    pub = _public_key(session, label)
    if spec.family == "rsa":
        rsa_pub = encode_rsa_public_key(pub)
        info = asn1_keys.PublicKeyInfo(
            {"algorithm": {"algorithm": "rsa"}, "public_key": asn1_keys.RSAPublicKey.load(rsa_pub)}
        )
        der_info: bytes = info.dump()  # asn1crypto is untyped
        return der_info
    if spec.family == "ec":
        return encode_ec_public_key(pub)
    point: bytes = pub[Attribute.EC_POINT]
    raw = (
        asn1_keys.OctetString.load(point).native if point[0] == 0x04 and len(point) == 34 else point
    )
    info = asn1_keys.PublicKeyInfo({"algorithm": {"algorithm": "ed25519"}, "public_key": raw})
    ed_info: bytes = info.dump()
    return ed_info

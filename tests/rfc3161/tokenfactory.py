"""Test-only builder of RFC 3161 tokens, certificates and CRLs with in-memory keys.

Keys are generated at test time (cached per process) and never stored. Certificates
and CRLs come from pyca/cryptography's builders; the CMS SignedData and TSTInfo are
assembled with asn1crypto so that every field the verifier looks at can be varied:
signature scheme, SID kind, ESSCertID version, CMSAlgorithmProtection, embedded
certificates, status, BER re-encoding, and single-bit corruption.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cache

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

GEN_TIME = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
DATA = b"the quick brown fox jumps over the lazy dog\n"
POLICY = "1.3.6.1.4.1.99999.1"
NONCE = 0x1234_5678_9ABC_DEF0

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@cache
def make_key(kind: str, index: int = 0) -> PrivateKey:
    """A private key of ``kind`` ("rsa", "ec", "ec384", "ed25519"); ``index`` gives others."""
    del index  # only part of the cache key
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(kind)


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "TSA Tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _sign_hash(key: PrivateKey) -> hashes.HashAlgorithm | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


@dataclass(frozen=True)
class CertSpec:
    """How to make one certificate."""

    cn: str
    key: PrivateKey
    issuer_cn: str | None = None  # None: self-signed
    issuer_key: PrivateKey | None = None
    serial: int = 1000
    not_before: datetime = datetime(2020, 1, 1, tzinfo=UTC)
    not_after: datetime = datetime(2040, 1, 1, tzinfo=UTC)
    ca: bool = False
    eku: tuple[x509.ObjectIdentifier, ...] | None = (ExtendedKeyUsageOID.TIME_STAMPING,)
    eku_critical: bool = True
    ski: bool = True


def make_cert(spec: CertSpec) -> x509.Certificate:
    """A certificate per ``spec``; CA certificates get basicConstraints and keyCertSign."""
    issuer_key = spec.issuer_key or spec.key
    public = spec.key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(spec.cn))
        .issuer_name(_name(spec.issuer_cn or spec.cn))
        .public_key(public)
        .serial_number(spec.serial)
        .not_valid_before(spec.not_before)
        .not_valid_after(spec.not_after)
        .add_extension(x509.BasicConstraints(ca=spec.ca, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if spec.ski:
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public), critical=False
        )
    usage = dict.fromkeys(
        (
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "encipher_only",
            "decipher_only",
            "crl_sign",
            "key_cert_sign",
            "digital_signature",
        ),
        False,
    )
    usage.update(key_cert_sign=spec.ca, crl_sign=spec.ca, digital_signature=not spec.ca)
    builder = builder.add_extension(x509.KeyUsage(**usage), critical=True)
    if spec.eku is not None and not spec.ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(spec.eku)), spec.eku_critical)
    return builder.sign(issuer_key, _sign_hash(issuer_key))


@dataclass(frozen=True)
class Pki:
    """A root CA, an intermediate CA and a TSA certificate under it."""

    root_key: PrivateKey
    root: x509.Certificate
    inter_key: PrivateKey
    inter: x509.Certificate
    tsa_key: PrivateKey
    tsa: x509.Certificate

    @property
    def chain(self) -> list[x509.Certificate]:
        return [self.tsa, self.inter]


def make_pki(kind: str = "ec", index: int = 0, **tsa_overrides: object) -> Pki:
    """Root -> intermediate -> TSA, all ``kind`` keys; ``tsa_overrides`` tune the TSA cert."""
    root_key, inter_key = make_key(kind, 100 + index), make_key(kind, 200 + index)
    tsa_key = make_key(kind, 300 + index)
    root_cn, inter_cn = f"Test Root {kind} {index}", f"Test Intermediate {kind} {index}"
    root = make_cert(CertSpec(root_cn, root_key, serial=1, ca=True))
    inter = make_cert(CertSpec(inter_cn, inter_key, root_cn, root_key, serial=2, ca=True))
    spec = CertSpec(f"Test TSA {kind} {index}", tsa_key, inter_cn, inter_key, serial=0x7A5A)
    tsa = make_cert(replace(spec, **tsa_overrides))  # type: ignore[arg-type]
    return Pki(root_key, root, inter_key, inter, tsa_key, tsa)


def to_asn1(cert: x509.Certificate) -> ax509.Certificate:
    return ax509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


@dataclass(frozen=True)
class TokenSpec:
    """Every variable part of a token. Defaults make a valid, fully featured token."""

    data: bytes = DATA
    imprint_alg: str = "sha256"
    imprint: bytes | None = None  # overrides the hash of ``data``
    nonce: int | None = NONCE
    policy: str = POLICY
    gen_time: str = "20240601120000Z"
    serial: int = 0x5EED
    accuracy: dict[str, int] | None = field(default_factory=lambda: {"seconds": 1})
    ordering: bool = False
    tsa_field: bool = True
    tsa_cn: str | None = None  # names another TSA in the tsa field
    digest_alg: str = "sha256"
    scheme: str | None = None  # "pkcs1", "pss", "ecdsa", "ed25519"; None: by key type
    sid: str = "issuer_serial"  # or "ski"
    ess: str | None = "v2"  # "v1", "v2", or None
    ess_alg: str = "sha256"
    ess_issuer_serial: bool = True
    ess_serial: int | None = None  # overrides the serial in issuerSerial
    cap: bool = True
    cap_digest_alg: str | None = None  # overrides the digest in CMSAlgorithmProtection
    embed: tuple[str, ...] = ("tsa", "inter")  # which of the Pki's certificates to embed
    extra_embedded: tuple[x509.Certificate, ...] = ()
    extra_embedded_first: bool = False
    signer_infos: int = 1
    status: int = 0
    bare: bool = False  # a bare ContentInfo instead of a TimeStampResp


def _scheme(key: PrivateKey, scheme: str | None) -> str:
    if scheme:
        return scheme
    if isinstance(key, rsa.RSAPrivateKey):
        return "pkcs1"
    return "ed25519" if isinstance(key, ed25519.Ed25519PrivateKey) else "ecdsa"


def _signature_algorithm(scheme: str, digest: str) -> algos.SignedDigestAlgorithm:
    if scheme == "pss":
        params = {
            "hash_algorithm": {"algorithm": digest},
            "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": digest}},
            "salt_length": hashlib.new(digest).digest_size,
        }
        return algos.SignedDigestAlgorithm({"algorithm": "rsassa_pss", "parameters": params})
    name = {"pkcs1": f"{digest}_rsa", "ecdsa": f"{digest}_ecdsa", "ed25519": "ed25519"}[scheme]
    return algos.SignedDigestAlgorithm({"algorithm": name})


def _sign(key: PrivateKey, scheme: str, digest: str, data: bytes) -> bytes:
    algorithm = getattr(hashes, digest.upper())()
    if scheme == "ed25519":
        return key.sign(data)  # type: ignore[call-arg, union-attr]
    if scheme == "ecdsa":
        return key.sign(data, ec.ECDSA(algorithm))  # type: ignore[call-arg, union-attr]
    if scheme == "pss":
        pss = padding.PSS(mgf=padding.MGF1(algorithm), salt_length=algorithm.digest_size)
        return key.sign(data, pss, algorithm)  # type: ignore[call-arg, union-attr]
    return key.sign(data, padding.PKCS1v15(), algorithm)  # type: ignore[call-arg, union-attr]


def _tst_info(spec: TokenSpec, tsa: ax509.Certificate) -> tsp.TSTInfo:
    imprint = spec.imprint or hashlib.new(spec.imprint_alg, spec.data).digest()
    gen_time = core.GeneralizedTime.load(
        b"\x18" + bytes([len(spec.gen_time)]) + spec.gen_time.encode()
    )
    value = {
        "version": "v1",
        "policy": spec.policy,
        "message_imprint": {
            "hash_algorithm": {"algorithm": spec.imprint_alg},
            "hashed_message": imprint,
        },
        "serial_number": spec.serial,
        "gen_time": gen_time,
        "accuracy": spec.accuracy,
        "ordering": spec.ordering,
        "nonce": spec.nonce,
    }
    if spec.tsa_field:
        subject = tsa.subject
        if spec.tsa_cn is not None:
            subject = ax509.Name.load(_name(spec.tsa_cn).public_bytes())
        value["tsa"] = ax509.GeneralName({"directory_name": subject})
    return tsp.TSTInfo(value)


def _ess_attribute(spec: TokenSpec, tsa: ax509.Certificate) -> cms.CMSAttribute:
    issuer_serial = {
        "issuer": [ax509.GeneralName({"directory_name": tsa.issuer})],
        "serial_number": spec.ess_serial if spec.ess_serial is not None else tsa.serial_number,
    }
    if spec.ess == "v1":
        ess_id = {"cert_hash": hashlib.sha1(tsa.dump()).digest()}
        kind, cls = "signing_certificate", tsp.SigningCertificate
    else:
        ess_id = {
            "hash_algorithm": {"algorithm": spec.ess_alg},
            "cert_hash": hashlib.new(spec.ess_alg, tsa.dump()).digest(),
        }
        kind, cls = "signing_certificate_v2", tsp.SigningCertificateV2
    if spec.ess_issuer_serial:
        ess_id["issuer_serial"] = issuer_serial
    return cms.CMSAttribute({"type": kind, "values": [cls({"certs": [ess_id]})]})


def _signed_attrs(
    spec: TokenSpec, econtent: bytes, tsa: ax509.Certificate, sig_alg: algos.SignedDigestAlgorithm
) -> cms.CMSAttributes:
    digest = hashlib.new(spec.digest_alg, econtent).digest()
    attrs = [
        cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),
        cms.CMSAttribute({"type": "message_digest", "values": [digest]}),
        cms.CMSAttribute({"type": "signing_time", "values": [cms.Time({"utc_time": GEN_TIME})]}),
    ]
    if spec.ess:
        attrs.append(_ess_attribute(spec, tsa))
    if spec.cap:
        protection = {
            "digest_algorithm": {"algorithm": spec.cap_digest_alg or spec.digest_alg},
            "signature_algorithm": sig_alg,
        }
        attrs.append(cms.CMSAttribute({"type": "cms_algorithm_protection", "values": [protection]}))
    # DER orders a SET OF by the encodings of its elements (X.690 §11.6).
    return cms.CMSAttributes(sorted(attrs, key=lambda a: a.dump()))


def _signer_info(spec: TokenSpec, pki: Pki, econtent: bytes) -> cms.SignerInfo:
    tsa = to_asn1(pki.tsa)
    scheme = _scheme(pki.tsa_key, spec.scheme)
    sig_alg = _signature_algorithm(scheme, spec.digest_alg)
    attrs = _signed_attrs(spec, econtent, tsa, sig_alg)
    signature = _sign(pki.tsa_key, scheme, spec.digest_alg, attrs.dump())
    if spec.sid == "ski":
        sid = cms.SignerIdentifier({"subject_key_identifier": tsa.key_identifier})
    else:
        sid = cms.SignerIdentifier(
            {"issuer_and_serial_number": {"issuer": tsa.issuer, "serial_number": tsa.serial_number}}
        )
    return cms.SignerInfo(
        {
            "version": "v3" if spec.sid == "ski" else "v1",
            "sid": sid,
            "digest_algorithm": {"algorithm": spec.digest_alg},
            "signed_attrs": attrs,
            "signature_algorithm": sig_alg,
            "signature": signature,
        }
    )


def _embedded(spec: TokenSpec, pki: Pki) -> list[ax509.Certificate]:
    named = {"tsa": pki.tsa, "inter": pki.inter, "root": pki.root}
    chosen = [to_asn1(named[n]) for n in spec.embed]
    extra = [to_asn1(c) for c in spec.extra_embedded]
    return extra + chosen if spec.extra_embedded_first else chosen + extra


def build_token(pki: Pki, spec: TokenSpec | None = None) -> bytes:
    """DER of a TimeStampResp (or, with ``spec.bare``, a bare token) per ``spec``."""
    spec = spec or TokenSpec()
    if spec.status not in (0, 1):
        info = tsp.PKIStatusInfo({"status": spec.status, "status_string": ["refused by test"]})
        body = info.dump()
        return b"\x30" + bytes([len(body)]) + body  # TimeStampResp without a token
    tst = _tst_info(spec, to_asn1(pki.tsa))
    econtent = tst.dump()
    info = _signer_info(spec, pki, econtent)
    signed = cms.SignedData(
        {
            "version": "v3",
            "digest_algorithms": [{"algorithm": spec.digest_alg}],
            "encap_content_info": {"content_type": "tst_info", "content": tst},
            "certificates": [
                cms.CertificateChoices({"certificate": c}) for c in _embedded(spec, pki)
            ],
            "signer_infos": [info] * spec.signer_infos,
        }
    )
    token = cms.ContentInfo({"content_type": "signed_data", "content": signed})
    if spec.bare:
        return token.dump()
    return tsp.TimeStampResp({"status": {"status": spec.status}, "time_stamp_token": token}).dump()


def flip_bit(der: bytes, needle: bytes, offset: int = 0, bit: int = 0) -> bytes:
    """``der`` with one bit flipped at ``offset`` inside the only occurrence of ``needle``."""
    assert der.count(needle) == 1, f"needle found {der.count(needle)} times"
    position = der.index(needle) + offset
    out = bytearray(der)
    out[position] ^= 1 << bit
    return bytes(out)


def token_parts(der: bytes) -> tuple[cms.SignedData, cms.SignerInfo, bytes]:
    """SignedData, its SignerInfo and eContent of a TimeStampResp or bare token."""
    top = core.Sequence.load(der)
    info = (
        cms.ContentInfo.load(der)
        if isinstance(top[0], core.ObjectIdentifier)
        else tsp.TimeStampResp.load(der)["time_stamp_token"]
    )
    signed = info["content"]
    return signed, signed["signer_infos"][0], bytes(signed["encap_content_info"]["content"])


def make_crl(
    issuer_key: PrivateKey,
    issuer: x509.Certificate,
    revoked: list[tuple[int, datetime, x509.ReasonFlags | None]] = (),  # type: ignore[assignment]
    this_update: datetime = datetime(2024, 7, 1, tzinfo=UTC),
    next_update: datetime | None = None,
) -> x509.CertificateRevocationList:
    """A CRL from ``issuer`` listing ``revoked`` (serial, date, reason or None)."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(this_update)
        .next_update(next_update or this_update + timedelta(days=30))
    )
    for serial, when, reason in revoked:
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
        if reason is not None:
            entry = entry.add_extension(x509.CRLReason(reason), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(issuer_key, _sign_hash(issuer_key))


def _tlvs(data: bytes) -> list[tuple[int, bytes, bytes]]:
    """(tag, whole TLV, content) of each DER element in ``data``."""
    out, pos = [], 0
    while pos < len(data):
        tag, first = data[pos], data[pos + 1]
        start, length = pos + 2, first
        if first >= 0x80:
            count = first & 0x7F
            start = pos + 2 + count
            length = int.from_bytes(data[pos + 2 : start], "big")
        out.append((tag, data[pos : start + length], data[start : start + length]))
        pos = start + length
    return out


def _indefinite(tag: int, content: bytes) -> bytes:
    return bytes([tag, 0x80]) + content + b"\x00\x00"


def _ber_encap(encap: bytes) -> bytes:
    (_, oid, _), (_, _, explicit) = _tlvs(_tlvs(encap)[0][2])
    octets = _tlvs(explicit)[0][2]
    chunks = b"".join(
        b"\x04" + bytes([len(octets[i : i + 16])]) + octets[i : i + 16]
        for i in range(0, len(octets), 16)
    )
    return _indefinite(0x30, oid + _indefinite(0xA0, _indefinite(0x24, chunks)))


def _ber_content_info(content_info: bytes) -> bytes:
    (_, oid, _), (_, _, explicit) = _tlvs(_tlvs(content_info)[0][2])
    fields = _tlvs(_tlvs(explicit)[0][2])
    signed = b"".join(_ber_encap(whole) if tag == 0x30 else whole for tag, whole, _ in fields)
    return _indefinite(0x30, oid + _indefinite(0xA0, _indefinite(0x30, signed)))


def to_ber(der: bytes) -> bytes:
    """Re-encode a token as BER: indefinite lengths on the path to the TSTInfo, whose
    OCTET STRING becomes constructed 16-byte chunks. Signatures stay valid."""
    top = _tlvs(_tlvs(der)[0][2])
    if top[0][0] == 0x06:  # a bare ContentInfo starts with its OID
        return _ber_content_info(der)
    status, content_info = top[0][1], top[1][1]
    return _indefinite(0x30, status + _ber_content_info(content_info))

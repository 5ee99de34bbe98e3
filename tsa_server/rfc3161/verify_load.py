"""Decoding of time-stamp tokens, certificates and CRLs for the RFC 3161 verifier.

A token arrives as DER or BER, PEM ("-----BEGIN PKCS7-----", "CMS", "TIMESTAMP ..."
labels) or bare base64, and holds either a ``TimeStampResp`` (RFC 3161 §2.4.2) or
a bare ``TimeStampToken`` (a CMS ContentInfo). Parsing errors never escape as
asn1crypto tracebacks: they become :class:`TokenDecodeError` or
:class:`CertificateDecodeError`, both ``ValueError`` subclasses.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeAlias

from asn1crypto import cms, core, crl, pem, tsp, x509
from cryptography import x509 as pyca_x509
from cryptography.hazmat.primitives.serialization import Encoding

__all__ = [
    "CertificateDecodeError",
    "CertificateLike",
    "CrlLike",
    "LoadedToken",
    "TokenDecodeError",
    "load_certificates",
    "load_crls",
    "load_token",
    "to_asn1_certificate",
    "to_asn1_crl",
]

CertificateLike: TypeAlias = x509.Certificate | pyca_x509.Certificate | bytes
CrlLike: TypeAlias = crl.CertificateList | pyca_x509.CertificateRevocationList | bytes

_TOKEN_PEM_LABEL = re.compile(r"PKCS7|PKCS #7|CMS|TIME[- ]?STAMP|\bTS[RT]\b", re.IGNORECASE)
_BASE64_TEXT = re.compile(rb"^[A-Za-z0-9+/=_\-\s]+$")


class TokenDecodeError(ValueError):
    """The bytes are not a time-stamp response or token in any accepted encoding.
    ``truncated``: they start like one but end early (a damaged token, not a wrong file)."""

    def __init__(self, message: str, *, truncated: bool = False) -> None:
        super().__init__(message)
        self.truncated = truncated


class CertificateDecodeError(ValueError):
    """The bytes are not certificates (or CRLs) in any accepted encoding."""


class _TimeStampResp(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    # asn1crypto's TimeStampResp makes the token mandatory; a rejection has none.
    _fields = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


@dataclass(frozen=True)
class LoadedToken:
    """A decoded token, before any verification.

    ``status`` and the status texts come from a TimeStampResp; they are None/empty
    for a bare token. ``content_info`` is None when the response carries no token.
    """

    kind: str
    content_info: cms.ContentInfo | None
    status: int | None = None
    status_strings: tuple[str, ...] = ()
    failure_info: tuple[str, ...] = ()


def _unarmor(data: bytes, error: type[ValueError], label_ok: re.Pattern[str] | None) -> bytes:
    """DER/BER bytes from DER, PEM (one block) or base64 text."""
    if data[:1] == b"\x30":
        return data  # binary DER/BER: never strip, trailing bytes may look like whitespace
    stripped = data.strip()
    if not stripped:
        raise error("empty input")
    if pem.detect(stripped):
        try:
            label, _, der_bytes = pem.unarmor(stripped)
        except (ValueError, TypeError) as exc:
            raise error(f"malformed PEM: {exc}") from None
        if label_ok is not None and not label_ok.search(label):
            raise error(f"unexpected PEM label {label!r}")
        unarmored: bytes = der_bytes
        return unarmored
    if _BASE64_TEXT.match(stripped):
        text = b"".join(stripped.split())
        text = text.replace(b"-", b"+").replace(b"_", b"/")
        try:
            return base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise error(f"malformed base64: {exc}") from None
    raise error("neither DER, PEM nor base64")


def _status_of(resp: _TimeStampResp) -> tuple[int, tuple[str, ...], tuple[str, ...]]:
    info = resp["status"]
    strings = tuple(str(s) for s in (info["status_string"].native or ()))
    fail = info["fail_info"].native
    failure = tuple(sorted(str(f) for f in fail)) if fail else ()
    return int.from_bytes(info["status"].contents, "big", signed=True), strings, failure


def _decode(der: bytes) -> LoadedToken:
    top = core.Sequence.load(der, strict=True)
    first = top[0]
    if isinstance(first, core.ObjectIdentifier):
        token = cms.ContentInfo.load(der, strict=True)
        token["content_type"].native  # noqa: B018 - forces the lazy parse to fail here
        return LoadedToken(kind="TimeStampToken", content_info=token)
    resp = _TimeStampResp.load(der, strict=True)
    status, strings, failure = _status_of(resp)
    token = resp["time_stamp_token"]
    content = None if isinstance(token, core.Void) else token
    if content is not None:
        content["content_type"].native  # noqa: B018
    return LoadedToken("TimeStampResp", content, status, strings, failure)


def load_token(data: bytes | str) -> LoadedToken:
    """Decode a TimeStampResp or a bare TimeStampToken from DER/BER, PEM or base64.

    Text (PEM or base64) may also come as ``str``. Only the outer layers are parsed
    here; the verifier examines the rest and reports what it finds malformed as
    failed checks. Raises TokenDecodeError.
    """
    if isinstance(data, str):
        try:
            data = data.encode("ascii")
        except UnicodeEncodeError:
            raise TokenDecodeError("text input must be PEM or base64 (ASCII)") from None
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TokenDecodeError(f"expected bytes, got {type(data).__name__}")
    der = _unarmor(bytes(data), TokenDecodeError, _TOKEN_PEM_LABEL)
    try:
        return _decode(der)
    except TokenDecodeError:
        raise
    except Exception:  # asn1crypto raises ValueError, TypeError, KeyError, ...
        raise _undecodable(der) from None


def _undecodable(der: bytes) -> TokenDecodeError:
    """What bytes that are not a token are, in words a user can act on (never the
    decoder's parse path)."""
    announced = _announced_length(der)
    if announced is not None and announced > len(der):
        return TokenDecodeError(
            f"the token is truncated: {len(der)} bytes of the {announced} its header "
            "announces (fetch it again)",
            truncated=True,
        )
    try:
        tsp.TimeStampReq.load(der, strict=True)["message_imprint"].native  # noqa: B018
    except Exception:  # noqa: BLE001 - not a request either
        return TokenDecodeError(
            "not a time-stamp token: expected a TimeStampResp (.tsr) or a TimeStampToken, "
            "in DER, PEM or base64"
        )
    return TokenDecodeError(
        "this is a time-stamp request (.tsq, what `openssl ts -query` writes), not a token: "
        "send it to the TSA and verify the reply (.tsr)"
    )


def _announced_length(der: bytes) -> int | None:
    """The full length a DER SEQUENCE's header announces, None when it is no header."""
    if len(der) < 2 or der[0] != 0x30:
        return None
    if der[1] < 0x80:
        return 2 + der[1]
    count = der[1] & 0x7F
    if count == 0 or count > 4 or len(der) < 2 + count:
        return None
    return 2 + count + int.from_bytes(der[2 : 2 + count], "big")


def _certs_from_pkcs7(der: bytes) -> list[x509.Certificate]:
    info = cms.ContentInfo.load(der, strict=True)
    certs = info["content"]["certificates"]
    return [c.chosen for c in certs if c.name == "certificate"]


def _parse_certificate_blob(der: bytes) -> list[x509.Certificate]:
    top = core.Sequence.load(der, strict=True)
    if isinstance(top[0], core.ObjectIdentifier):
        return _certs_from_pkcs7(der)
    cert = x509.Certificate.load(der, strict=True)
    cert["tbs_certificate"]["subject"].native  # noqa: B018 - force the parse now
    return [cert]


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """Certificates from a PEM bundle, one DER certificate or a PKCS#7 certificate bag.

    Returns asn1crypto certificates in input order. Raises CertificateDecodeError.
    """
    data = bytes(data)
    if data[:1] != b"\x30" and pem.detect(data.strip()):
        try:
            blobs = [der for _, _, der in pem.unarmor(data.strip(), multiple=True)]
        except (ValueError, TypeError) as exc:
            raise CertificateDecodeError(f"malformed PEM: {exc}") from None
    else:
        blobs = [_unarmor(data, CertificateDecodeError, None)]
    certs: list[x509.Certificate] = []
    for der in blobs:
        try:
            certs.extend(_parse_certificate_blob(der))
        except Exception as exc:
            raise CertificateDecodeError(f"not a certificate: {exc}") from None
    if not certs:
        raise CertificateDecodeError("no certificate found")
    return certs


def load_crls(data: bytes) -> list[crl.CertificateList]:
    """CRLs from PEM ("X509 CRL" blocks) or one DER CRL. Raises CertificateDecodeError."""
    data = bytes(data)
    try:
        if data[:1] != b"\x30" and pem.detect(data.strip()):
            blobs = [der for _, _, der in pem.unarmor(data.strip(), multiple=True)]
        else:
            blobs = [data]
        crls = [crl.CertificateList.load(der, strict=True) for der in blobs]
        for item in crls:
            item["tbs_cert_list"]["issuer"].native  # noqa: B018
    except Exception as exc:
        raise CertificateDecodeError(f"not a CRL: {exc}") from None
    return crls


def to_asn1_certificate(cert: CertificateLike) -> x509.Certificate:
    """Normalise an asn1crypto or pyca certificate (or DER/PEM bytes) to asn1crypto."""
    if isinstance(cert, x509.Certificate):
        return cert
    if isinstance(cert, pyca_x509.Certificate):
        return x509.Certificate.load(cert.public_bytes(Encoding.DER))
    if isinstance(cert, bytes | bytearray):
        found = load_certificates(bytes(cert))
        if len(found) != 1:
            raise CertificateDecodeError(f"expected one certificate, found {len(found)}")
        return found[0]
    raise TypeError(f"not a certificate: {type(cert).__name__}")


def to_asn1_crl(item: CrlLike) -> list[crl.CertificateList]:
    """Normalise an asn1crypto or pyca CRL (or DER/PEM bytes) to asn1crypto CRLs."""
    if isinstance(item, crl.CertificateList):
        return [item]
    if isinstance(item, pyca_x509.CertificateRevocationList):
        return [crl.CertificateList.load(item.public_bytes(Encoding.DER))]
    if isinstance(item, bytes | bytearray):
        return load_crls(bytes(item))
    raise TypeError(f"not a CRL: {type(item).__name__}")


def unique_certificates(certs: Iterable[x509.Certificate]) -> list[x509.Certificate]:
    """Certificates without byte-identical duplicates, first occurrence kept."""
    seen: set[bytes] = set()
    out: list[x509.Certificate] = []
    for cert in certs:
        der = cert.dump()
        if der not in seen:
            seen.add(der)
            out.append(cert)
    return out


_SHORT_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.5": "serialNumber",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.9": "STREET",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.12": "title",
    "2.5.4.13": "description",
    "2.5.4.97": "organizationIdentifier",
    "0.9.2342.19200300.100.1.1": "UID",
    "0.9.2342.19200300.100.1.25": "DC",
    "1.2.840.113549.1.9.1": "emailAddress",
}
_RFC4514_NAMES = frozenset({"CN", "C", "L", "ST", "STREET", "O", "OU", "UID", "DC"})
#: Attribute names beyond RFC 4514's own, so that names this module prints parse back.
EXTRA_NAME_ATTRIBUTES = {
    name: oid for oid, name in _SHORT_NAMES.items() if name not in _RFC4514_NAMES
}


def _escape(value: str) -> str:
    out = "".join("\\" + ch if ch in ',+"\\<>;' else ch for ch in value).replace("\0", "\\00")
    if out[:1] in ("#", " "):
        out = "\\" + out
    if out.endswith(" ") and not out.endswith("\\ "):
        out = out[:-1] + "\\ "
    return out


def name_text(name: x509.Name) -> str:
    """RFC 4514 text of a distinguished name, most specific RDN first ("CN=a,O=b")."""
    parts = []
    for rdn in reversed(list(name.chosen)):
        atoms = []
        for atv in rdn:
            oid = atv["type"].dotted
            label = _SHORT_NAMES.get(oid, oid)
            native = atv["value"].native
            if isinstance(native, str):
                atoms.append(f"{label}={_escape(native)}")
            else:
                atoms.append(f"{label}=#{atv['value'].dump().hex()}")
        parts.append("+".join(atoms))
    return ",".join(parts)


def same_name(a: x509.Name, b: x509.Name) -> bool:
    """RFC 5280 §7.1 name equality; identical DER first, because the full comparison
    (LDAP string preparation) costs far more and almost every real pair is identical."""
    return a.dump() == b.dump() or bool(a == b)

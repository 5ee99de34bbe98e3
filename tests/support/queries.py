"""Build TimeStampReq DER for tests by hand, independent of the server's encoder.

Hand-built so that tests can also produce what asn1crypto would refuse to: absent or
odd hash parameters, other versions, oversized nonces, arbitrary extensions.
"""

from __future__ import annotations

import hashlib
import secrets

from asn1crypto import cms, core, tsp

HASH_OIDS = {
    "sha1": "1.3.14.3.2.26",
    "md5": "1.2.840.113549.2.5",
    "sha256": "2.16.840.1.101.3.4.2.1",
    "sha384": "2.16.840.1.101.3.4.2.2",
    "sha512": "2.16.840.1.101.3.4.2.3",
    "sha3_256": "2.16.840.1.101.3.4.2.8",
    "sha3_384": "2.16.840.1.101.3.4.2.9",
    "sha3_512": "2.16.840.1.101.3.4.2.10",
    "sm3": "1.2.156.10197.1.401",
}
NULL = b"\x05\x00"


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(body))) + body + content


def random_nonce() -> int:
    return secrets.randbits(63) | 1 << 62


def make_request(
    data: bytes = b"hello",
    *,
    hash_name: str = "sha256",
    digest: bytes | None = None,
    nonce: int | None = 0,
    cert_req: bool = True,
    policy: str | None = None,
    extensions: bytes | None = None,
    version: int = 1,
    params: bytes | None = None,
) -> bytes:
    """A DER TimeStampReq. nonce=0 means a fresh random nonce, None means no nonce;
    params is the raw DER of the hash parameters (None: absent); extensions raw DER."""
    if digest is None:
        digest = hashlib.new(hash_name, data).digest()
    oid = core.ObjectIdentifier(HASH_OIDS.get(hash_name, hash_name)).dump()
    algorithm = _tlv(0x30, oid + (params or b""))
    parts = [
        core.Integer(version).dump(),
        _tlv(0x30, algorithm + _tlv(0x04, digest)),
    ]
    if policy is not None:
        parts.append(core.ObjectIdentifier(policy).dump())
    if nonce == 0:
        nonce = random_nonce()
    if nonce is not None:
        parts.append(core.Integer(nonce).dump())
    if cert_req:
        parts.append(b"\x01\x01\xff")
    if extensions is not None:
        parts.append(_tlv(0xA0, extensions))
    return _tlv(0x30, b"".join(parts))


def extension(oid: str, critical: bool, value: bytes = b"\x05\x00") -> bytes:
    """One Extension, DER."""
    body = core.ObjectIdentifier(oid).dump()
    if critical:
        body += b"\x01\x01\xff"
    return _tlv(0x30, body + _tlv(0x04, value))


class TimeStampResp(core.Sequence):
    """RFC 3161 TimeStampResp. asn1crypto's own class wrongly requires the token, which a
    rejection must not carry, so tests parse replies with this one."""

    _fields = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


def parse_response(body: bytes) -> TimeStampResp:
    return TimeStampResp.load(body, strict=True)


def failure_of(body: bytes) -> tuple[str, frozenset[str]]:
    """(status, set of failInfo names) of a DER TimeStampResp."""
    status = parse_response(body)["status"]
    fail = status["fail_info"].native
    return status["status"].native, frozenset(fail or ())

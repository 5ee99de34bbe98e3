"""Minimal DER encoding for the issuance hot path.

asn1crypto builds these structures correctly but slowly (milliseconds per token); the
hot path concatenates pre-encoded pieces with these few primitives instead. Every
output is checked byte for byte against asn1crypto in the tests.
"""

from __future__ import annotations

from datetime import datetime

SEQUENCE = 0x30
SET = 0x31
INTEGER = 0x02
OCTET_STRING = 0x04
OID = 0x06
GENERALIZED_TIME = 0x18
CONTEXT_0 = 0xA0  # [0] constructed
CONTEXT_1 = 0xA1


def length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:  # the hot path's usual sizes, without building the length separately
        return bytes((tag, n)) + content
    if n < 0x100:
        return bytes((tag, 0x81, n)) + content
    if n < 0x10000:
        return bytes((tag, 0x82, n >> 8, n & 0xFF)) + content
    return bytes((tag,)) + length(n) + content


def integer(value: int) -> bytes:
    """DER INTEGER: minimal two's complement."""
    size = (value + (value < 0)).bit_length() // 8 + 1
    return tlv(INTEGER, value.to_bytes(size, "big", signed=True))


def generalized_time(moment: datetime) -> bytes:
    """GeneralizedTime, UTC, millisecond precision, no trailing zeros (RFC 3161 §2.4.2)."""
    text = moment.strftime("%Y%m%d%H%M%S")
    millis = moment.microsecond // 1000
    if millis:
        text += "." + f"{millis:03d}".rstrip("0")
    return tlv(GENERALIZED_TIME, (text + "Z").encode("ascii"))


_OID_CACHE: dict[str, bytes] = {}


def oid(dotted: str) -> bytes:
    """DER OBJECT IDENTIFIER, cached: the hot path meets the same few OIDs again and again."""
    encoded = _OID_CACHE.get(dotted)
    if encoded is None:
        from asn1crypto.core import ObjectIdentifier

        encoded = _OID_CACHE[dotted] = ObjectIdentifier(dotted).dump()
    return encoded

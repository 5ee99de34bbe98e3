"""The lean verifier's DER walker: split a token into its *frame* (every byte it shares
with the other tokens of one template) and its per-token values, or raise NotLean for
any shape it does not recognise. What the frame is, and why the split is safe, is
explained in ``verify_lean``.

``split_token`` walks every level and names the frame by its bytes (the key of
``LeanVerifier``'s frames); ``verify_lean_template`` splits the later tokens of a frame
with fewer steps, from the pieces here (``der_expect``, ``tst_head``, ``tst_tail``).
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from asn1crypto import cms, core

from .oids import ID_SIGNED_DATA, LEDGER_BINDING

__all__ = [
    "MESSAGE_DIGEST_OID",
    "SIGNED_DATA_OID",
    "LeanToken",
    "NotLean",
    "Split",
    "Values",
    "der_children",
    "der_expect",
    "der_fields",
    "der_integer",
    "split_token",
    "tst_head",
    "tst_tail",
]

SIGNED_DATA_OID = cms.ContentType(ID_SIGNED_DATA).dump()
MESSAGE_DIGEST_OID = cms.CMSAttributeType("message_digest").dump()
_LEDGER_BINDING_OID = core.ObjectIdentifier(LEDGER_BINDING).dump()
_TST_VERSION_1 = b"\x02\x01\x01"
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_MILLISECOND_TIME = re.compile(rb"[0-9]{14}(?:\.[0-9]{1,3})?Z\Z")
_HOURS: dict[bytes, int] = {}  # b"YYYYMMDDhh" -> ms since the epoch, for valid hours only


class NotLean(Exception):
    """The token is not in a shape the lean path handles: use the full verifier."""


class LeanToken:
    """The TSTInfo values of a token the lean path verified. ``extensions`` holds the
    DER value of each (non-critical) TSTInfo extension, in order; only LedgerBinding is
    accepted, so each is a LedgerBinding value."""

    __slots__ = ("serial", "gen_time_ms", "imprint", "extensions")

    def __init__(
        self, serial: int, gen_time_ms: int, imprint: bytes, extensions: tuple[bytes, ...]
    ) -> None:
        self.serial = serial
        self.gen_time_ms = gen_time_ms
        self.imprint = imprint
        self.extensions = extensions

    @property
    def gen_time(self) -> datetime:
        return _UNIX_EPOCH + self.gen_time_ms * _MS


@dataclass(frozen=True)
class Split:
    """A token split: `key` identifies its frame, the rest are its per-token values."""

    key: Hashable
    econtent: bytes
    message_digest: bytes
    signed_attrs: bytes  # re-tagged as SET OF, as signed (RFC 5652 §5.4)
    signature: bytes
    token: LeanToken

    def values(self) -> Values:
        return self.econtent, self.message_digest, self.signed_attrs, self.signature, self.token


def _tlv(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER TLV at ``pos``: single-byte tags,
    definite minimal lengths only."""
    if pos + 2 > end:
        raise NotLean("truncated")
    tag = buf[pos]
    size = buf[pos + 1]
    pos += 2
    if tag & 0x1F == 0x1F:
        raise NotLean("multi-byte tag")
    if size & 0x80:
        count = size & 0x7F
        if count == 0 or count > 4 or pos + count > end or buf[pos] == 0:
            raise NotLean("indefinite or non-minimal length")
        size = int.from_bytes(buf[pos : pos + count], "big")
        if size < 0x80:
            raise NotLean("non-minimal length")
        pos += count
    if pos + size > end:
        raise NotLean("length beyond the enclosing value")
    return tag, pos, pos + size


def der_expect(buf: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    """(content start, content end) of the TLV at ``pos``, which must carry ``tag``: a
    single-byte tag; ``_tlv`` without its call, on the per-token path."""
    if pos + 2 > end or buf[pos] != tag or tag & 0x1F == 0x1F:
        raise NotLean("not the template's shape")
    size = buf[pos + 1]
    pos += 2
    if size & 0x80:
        count = size & 0x7F
        if count == 0 or count > 4 or pos + count > end or buf[pos] == 0:
            raise NotLean("indefinite or non-minimal length")
        size = int.from_bytes(buf[pos : pos + count], "big")
        if size < 0x80:
            raise NotLean("non-minimal length")
        pos += count
    if pos + size > end:
        raise NotLean("length beyond the enclosing value")
    return pos, pos + size


def der_children(buf: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """Each TLV filling ``buf[start:end]`` exactly: (tag, start, content start, end)."""
    out = []
    pos = start
    while pos < end:
        tag, content, after = _tlv(buf, pos, end)
        out.append((tag, pos, content, after))
        pos = after
    return out


def der_fields(value: bytes, tags: tuple[int, ...]) -> list[bytes]:
    """The contents of the fields of ``value``, a DER SEQUENCE whose fields carry exactly
    ``tags``; NotLean otherwise."""
    pos, end = der_expect(value, 0, len(value), 0x30)
    if end != len(value):
        raise NotLean("bytes after the SEQUENCE")
    fields = []
    for tag in tags:
        start, pos = der_expect(value, pos, end, tag)
        fields.append(value[start:pos])
    if pos != end:
        raise NotLean("more fields than expected")
    return fields


def der_integer(content: bytes) -> int:
    """A minimally encoded INTEGER's value; NotLean otherwise."""
    if not content:
        raise NotLean("empty INTEGER")
    if len(content) > 1 and (
        (content[0] == 0 and content[1] < 0x80) or (content[0] == 0xFF and content[1] >= 0x80)
    ):
        raise NotLean("non-minimal INTEGER")
    return int.from_bytes(content, "big", signed=True)


def _shape(children: list[tuple[int, int, int, int]], tags: tuple[int, ...]) -> None:
    if tuple(c[0] for c in children) != tags:
        raise NotLean("not the template's shape")


def _gen_time_ms(raw: bytes) -> int:
    """genTime ``YYYYMMDDhhmmss[.f[f[f]]]Z`` (a valid calendar time) in ms since the epoch."""
    if not _MILLISECOND_TIME.match(raw):
        raise NotLean("genTime is not YYYYMMDDhhmmss[.fff]Z")
    hour = _HOURS.get(raw[:10])
    if hour is None:
        try:
            moment = datetime(
                int(raw[:4]), int(raw[4:6]), int(raw[6:8]), int(raw[8:10]), tzinfo=UTC
            )
        except ValueError:
            raise NotLean("genTime malformed") from None
        if len(_HOURS) >= 4096:
            _HOURS.clear()
        hour = _HOURS[raw[:10]] = (moment - _UNIX_EPOCH) // _MS
    minute, second = int(raw[10:12]), int(raw[12:14])
    if minute > 59 or second > 59:
        raise NotLean("genTime malformed")
    millis = int(raw[15:-1].ljust(3, b"0")) if len(raw) > 15 else 0
    return hour + minute * 60_000 + second * 1000 + millis


_ACCURACY_ORDER = {0x02: 1, 0x80: 2, 0x81: 3}
_TST_OPTIONAL_ORDER = {0x30: 1, 0x02: 2, 0xA0: 3, 0xA1: 4}  # ordering: not lean


def _accuracy_ok(buf: bytes, start: int, end: int) -> None:
    """Accuracy ::= SEQUENCE { seconds INTEGER OPTIONAL, millis [0], micros [1] }."""
    rank = 0
    while start < end:
        tag, content, after = _tlv(buf, start, end)
        order = _ACCURACY_ORDER.get(tag, 0)
        if order <= rank:
            raise NotLean("accuracy out of shape")
        rank = order
        der_integer(buf[content:after])
        start = after


# What tokens of one shape share in their TSTInfo: policy, imprint algorithm, tsa, extension ids.
_TstShape = tuple[bytes, bytes, bytes, tuple[bytes, ...]]
# The TSTInfo from the serial on: serial, genTime in ms, tsa, extension ids, extension values.
_TstTail = tuple[int, int, bytes, tuple[bytes, ...], tuple[bytes, ...]]


def tst_tail(tst: bytes, pos: int, end: int) -> _TstTail:
    """serialNumber, genTime and the optional fields of a TSTInfo whose content ends at
    ``end``: accuracy, nonce, tsa and LedgerBinding extensions only, in order."""
    start, after = der_expect(tst, pos, end, 0x02)
    serial = der_integer(tst[start:after])
    start, pos = der_expect(tst, after, end, 0x18)
    gen_ms = _gen_time_ms(tst[start:pos])
    tsa = b""
    extension_ids: list[bytes] = []
    extensions: list[bytes] = []
    rank = 0
    while pos < end:
        tag, content, after = _tlv(tst, pos, end)
        order = _TST_OPTIONAL_ORDER.get(tag, 0)
        if order <= rank:
            raise NotLean("TSTInfo optional fields out of shape")
        rank = order
        if tag == 0x30:
            _accuracy_ok(tst, content, after)
        elif tag == 0x02:
            der_integer(tst[content:after])
        elif tag == 0xA0:
            tsa = tst[pos:after]
        else:
            while content < after:  # Extension: no critical flag, LedgerBinding only
                start, ext_end = der_expect(tst, content, after, 0x30)
                if not tst.startswith(_LEDGER_BINDING_OID, start):
                    raise NotLean("an extension other than LedgerBinding")
                start, value_end = der_expect(tst, start + len(_LEDGER_BINDING_OID), ext_end, 0x04)
                if value_end != ext_end:
                    raise NotLean("extension out of shape")
                extension_ids.append(_LEDGER_BINDING_OID)
                extensions.append(tst[start:value_end])
                content = ext_end
            if not extensions:
                raise NotLean("empty extensions")
        pos = after
    return serial, gen_ms, tsa, tuple(extension_ids), tuple(extensions)


def tst_head(tst: bytes) -> tuple[int, int, int, int]:
    """Positions in a TSTInfo: (content end, policy start, imprint start, serial start);
    the version is 1, the policy an OID, the imprint a SEQUENCE."""
    if not tst or tst[0] != 0x30:
        raise NotLean("TSTInfo is not a SEQUENCE")
    _, start, end = _tlv(tst, 0, len(tst))
    if end != len(tst) or not tst.startswith(_TST_VERSION_1, start):
        raise NotLean("TSTInfo out of shape")
    policy = start + len(_TST_VERSION_1)
    imprint = der_expect(tst, policy, end, 0x06)[1]
    serial = der_expect(tst, imprint, end, 0x30)[1]
    return end, policy, imprint, serial


def _split_tst(tst: bytes) -> tuple[_TstShape, LeanToken]:
    """The TSTInfo's frame part and its per-token values."""
    end, policy, imprint, serial_at = tst_head(tst)
    imprint_parts = der_children(tst, _tlv(tst, imprint, end)[1], serial_at)
    _shape(imprint_parts, (0x30, 0x04))
    serial, gen_ms, tsa, extension_ids, extensions = tst_tail(tst, serial_at, end)
    key: _TstShape = (
        tst[policy:imprint],
        tst[imprint_parts[0][1] : imprint_parts[0][3]],
        tsa,
        extension_ids,
    )
    hashed = tst[imprint_parts[1][2] : imprint_parts[1][3]]
    return key, LeanToken(serial, gen_ms, hashed, extensions)


def split_token(der: bytes) -> Split:
    (top,) = der_children(der, 0, len(der))
    info = der_children(der, top[2], top[3])
    _shape(info, (0x06, 0xA0))
    if top[0] != 0x30 or der[info[0][1] : info[0][3]] != SIGNED_DATA_OID:
        raise NotLean("not a SignedData ContentInfo")
    (signed_data,) = der_children(der, info[1][2], info[1][3])
    if signed_data[0] != 0x30:
        raise NotLean("SignedData is not a SEQUENCE")
    parts = der_children(der, signed_data[2], signed_data[3])
    tags = tuple(p[0] for p in parts)
    if tags not in ((0x02, 0x31, 0x30, 0xA0, 0x31), (0x02, 0x31, 0x30, 0x31)):
        raise NotLean("SignedData out of shape (CRLs or missing fields)")
    encap = der_children(der, parts[2][2], parts[2][3])
    _shape(encap, (0x06, 0xA0))
    (econtent_tlv,) = der_children(der, encap[1][2], encap[1][3])
    if econtent_tlv[0] != 0x04:
        raise NotLean("eContent is not a primitive OCTET STRING")
    econtent = der[econtent_tlv[2] : econtent_tlv[3]]
    (signer_info,) = der_children(der, parts[-1][2], parts[-1][3])
    if signer_info[0] != 0x30:
        raise NotLean("SignerInfo is not a SEQUENCE")
    si = der_children(der, signer_info[2], signer_info[3])
    _shape(si, (0x02, 0x30, 0x30, 0xA0, 0x30, 0x04))
    attrs_key: list[bytes] = []
    message_digest = None
    for tag, start, content, after in der_children(der, si[3][2], si[3][3]):
        attribute = der_children(der, content, after)
        _shape(attribute, (0x06, 0x31))
        if tag != 0x30:
            raise NotLean("attribute is not a SEQUENCE")
        if der[attribute[0][1] : attribute[0][3]] == MESSAGE_DIGEST_OID:
            (value,) = der_children(der, attribute[1][2], attribute[1][3])
            if value[0] != 0x04 or message_digest is not None:
                raise NotLean("messageDigest out of shape")
            message_digest = der[value[2] : value[3]]
            attrs_key.append(b"")  # where the per-token attribute sits
        else:
            attrs_key.append(der[start:after])
    if message_digest is None:
        raise NotLean("no messageDigest")
    tst_key, token = _split_tst(econtent)
    frame = tuple(der[p[1] : p[3]] for p in (*parts[:2], encap[0], *parts[3:-1]))
    signer = tuple(der[p[1] : p[3]] for p in (si[0], si[1], si[2], si[4]))
    key = (frame, signer, tuple(attrs_key), tst_key)
    attrs = der[si[3][1] : si[3][3]]
    return Split(
        key=key,
        econtent=econtent,
        message_digest=message_digest,
        signed_attrs=b"\x31" + attrs[1:],
        signature=der[si[5][2] : si[5][3]],
        token=token,
    )


# A token's per-token values as a Template splits them: eContent, messageDigest, the
# signed attributes as signed, the signature, the TSTInfo's values.
Values = tuple[bytes, bytes, bytes, bytes, LeanToken]

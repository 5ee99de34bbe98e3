"""The lean verifier's DER walker: split a token into its *frame* (every byte it shares
with the other tokens of one template) and its per-token values, or raise NotLean for
any shape it does not recognise. What the frame is, and why the split is safe, is
explained in ``verify_lean``.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from asn1crypto import cms, core

from .oids import ID_SIGNED_DATA, LEDGER_BINDING
from .verify_context import parse_gen_time

__all__ = ["LeanToken", "NotLean", "Split", "der_children", "der_integer", "split_token"]

_SIGNED_DATA_OID = cms.ContentType(ID_SIGNED_DATA).dump()
_MESSAGE_DIGEST_OID = cms.CMSAttributeType("message_digest").dump()
_LEDGER_BINDING_OID = core.ObjectIdentifier(LEDGER_BINDING).dump()
_TST_VERSION_1 = b"\x02\x01\x01"
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_MILLISECOND_TIME = re.compile(rb"[0-9]{14}(?:\.[0-9]{1,3})?Z\Z")


#: Per-token checks of the lean path; the full verifier's other checks depend on the frame.
class NotLean(Exception):
    """The token is not in a shape the lean path handles: use the full verifier."""


@dataclass(frozen=True)
class LeanToken:
    """The TSTInfo values of a token the lean path verified. ``extensions`` holds the
    DER value of each (non-critical) TSTInfo extension, in order; only LedgerBinding is
    accepted, so each is a LedgerBinding value."""

    serial: int
    gen_time: datetime
    gen_time_ms: int
    imprint: bytes
    extensions: tuple[bytes, ...]


@dataclass(frozen=True)
class Split:
    """A token split: `key` identifies its frame, the rest are its per-token values."""

    key: Hashable
    econtent: bytes
    message_digest: bytes
    signed_attrs: bytes  # re-tagged as SET OF, as signed (RFC 5652 §5.4)
    signature: bytes
    token: LeanToken


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


def der_children(buf: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """Each TLV filling ``buf[start:end]`` exactly: (tag, start, content start, end)."""
    out = []
    pos = start
    while pos < end:
        tag, content, after = _tlv(buf, pos, end)
        out.append((tag, pos, content, after))
        pos = after
    return out


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


def _accuracy_ok(buf: bytes, start: int, end: int) -> None:
    """Accuracy ::= SEQUENCE { seconds INTEGER OPTIONAL, millis [0], micros [1] }."""
    rank = 0
    for tag, _, content, after in der_children(buf, start, end):
        order = {0x02: 1, 0x80: 2, 0x81: 3}.get(tag, 0)
        if order <= rank:
            raise NotLean("accuracy out of shape")
        rank = order
        der_integer(buf[content:after])


# What tokens of one shape share in their TSTInfo: policy, imprint algorithm, tsa, extension ids.
_TstShape = tuple[bytes, bytes, bytes, tuple[bytes, ...]]


def _split_tst(tst: bytes) -> tuple[_TstShape, LeanToken]:
    """The TSTInfo's frame part and its per-token values."""
    (top,) = der_children(tst, 0, len(tst))
    if top[0] != 0x30:
        raise NotLean("TSTInfo is not a SEQUENCE")
    fields = der_children(tst, top[2], top[3])
    if len(fields) < 5:
        raise NotLean("TSTInfo too short")
    version, policy, imprint, serial, gen_time = fields[:5]
    if tst[version[1] : version[3]] != _TST_VERSION_1 or policy[0] != 0x06:
        raise NotLean("TSTInfo version or policy out of shape")
    imprint_parts = der_children(tst, imprint[2], imprint[3])
    _shape(imprint_parts, (0x30, 0x04))
    if imprint[0] != 0x30 or serial[0] != 0x02 or gen_time[0] != 0x18:
        raise NotLean("TSTInfo out of shape")
    raw_time = tst[gen_time[2] : gen_time[3]]
    if not _MILLISECOND_TIME.match(raw_time):
        raise NotLean("genTime is not YYYYMMDDhhmmss[.fff]Z")
    try:
        when, _ = parse_gen_time(raw_time)
    except Exception:  # noqa: BLE001 - Failed or ValueError: the full verifier says which
        raise NotLean("genTime malformed") from None
    tsa = b""
    extension_ids: list[bytes] = []
    extensions: list[bytes] = []
    rank = 0
    for tag, start, content, after in fields[5:]:
        order = {0x30: 1, 0x02: 2, 0xA0: 3, 0xA1: 4}.get(tag, 0)  # ordering: not lean
        if order <= rank:
            raise NotLean("TSTInfo optional fields out of shape")
        rank = order
        if tag == 0x30:
            _accuracy_ok(tst, content, after)
        elif tag == 0x02:
            der_integer(tst[content:after])
        elif tag == 0xA0:
            tsa = tst[start:after]
        else:
            for _, _, ext_content, ext_end in der_children(tst, content, after):
                parts = der_children(tst, ext_content, ext_end)
                _shape(parts, (0x06, 0x04))  # no critical flag: non-critical only
                oid = tst[parts[0][1] : parts[0][3]]
                if oid != _LEDGER_BINDING_OID:
                    raise NotLean("an extension other than LedgerBinding")
                extension_ids.append(oid)
                extensions.append(tst[parts[1][2] : parts[1][3]])
            if not extensions:
                raise NotLean("empty extensions")
    key: _TstShape = (
        tst[policy[1] : policy[3]],
        tst[imprint_parts[0][1] : imprint_parts[0][3]],
        tsa,
        tuple(extension_ids),
    )
    token = LeanToken(
        serial=der_integer(tst[serial[2] : serial[3]]),
        gen_time=when,
        gen_time_ms=(when - _UNIX_EPOCH) // _MS,
        imprint=tst[imprint_parts[1][2] : imprint_parts[1][3]],
        extensions=tuple(extensions),
    )
    return key, token


def split_token(der: bytes) -> Split:
    (top,) = der_children(der, 0, len(der))
    info = der_children(der, top[2], top[3])
    _shape(info, (0x06, 0xA0))
    if top[0] != 0x30 or der[info[0][1] : info[0][3]] != _SIGNED_DATA_OID:
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
        if der[attribute[0][1] : attribute[0][3]] == _MESSAGE_DIGEST_OID:
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

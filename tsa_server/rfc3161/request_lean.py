"""A fast path for the one shape nearly every TimeStampReq has (RFC 3161 §2.4.1).

    SEQUENCE { INTEGER 1, SEQUENCE { SEQUENCE { OID [, NULL] }, OCTET STRING },
               [OID policy], [INTEGER nonce], [BOOLEAN TRUE certReq] }

in DER with minimal lengths. `parse_lean` walks those bytes directly (about 20x cheaper
than building asn1crypto objects) and answers only when the request is one the TSA
grants; for anything else (another shape, BER, extensions, a policy or hash it does not
accept, a negative or oversized nonce, certReq FALSE spelled out) it returns None and
request.parse_request decides with the strict asn1crypto parser, which gives the exact
rejection. The tests compare both paths on generated and mutated requests.
"""

from __future__ import annotations

import functools

from tsa_server.pki import der
from tsa_server.rfc3161.oids import IMPRINT_HASHES, ImprintHash
from tsa_server.rfc3161.request_types import Profile, TimeStampRequest

_MAX_NONCE_BYTES = 32  # a positive nonce of at most 256 bits


@functools.lru_cache(maxsize=8)
def _tables(profile: Profile) -> tuple[dict[bytes, ImprintHash], dict[bytes, str]]:
    """DER AlgorithmIdentifiers (with and without NULL) -> hash; DER policy OIDs -> dotted."""
    hashes: dict[bytes, ImprintHash] = {}
    for imprint in IMPRINT_HASHES.values():
        if imprint.name in profile.accepted_hashes:
            oid = der.oid(imprint.oid)
            hashes[der.tlv(der.SEQUENCE, oid)] = imprint
            hashes[der.tlv(der.SEQUENCE, oid + b"\x05\x00")] = imprint
    policies = {der.oid(p): p for p in profile.policies}
    return hashes, policies


def _header(body: bytes, at: int, tag: int) -> tuple[int, int]:
    """(start of contents, end of contents) of a TLV with `tag` at `at`; ValueError if
    the tag differs or the length is not minimal DER (short form or 0x81/0x82)."""
    if at + 2 > len(body) or body[at] != tag:
        raise ValueError
    first = body[at + 1]
    if first < 0x80:
        start, size = at + 2, first
    elif first == 0x81 and at + 3 <= len(body) and body[at + 2] >= 0x80:
        start, size = at + 3, body[at + 2]
    elif first == 0x82 and at + 4 <= len(body) and body[at + 2] != 0:
        start, size = at + 4, int.from_bytes(body[at + 2 : at + 4], "big")
        if size < 0x100:
            raise ValueError
    else:
        raise ValueError
    end = start + size
    if end > len(body):
        raise ValueError
    return start, end


def parse_lean(body: bytes, profile: Profile) -> TimeStampRequest | None:
    """The request, if `body` is a grantable request of the common shape; else None."""
    hashes, policies = _tables(profile)
    try:
        start, end = _header(body, 0, 0x30)
        if end != len(body) or body[start : start + 3] != b"\x02\x01\x01":
            return None
        at = start + 3
        imprint_start, imprint_end = _header(body, at, 0x30)
        alg_start, alg_end = _header(body, imprint_start, 0x30)
        imprint = hashes.get(body[imprint_start:alg_end])
        if imprint is None:
            return None
        digest_start, digest_end = _header(body, alg_end, 0x04)
        if digest_end != imprint_end or digest_end - digest_start != imprint.size:
            return None
        digest = body[digest_start:digest_end]
        at = imprint_end
        policy = profile.default_policy
        if at < end and body[at] == 0x06:
            policy_start, policy_end = _header(body, at, 0x06)
            accepted = policies.get(body[at:policy_end])
            if accepted is None:
                return None
            policy, at = accepted, policy_end
        nonce = None
        if at < end and body[at] == 0x02:
            nonce_start, nonce_end = _header(body, at, 0x02)
            size = nonce_end - nonce_start
            if not 1 <= size <= _MAX_NONCE_BYTES + 1 or body[nonce_start] & 0x80:
                return None  # empty, negative or too long: the strict parser answers
            if size > 1 and body[nonce_start] == 0 and body[nonce_start + 1] < 0x80:
                return None  # not minimal
            nonce = int.from_bytes(body[nonce_start:nonce_end], "big")
            if nonce.bit_length() > 8 * _MAX_NONCE_BYTES:
                return None
            at = nonce_end
        cert_req = False
        if at < end and body[at] == 0x01:
            if body[at : at + 3] != b"\x01\x01\xff":
                return None
            cert_req, at = True, at + 3
        if at != end:
            return None  # extensions or anything else
    except ValueError:
        return None
    return TimeStampRequest(imprint, digest, policy, nonce, cert_req)

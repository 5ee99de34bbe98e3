"""Parse a TimeStampReq and apply the token profile's acceptance rules (RFC 3161 §2.4.1).

Pure: bytes in, a `TimeStampRequest` or a `RequestRejected` out. Every way a request
can be wrong maps to one PKIFailureInfo here, and nowhere else.
"""

from __future__ import annotations

from asn1crypto import core

from tsa_server.errors import FailureInfo, RequestRejected
from tsa_server.rfc3161.oids import IMPRINT_HASHES, ImprintHash
from tsa_server.rfc3161.request_lean import parse_lean
from tsa_server.rfc3161.request_types import Profile, TimeStampRequest
from tsa_server.rfc3161.verify_crypto import REFUSED

# Profile and TimeStampRequest are re-exported: services.py and the tests import them here.
__all__ = ["MAX_NONCE_BITS", "Profile", "TimeStampRequest", "parse_request", "parse_strict"]

# A nonce is a random number for replay detection (RFC 3161 §2.4.1): 64 bits is usual,
# 160 bits generous. Anything above 256 bits is not a nonce but a smuggled payload.
MAX_NONCE_BITS = 256
_NULL = b"\x05\x00"


class _AlgorithmIdentifier(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    # Parameters as Any: asn1crypto's own spec forces NULL for SHA-2 and would turn
    # "wrong parameters" into a parse error instead of badAlg.
    _fields = [("algorithm", core.ObjectIdentifier), ("parameters", core.Any, {"optional": True})]


class _MessageImprint(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    _fields = [("hash_algorithm", _AlgorithmIdentifier), ("hashed_message", core.OctetString)]


class _Extension(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    _fields = [
        ("extn_id", core.ObjectIdentifier),
        ("critical", core.Boolean, {"default": False}),
        ("extn_value", core.OctetString),
    ]


class _Extensions(core.SequenceOf):  # type: ignore[misc]  # asn1crypto is untyped
    _child_spec = _Extension


class _TimeStampReq(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    """RFC 3161 §2.4.1 TimeStampReq, with lenient inner types so each fault maps to its failInfo."""

    _fields = [
        ("version", core.Integer),
        ("message_imprint", _MessageImprint),
        ("req_policy", core.ObjectIdentifier, {"optional": True}),
        ("nonce", core.Integer, {"optional": True}),
        ("cert_req", core.Boolean, {"default": False}),
        ("extensions", _Extensions, {"implicit": 0, "optional": True}),
    ]


def _reject(failure: FailureInfo, text: str) -> RequestRejected:
    return RequestRejected(failure, text)


def _load(body: bytes) -> _TimeStampReq:
    try:
        request: _TimeStampReq = _TimeStampReq.load(body, strict=True)
        _ = request.native  # force a full parse: asn1crypto parses lazily
    except Exception:  # asn1crypto raises ValueError, TypeError, OverflowError...
        raise _reject(FailureInfo.BAD_DATA_FORMAT, "request is not a DER TimeStampReq") from None
    return request


def parse_request(body: bytes, profile: Profile) -> TimeStampRequest:
    """Decode and validate a TimeStampReq; raise RequestRejected with the right failure."""
    lean = parse_lean(body, profile)
    return lean if lean is not None else parse_strict(body, profile)


def parse_strict(body: bytes, profile: Profile) -> TimeStampRequest:
    """The full asn1crypto path: every request that is not of the lean shape, and the
    exact rejection of every bad one."""
    if not body:
        raise _reject(FailureInfo.BAD_DATA_FORMAT, "empty request")
    request = _load(body)
    if request["version"].native != 1:
        raise _reject(FailureInfo.BAD_REQUEST, "unsupported request version (only v1)")
    imprint_hash, digest = _check_imprint(request["message_imprint"], profile)
    policy = _check_policy(request["req_policy"], profile)
    nonce = _check_nonce(request["nonce"])
    if len(request["extensions"]):
        # RFC 3161 §2.4.1: extensions the server does not recognise must be refused.
        raise _reject(FailureInfo.UNACCEPTED_EXTENSION, "request extensions are not supported")
    return TimeStampRequest(
        hash=imprint_hash,
        digest=digest,
        policy=policy,
        nonce=nonce,
        cert_req=bool(request["cert_req"].native),
    )


_BROKEN = {"1.2.840.113549.2.2": "md2", "1.2.840.113549.2.4": "md4", "1.2.840.113549.2.5": "md5"}


def _not_accepted(oid: str, known: ImprintHash | None) -> str:
    """Why an imprint algorithm is refused: on purpose (MD5), by configuration, or unknown."""
    if oid in _BROKEN:
        return REFUSED[_BROKEN[oid]]
    if known is not None:
        return f"{known.name} is not accepted by this TSA's configuration ([tsa] accepted_hashes)"
    return f"hash algorithm {oid} not accepted (use SHA-256, SHA-384, SHA-512, SHA-3 or SM3)"


def _check_imprint(imprint: _MessageImprint, profile: Profile) -> tuple[ImprintHash, bytes]:
    algorithm = imprint["hash_algorithm"]
    oid = algorithm["algorithm"].dotted
    known = IMPRINT_HASHES.get(oid)
    if known is None or known.name not in profile.accepted_hashes:
        raise _reject(FailureInfo.BAD_ALG, _not_accepted(oid, known))
    parameters = algorithm["parameters"]
    if not isinstance(parameters, core.Void) and parameters.dump() != _NULL:
        raise _reject(FailureInfo.BAD_ALG, "hash algorithm parameters must be absent or NULL")
    digest = imprint["hashed_message"].native
    if len(digest) != known.size:
        raise _reject(
            FailureInfo.BAD_DATA_FORMAT,
            f"imprint length {len(digest)} does not match {known.name} ({known.size} bytes)",
        )
    return known, digest


def _check_policy(requested: core.ObjectIdentifier, profile: Profile) -> str:
    if requested.native is None:
        return profile.default_policy
    if requested.dotted not in profile.policies:
        raise _reject(FailureInfo.UNACCEPTED_POLICY, "requested policy is not accepted")
    policy: str = requested.dotted
    return policy


def _check_nonce(nonce: core.Integer) -> int | None:
    if nonce.native is None:
        return None
    # Bound the encoding before converting it: a 1 MB INTEGER must not be parsed.
    if len(nonce.contents) > MAX_NONCE_BITS // 8 + 1 or abs(nonce.native).bit_length() > 256:
        raise _reject(FailureInfo.BAD_REQUEST, f"nonce longer than {MAX_NONCE_BITS} bits")
    value: int = nonce.native
    return value

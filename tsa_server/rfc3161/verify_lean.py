"""Lean verification of tokens that share a fully verified token's fixed DER frame.

A TSA signs its tokens from one template (``token.TokenTemplate``): everything but a
few per-token values is byte-identical from one token to the next. This module splits a
token with a minimal DER walker into its *frame* (every constant part: SignedData
version, digestAlgorithms, eContentType, the certificate set, the SignerInfo's SID,
digest and signature algorithms, the signed attributes other than messageDigest, the
TSTInfo policy, imprint algorithm, tsa name and extension identifiers) and its
per-token values (TSTInfo serial, genTime, accuracy, nonce, imprint, LedgerBinding
value; messageDigest; the signature).

The first token of each frame is verified by the full verifier (``verify.verify_token``).
When every check passes, the frame is remembered with what the per-token checks need:
the signer's public key loaded once, the digest algorithm, and the validity window of
the certification path found at that token's genTime. A later token with the same frame
then gets, per token, exactly the checks whose outcome can differ from the first one's:

* structure: the TSTInfo is v1 DER in the template's shape, genTime well formed, no
  critical extension (only LedgerBinding, non-critical, is accepted);
* message_digest: the digest of the eContent equals the one messageDigest value;
* signature: the signature over the signed attributes verifies with the cached key;
* certificate_chain: genTime lies inside the validated path's validity window (the
  path's signatures, CA constraints and extensions do not depend on the token).

Every other check (signer certificate, ESS signing-certificate-v2 hash and issuerSerial,
contentType, CMSAlgorithmProtection, EKU critical and timeStamping only, tsa name)
depends only on frame bytes and so has the first token's outcome. Anything the walker
does not recognise (BER, other shapes, unsigned attributes, CRLs, ordering, unknown
extensions), a failed per-token check or a genTime outside the window gives None: the
caller then runs the full verifier, which reports the failure in its own words. The lean
path can therefore only ever accept what the full verifier accepts.

Finding a token's frame by walking it costs more than its signature check; so each
frame, once a token of it passed, also keeps a ``Template`` (``verify_lean_template``):
its constant bytes in the slices between the per-token values. A token the template
splits has that frame's key byte for byte and takes the same per-token checks; any
other token is walked as before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from asn1crypto import algos
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .verify import VerifyOptions, verify_token
from .verify_chain import validate_path
from .verify_crypto import HASHES, SignatureInvalid, hash_bytes
from .verify_crypto import _dispatch as dispatch_signature
from .verify_crypto import _kind as signature_kind
from .verify_crypto import _named_hash as named_hash
from .verify_lean_der import (
    LeanToken,
    NotLean,
    Split,
    Values,
    der_children,
    der_integer,
    split_token,
)
from .verify_lean_template import Template
from .verify_load import load_token, to_asn1_certificate, unique_certificates

# LeanToken, NotLean and the DER helpers are re-exported: `tsa audit` imports them here.
__all__ = ["LeanToken", "LeanVerifier", "NotLean", "der_children", "der_integer"]

LEAN_CHECKS = ("structure", "message_digest", "signature", "certificate_chain")
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


@dataclass(frozen=True)
class _Frame:
    """What a fully verified token's frame leaves for the per-token checks."""

    check_signature: Callable[[bytes, bytes], None]  # (signed bytes, signature); raises
    digest: Callable[[bytes], bytes]
    not_before_us: int  # the path's validity window, in microseconds since the epoch
    not_after_us: int


def _digest_function(name: str) -> Callable[[bytes], bytes]:
    constructor = getattr(hashlib, name, None)
    if name in hashlib.algorithms_guaranteed and callable(constructor):
        return lambda data: constructor(data).digest()
    try:
        hashlib.new(name)
    except ValueError:
        return lambda data: hash_bytes(name, data)
    return lambda data: hashlib.new(name, data).digest()


def _microseconds(moment: datetime) -> int:
    return (moment - _UNIX_EPOCH) // _US


class LeanVerifier:
    """Verify tokens that share a fully verified token's frame; None for any other.

    ``options`` must carry no per-token expectation (data, digest, nonce, policy, TSA
    name) nor CRLs: the lean path has nothing to compare them with. ``ignore`` names the
    full verifier's checks whose failure does not bar a frame (the audit ignores
    message_imprint: an auditor holds the tokens, not the documents). At most
    ``max_frames`` frames are remembered; tokens of further frames take the full path.
    """

    def __init__(
        self,
        options: VerifyOptions,
        *,
        ignore: frozenset[str] = frozenset({"message_imprint"}),
        max_frames: int = 64,
    ) -> None:
        expectations = ("data", "stream", "digest", "nonce", "policy", "tsa_name", "crls")
        given = [name for name in expectations if getattr(options, name)]
        if given:
            raise ValueError(f"the lean path cannot check per-token options {given}")
        self._options = options
        self._ignore = ignore
        self._max_frames = max_frames
        self._frames: dict[Hashable, _Frame | None] = {}
        # The frames' templates, the last one that split a token first.
        self._templates: list[tuple[Template, _Frame]] = []
        self._templated: set[Hashable] = set()
        self._roots = unique_certificates(to_asn1_certificate(c) for c in options.trust_roots)
        self._extra = unique_certificates(to_asn1_certificate(c) for c in options.extra_certs)
        self.lean = 0  # tokens this verifier accepted by the lean path
        self.declined = 0  # tokens it left to the full verifier
        self.templated = 0  # of the lean ones, tokens a frame's template split

    @property
    def frames(self) -> int:
        """How many frames are remembered (None entries included)."""
        return len(self._frames)

    def verify(self, token: bytes) -> LeanToken | None:
        """The token's values when it passes every check by the lean path; None when
        the full verifier must decide (another shape, or any check failing)."""
        result = self._verify(token)
        if result is None:
            self.declined += 1
        else:
            self.lean += 1
        return result

    def _verify(self, token: bytes) -> LeanToken | None:
        templates = self._templates
        for n, (template, kept) in enumerate(templates):
            try:
                values = template.split(token)
            except Exception:  # noqa: BLE001 - not this template's frame: try the next
                continue
            if n:
                templates.insert(0, templates.pop(n))
            self.templated += 1
            return _checked(kept, values)
        try:
            split = split_token(token)
        except Exception:  # noqa: BLE001 - whatever the walker trips on, the full path decides
            return None
        if split.key in self._frames:
            frame = self._frames[split.key]
        else:
            frame = self._establish(token, split)
            if frame is None:
                return None  # the full verifier has the final word on this token
            self._template(token, split, frame)
            return split.token  # verified in full just now
        if frame is None:
            return None
        verified = _checked(frame, split.values())
        if verified is not None:
            self._template(token, split, frame)
        return verified

    def _template(self, token: bytes, split: Split, frame: _Frame) -> None:
        """Remember the template of a token that passed in ``frame``, once per frame."""
        if split.key in self._templated:
            return
        self._templated.add(split.key)
        try:
            self._templates.append((Template(token), frame))
        except Exception:  # noqa: BLE001 - never expected: the frame's tokens are walked
            pass

    def _establish(self, token: bytes, split: Split) -> _Frame | None:
        """Verify ``token`` in full; when it passes, remember its frame."""
        if len(self._frames) >= self._max_frames:
            return None
        report = verify_token(token, self._options)
        if any(not c.passed and c.name not in self._ignore for c in report.checks):
            return None  # not remembered: the next token of this frame is tried afresh
        try:
            frame = self._frame_of(token, report.fields)
        except Exception:  # noqa: BLE001 - never expected for an accepted token; stay full
            frame = None
        self._frames[split.key] = frame
        return frame

    def _frame_of(self, token: bytes, fields: object) -> _Frame | None:
        signer_fields = getattr(fields, "signer", None)
        if signer_fields is None:
            return None
        content = load_token(token).content_info
        assert content is not None  # the full verifier accepted the token
        signed = content["content"]
        embedded = [c.chosen for c in signed["certificates"] if c.name == "certificate"]
        candidates = [*self._extra, *embedded, *self._roots]
        wanted = signer_fields.sha256_fingerprint
        signer = next(
            (c for c in candidates if hashlib.sha256(c.dump()).hexdigest() == wanted), None
        )
        gen_time = fields.gen_time  # type: ignore[attr-defined]
        if signer is None:
            return None
        path = validate_path(signer, [*self._extra, *embedded], self._roots, gen_time).path
        if not path:
            return None
        info = signed["signer_infos"][0]
        digest = info["digest_algorithm"]["algorithm"].native
        if digest not in HASHES:
            return None
        try:
            check = _signature_checker(signer, info["signature_algorithm"], digest)
        except (SignatureInvalid, ValueError):
            return None
        return _Frame(
            check_signature=check,
            digest=_digest_function(digest),
            not_before_us=_microseconds(max(c.not_valid_before for c in path)),
            not_after_us=_microseconds(min(c.not_valid_after for c in path)),
        )


def _checked(frame: _Frame, values: Values) -> LeanToken | None:
    """The per-token checks of a token of ``frame``: genTime inside the path's
    validity, messageDigest, signature. The token's values, or None."""
    econtent, message_digest, signed_attrs, signature, token = values
    if not frame.not_before_us <= token.gen_time_ms * 1000 <= frame.not_after_us:
        return None
    if frame.digest(econtent) != message_digest:
        return None
    try:
        frame.check_signature(signed_attrs, signature)
    except (InvalidSignature, SignatureInvalid, ValueError):
        return None
    return token


def _signature_checker(
    signer: object, algorithm: algos.SignedDigestAlgorithm, digest: str
) -> Callable[[bytes, bytes], None]:
    """verify_crypto.verify_signature with its algorithm choices and key load done once."""
    kind = signature_kind(algorithm)
    named = None if kind in ("ed25519", "ed448") else named_hash(algorithm)
    if kind == "rsassa_pss":
        named = algorithm["parameters"]["hash_algorithm"]["algorithm"].native
    if named is not None and named != digest:
        raise SignatureInvalid("the signature algorithm names another digest")
    key = serialization.load_der_public_key(signer.public_key.dump())  # type: ignore[attr-defined]
    if kind == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey) and digest in HASHES:
        # verify_crypto._dispatch's ECDSA branch, its algorithm object made once
        ecdsa, verify = ec.ECDSA(HASHES[digest]()), key.verify

        def check_ecdsa(data: bytes, signature: bytes) -> None:
            verify(signature, data, ecdsa)

        return check_ecdsa

    def check(data: bytes, signature: bytes) -> None:
        dispatch_signature(kind, key, algorithm, digest, data, signature)

    return check

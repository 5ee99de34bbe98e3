"""Build TimeStampTokens from pre-encoded DER pieces (the issuance hot path).

Everything that does not change between tokens of one signer — the certificate bag,
algorithm identifiers, the signer's IssuerAndSerialNumber, the constant signed
attributes — is encoded once with asn1crypto in `TokenTemplate.__init__`. Per token we
encode TSTInfo, hash it, splice the signed attributes, sign them and splice the
SignerInfo and SignedData. The result is byte-identical to the asn1crypto encoding
(tested), at a small fraction of its cost.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import algos, cms, tsp
from asn1crypto import x509 as asn1_x509

from tsa_server.pki import der
from tsa_server.rfc3161.oids import ID_CT_TSTINFO, ID_SIGNED_DATA, LEDGER_BINDING
from tsa_server.rfc3161.request_types import TimeStampRequest
from tsa_server.signing.base import (
    SIGNATURE_DIGEST_FOR_IMPRINT,
    KeySpec,
    SignatureAlgorithm,
    signature_algorithm,
)

_TST_VERSION = der.integer(1)
_SIGNER_INFO_VERSION = der.integer(1)  # SID is issuerAndSerialNumber (RFC 5652 §5.3)
_SIGNED_DATA_VERSION = der.integer(3)  # eContentType is not id-data (RFC 5652 §5.1)
_ECONTENT_TYPE = cms.ContentType(ID_CT_TSTINFO).dump()
_CONTENT_TYPE_SIGNED_DATA = cms.ContentType(ID_SIGNED_DATA).dump()
_MESSAGE_DIGEST_OID = cms.CMSAttributeType("message_digest").dump()


@dataclass(frozen=True)
class TokenValues:
    """The per-token values the sequencer decides."""

    serial: int
    gen_time: datetime  # aware UTC, millisecond precision
    accuracy_micros: int  # > 0
    extensions_der: bytes = b""  # complete [1] IMPLICIT Extensions, or empty


@dataclass(frozen=True)
class _DigestTemplate:
    """The pieces of SignedData that depend only on the signature digest."""

    algorithm: SignatureAlgorithm
    digest_algorithm_der: bytes
    attrs_before_md: bytes
    attrs_after_md: bytes


class TokenTemplate:
    """Pre-encoded constant parts of every token signed by one key and certificate chain."""

    def __init__(
        self,
        key_spec: KeySpec,
        chain: list[asn1_x509.Certificate],
        *,
        rsa_pss: bool = False,
        include_tsa_name: bool = True,
        include_chain: bool = False,
    ):
        signer_cert = chain[0]
        self._key_spec = key_spec
        self._rsa_pss = rsa_pss
        # The last (genTime, accuracy) and their DER.
        self._time_der: tuple[tuple[datetime, int] | None, bytes] = (None, b"")
        bag = chain if include_chain else chain[:1]
        # CertificateSet is a SET OF: DER orders it by encoding (X.690 §11.6), so with the
        # full chain the signer certificate is first only when it sorts first. Verifiers
        # find the signer by its SID, never by position.
        encoded = sorted(c.dump() for c in bag)
        self._certificates_der = der.tlv(der.CONTEXT_0, b"".join(encoded))
        self._sid_der = cms.IssuerAndSerialNumber(
            {"issuer": signer_cert.issuer, "serial_number": signer_cert.serial_number}
        ).dump()
        # [0] EXPLICIT GeneralName, whose directoryName alternative is [4] EXPLICIT Name.
        # Always the signer's subject: verifiers reject a tsa name the certificate lacks.
        self._tsa_name_der = (
            der.tlv(der.CONTEXT_0, der.tlv(0xA4, signer_cert.subject.dump()))
            if include_tsa_name
            else b""
        )
        self._signing_cert_attr = self._signing_certificate_v2(signer_cert)
        self._by_digest = {
            d: self._digest_template(d) for d in sorted(set(SIGNATURE_DIGEST_FOR_IMPRINT.values()))
        }

    @staticmethod
    def _signing_certificate_v2(cert: asn1_x509.Certificate) -> cms.CMSAttribute:
        """ESSCertIDv2 (RFC 5035) with SHA-256 certHash and issuerSerial."""
        ess_cert_id = {
            "hash_algorithm": {"algorithm": "sha256"},
            "cert_hash": hashlib.sha256(cert.dump()).digest(),
            "issuer_serial": {
                "issuer": [asn1_x509.GeneralName({"directory_name": cert.issuer})],
                "serial_number": cert.serial_number,
            },
        }
        value = tsp.SigningCertificateV2({"certs": [ess_cert_id]})
        return cms.CMSAttribute({"type": "signing_certificate_v2", "values": [value]})

    def _digest_template(self, digest_name: str) -> _DigestTemplate:
        algorithm = signature_algorithm(self._key_spec, digest_name, rsa_pss=self._rsa_pss)
        digest_alg = algos.DigestAlgorithm({"algorithm": algorithm.digest})
        protection = cms.CMSAttribute(
            {
                "type": "cms_algorithm_protection",
                "values": [
                    {
                        "digest_algorithm": digest_alg,
                        "signature_algorithm": algorithm.identifier,
                    }
                ],
            }
        )
        content_type = cms.CMSAttribute({"type": "content_type", "values": [ID_CT_TSTINFO]})
        placeholder = bytes(hashlib.new(algorithm.digest).digest_size)
        md_attr = _message_digest_attribute(placeholder)
        # DER orders SET OF by encoding; the order is fixed per digest because the
        # attributes differ before the variable digest bytes (checked in the tests).
        attrs = sorted(
            [content_type.dump(), self._signing_cert_attr.dump(), protection.dump(), md_attr]
        )
        at = attrs.index(md_attr)
        return _DigestTemplate(
            algorithm=algorithm,
            digest_algorithm_der=digest_alg.dump(),
            attrs_before_md=b"".join(attrs[:at]),
            attrs_after_md=b"".join(attrs[at + 1 :]),
        )

    def signature_digest(self, request: TimeStampRequest) -> str:
        """The digest the signature uses: it follows the imprint, SHA-256 at least."""
        return self._by_digest[SIGNATURE_DIGEST_FOR_IMPRINT[request.hash.name]].algorithm.digest

    def tst_info(self, request: TimeStampRequest, fields: TokenValues) -> bytes:
        """DER TSTInfo (RFC 3161 §2.4.2). ordering is FALSE, so DER omits it."""
        # A batch shares one genTime and accuracy: encode them once.
        key = (fields.gen_time, fields.accuracy_micros)
        if self._time_der[0] != key:
            self._time_der = (
                key,
                der.generalized_time(fields.gen_time) + _accuracy(fields.accuracy_micros),
            )
        parts = [
            _TST_VERSION,
            der.oid(request.policy),
            request.imprint_der,
            der.integer(fields.serial),
            self._time_der[1],
        ]
        if request.nonce is not None:
            parts.append(der.integer(request.nonce))
        parts.append(self._tsa_name_der)
        parts.append(fields.extensions_der)
        return der.tlv(der.SEQUENCE, b"".join(parts))

    def signed_attributes(self, tst_info: bytes, digest_name: str) -> bytes:
        """The content octets of the signed attributes SET (to be tagged 0x31 or 0xA0)."""
        template = self._by_digest[digest_name]
        md = hashlib.new(template.algorithm.digest, tst_info).digest()
        return template.attrs_before_md + _message_digest_attribute(md) + template.attrs_after_md

    def assemble(
        self,
        tst_info: bytes,
        signed_attrs: bytes,
        signature: bytes,
        digest_name: str,
        cert_req: bool,
    ) -> bytes:
        """The TimeStampToken: ContentInfo wrapping SignedData (RFC 5652 §5.1)."""
        template = self._by_digest[digest_name]
        signer_info = der.tlv(
            der.SEQUENCE,
            _SIGNER_INFO_VERSION
            + self._sid_der
            + template.digest_algorithm_der
            + der.tlv(der.CONTEXT_0, signed_attrs)
            + template.algorithm.der
            + der.tlv(der.OCTET_STRING, signature),
        )
        encap = der.tlv(
            der.SEQUENCE,
            _ECONTENT_TYPE + der.tlv(der.CONTEXT_0, der.tlv(der.OCTET_STRING, tst_info)),
        )
        signed_data = der.tlv(
            der.SEQUENCE,
            _SIGNED_DATA_VERSION
            + der.tlv(der.SET, template.digest_algorithm_der)
            + encap
            + (self._certificates_der if cert_req else b"")
            + der.tlv(der.SET, signer_info),
        )
        return der.tlv(
            der.SEQUENCE, _CONTENT_TYPE_SIGNED_DATA + der.tlv(der.CONTEXT_0, signed_data)
        )


def to_be_signed(signed_attrs: bytes) -> bytes:
    """The bytes the signature covers: the attributes re-tagged as SET OF (RFC 5652 §5.4)."""
    return der.tlv(der.SET, signed_attrs)


def _message_digest_attribute(digest: bytes) -> bytes:
    value = der.tlv(der.SET, der.tlv(der.OCTET_STRING, digest))
    return der.tlv(der.SEQUENCE, _MESSAGE_DIGEST_OID + value)


def _accuracy(micros: int) -> bytes:
    """Accuracy ::= SEQUENCE { seconds, millis [0], micros [1] } with zero parts omitted."""
    seconds, rest = divmod(micros, 1_000_000)
    millis, micros_part = divmod(rest, 1000)
    body = b""
    if seconds:
        body += der.integer(seconds)
    if millis:
        body += der.tlv(0x80, der.integer(millis)[2:])
    if micros_part:
        body += der.tlv(0x81, der.integer(micros_part)[2:])
    return der.tlv(der.SEQUENCE, body)


class BindingEncoder:
    """Per-token DER of the LedgerBinding extension (ledger/binding.py), spliced: the
    version and origin are encoded once, the anchor once per checkpoint."""

    def __init__(self, origin: str):
        self._head = der.integer(1) + der.tlv(0x0C, origin.encode("utf-8"))
        self._oid = der.oid(LEDGER_BINDING)
        self._anchor = b""
        self.set_anchor(0, hashlib.sha256(b"").digest())

    def set_anchor(self, size: int, root: bytes) -> None:
        self._anchor = der.integer(size) + der.tlv(der.OCTET_STRING, root)

    def extensions(self, leaf_index: int) -> bytes:
        """[1] IMPLICIT Extensions holding one non-critical LedgerBinding extension."""
        value = der.tlv(der.SEQUENCE, self._head + der.integer(leaf_index) + self._anchor)
        extension = der.tlv(der.SEQUENCE, self._oid + der.tlv(der.OCTET_STRING, value))
        return der.tlv(der.CONTEXT_1, extension)

"""X.509 for the key ceremony: CSRs and certificates signed by keys in the token,
the development CA, and the checks a TSA certificate must pass before the server starts.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from asn1crypto import algos as asn1_algos
from asn1crypto import csr as asn1_csr
from asn1crypto import keys as asn1_keys
from asn1crypto import pem
from asn1crypto import x509 as asn1_x509

from tsa_server.errors import CertificateError
from tsa_server.pki.tsa_purpose import purpose_problem
from tsa_server.signing.base import Signer, signature_algorithm

TIME_STAMPING_EKU = "time_stamping"


def _sign_with(signer: Signer, tbs_der: bytes) -> tuple[asn1_algos.SignedDigestAlgorithm, bytes]:
    alg = signature_algorithm(signer.key_spec, "sha256", rsa_pss=signer.rsa_pss)
    return alg.identifier, signer.sign(tbs_der, alg.digest)


def _key_identifier(spki_der: bytes) -> bytes:
    # RFC 7093 §2 method 1: SHA-256 of the subjectPublicKey bit string, truncated to 160 bits.
    spki = asn1_keys.PublicKeyInfo.load(spki_der)
    return hashlib.sha256(spki["public_key"].contents[1:]).digest()[:20]


def name_from_text(common_name: str, organization: str | None = None) -> asn1_x509.Name:
    attrs: dict[str, str] = {}
    if organization:
        attrs["organization_name"] = organization
    attrs["common_name"] = common_name
    return asn1_x509.Name.build(attrs, use_printable=False)


def issue_certificate(
    issuer_signer: Signer,
    issuer_cert: asn1_x509.Certificate | None,
    subject: asn1_x509.Name,
    subject_spki: bytes,
    *,
    now: datetime,
    days: int,
    ca: bool,
) -> asn1_x509.Certificate:
    """Issue a CA certificate (self-signed when issuer_cert is None) or a TSA certificate."""
    ski = _key_identifier(subject_spki)
    issuer_name = issuer_cert.subject if issuer_cert else subject
    aki = issuer_cert.key_identifier if issuer_cert else ski
    extensions = [
        {"extn_id": "basic_constraints", "critical": True, "extn_value": {"ca": ca}},
        {
            "extn_id": "key_usage",
            "critical": True,
            "extn_value": {"key_cert_sign", "crl_sign"} if ca else {"digital_signature"},
        },
        {"extn_id": "key_identifier", "critical": False, "extn_value": ski},
        {
            "extn_id": "authority_key_identifier",
            "critical": False,
            "extn_value": {"key_identifier": aki},
        },
    ]
    if not ca:
        # RFC 3161 §2.3: the TSA certificate carries exactly one EKU, critical.
        extensions.append(
            {"extn_id": "extended_key_usage", "critical": True, "extn_value": [TIME_STAMPING_EKU]}
        )
    start = now.replace(microsecond=0) - timedelta(minutes=5)
    tbs = asn1_x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": secrets.randbits(127) | (1 << 126),
            "signature": signature_algorithm(
                issuer_signer.key_spec, "sha256", rsa_pss=issuer_signer.rsa_pss
            ).identifier,
            "issuer": issuer_name,
            "validity": {
                "not_before": asn1_x509.Time({"utc_time": start}),
                "not_after": asn1_x509.Time({"utc_time": start + timedelta(days=days)}),
            },
            "subject": subject,
            "subject_public_key_info": asn1_keys.PublicKeyInfo.load(subject_spki),
            "extensions": extensions,
        }
    )
    alg, signature = _sign_with(issuer_signer, tbs.dump())
    return asn1_x509.Certificate(
        {"tbs_certificate": tbs, "signature_algorithm": alg, "signature_value": signature}
    )


def make_csr(signer: Signer, subject: asn1_x509.Name) -> asn1_csr.CertificationRequest:
    """A PKCS#10 request for a TSA certificate, signed by the key in the token."""
    eku_request = asn1_x509.Extensions(
        [
            {"extn_id": "extended_key_usage", "critical": True, "extn_value": [TIME_STAMPING_EKU]},
            {"extn_id": "key_usage", "critical": True, "extn_value": {"digital_signature"}},
        ]
    )
    info = asn1_csr.CertificationRequestInfo(
        {
            "version": "v1",
            "subject": subject,
            "subject_pk_info": asn1_keys.PublicKeyInfo.load(signer.public_key_info()),
            "attributes": [{"type": "extension_request", "values": [eku_request]}],
        }
    )
    alg, signature = _sign_with(signer, info.dump())
    return asn1_csr.CertificationRequest(
        {"certification_request_info": info, "signature_algorithm": alg, "signature": signature}
    )


def to_pem(der: bytes, kind: str = "CERTIFICATE") -> bytes:
    armored: bytes = pem.armor(kind, der)  # asn1crypto is untyped
    return armored


def check_tsa_certificate(cert: asn1_x509.Certificate, spki_der: bytes, now: datetime) -> None:
    """Raise CertificateError unless `cert` may sign time-stamp tokens with this key now."""
    if cert.public_key.dump() != asn1_keys.PublicKeyInfo.load(spki_der).dump():
        raise CertificateError("the TSA certificate does not match the signing key in the token")
    problem = purpose_problem(cert, require_digital_signature=True)
    if problem is not None:
        raise CertificateError(f"the TSA certificate cannot sign time-stamp tokens: {problem}")
    validity = cert["tbs_certificate"]["validity"]
    not_before, not_after = validity["not_before"].native, validity["not_after"].native
    if now < not_before:
        raise CertificateError(f"the TSA certificate is not valid before {not_before.isoformat()}")
    if now >= not_after:
        raise CertificateError(f"the TSA certificate expired at {not_after.isoformat()}")


def utcnow() -> datetime:
    return datetime.now(UTC)

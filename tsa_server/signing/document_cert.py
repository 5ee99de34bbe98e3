"""The document-signing certificate (issue 19 item 3): the certificate of the key in the
token that signs evidence certificate PDFs, issued by the development CA at `tsa init`
(a production CA issues it from `tsa keys csr --label document-signing`).

It is an end-entity certificate for signatures on documents, never a TSA certificate:
keyUsage digitalSignature and nonRepudiation (contentCommitment: the signer stands by
the content), extendedKeyUsage documentSigning (RFC 9336) and emailProtection (what
PDF readers and NSS, behind pdfsig, accept for document signers), not critical.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509

from tsa_server.signing.base import Signer, signature_algorithm
from tsa_server.signing.certs import _key_identifier, _sign_with

DOCUMENT_SIGNING_EKU = "1.3.6.1.5.5.7.3.36"  # id-kp-documentSigning, RFC 9336
EMAIL_PROTECTION_EKU = "email_protection"


def issue_document_certificate(
    ca_signer: Signer,
    ca_cert: asn1_x509.Certificate,
    subject: asn1_x509.Name,
    subject_spki: bytes,
    *,
    now: datetime,
    days: int = 825,
) -> asn1_x509.Certificate:
    """A document-signing certificate for `subject_spki`, signed by the CA's key."""
    ski = _key_identifier(subject_spki)
    extensions = [
        {"extn_id": "basic_constraints", "critical": True, "extn_value": {"ca": False}},
        {
            "extn_id": "key_usage",
            "critical": True,
            "extn_value": {"digital_signature", "non_repudiation"},
        },
        {"extn_id": "key_identifier", "critical": False, "extn_value": ski},
        {
            "extn_id": "authority_key_identifier",
            "critical": False,
            "extn_value": {"key_identifier": ca_cert.key_identifier},
        },
        {
            "extn_id": "extended_key_usage",
            "critical": False,
            "extn_value": [DOCUMENT_SIGNING_EKU, EMAIL_PROTECTION_EKU],
        },
    ]
    start = now.replace(microsecond=0) - timedelta(minutes=5)
    tbs = asn1_x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": secrets.randbits(127) | (1 << 126),
            "signature": signature_algorithm(
                ca_signer.key_spec, "sha256", rsa_pss=ca_signer.rsa_pss
            ).identifier,
            "issuer": ca_cert.subject,
            "validity": {
                "not_before": asn1_x509.Time({"utc_time": start}),
                "not_after": asn1_x509.Time({"utc_time": start + timedelta(days=days)}),
            },
            "subject": subject,
            "subject_public_key_info": asn1_keys.PublicKeyInfo.load(subject_spki),
            "extensions": extensions,
        }
    )
    alg, signature = _sign_with(ca_signer, tbs.dump())
    return asn1_x509.Certificate(
        {"tbs_certificate": tbs, "signature_algorithm": alg, "signature_value": signature}
    )

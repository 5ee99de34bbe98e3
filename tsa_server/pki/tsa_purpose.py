"""RFC 3161 §2.3: what a certificate must say to sign time-stamp tokens. One rule, used
when the server starts (signing/certs.py) and when any token is verified
(rfc3161/verify_tsa.py)."""

from __future__ import annotations

from asn1crypto import x509

TIME_STAMPING = "1.3.6.1.5.5.7.3.8"  # id-kp-timeStamping


def purpose_problem(
    cert: x509.Certificate, *, require_digital_signature: bool = False
) -> str | None:
    """Why ``cert`` may not sign time-stamp tokens, or None.

    Exactly one extendedKeyUsage extension, critical, holding only id-kp-timeStamping;
    a keyUsage, when present, allowing signatures (digitalSignature or nonRepudiation,
    RFC 5280 §4.2.1.3). ``require_digital_signature``: this TSA's own certificate must
    also state digitalSignature (the stricter profile it issues under).
    """
    ekus = [
        e
        for e in cert["tbs_certificate"]["extensions"]
        if e["extn_id"].native == "extended_key_usage"
    ]
    if len(ekus) != 1:
        return (
            f"it has {len(ekus)} extendedKeyUsage extensions: it needs exactly one, critical, "
            "holding only id-kp-timeStamping"
        )
    if not ekus[0]["critical"].native:
        return "its extendedKeyUsage extension is not critical"
    purposes = [p.dotted for p in ekus[0]["extn_value"].parsed]
    if purposes != [TIME_STAMPING]:
        return f"its extendedKeyUsage must hold only id-kp-timeStamping and no other: {purposes}"
    usage = cert.key_usage_value
    if require_digital_signature:
        if usage is None or "digital_signature" not in usage.native:
            return "its keyUsage must include digitalSignature"
    elif usage is not None and not {"digital_signature", "non_repudiation"} & usage.native:
        return "its keyUsage allows neither signatures nor commitment"
    return None

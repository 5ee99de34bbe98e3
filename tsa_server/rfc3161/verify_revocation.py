"""Revocation of a validated certification path at the time of stamping.

CRLs are supplied by the caller (they are never read from the token). Each
certificate below the trust anchor must be covered by a usable CRL from its issuer,
interpreted with RFC 5280 §6.3 and the TSA-specific rules of RFC 3161 §4: a TSA
certificate revoked for key compromise, or without a reason code, invalidates every
token it signed, whatever genTime says.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import crl, x509

from .verify_chain import label
from .verify_crypto import SignatureInvalid, verify_signature
from .verify_load import same_name

__all__ = ["RevocationResult", "check_revocation"]

_COMPROMISE = frozenset({"key_compromise", "ca_compromise", "aa_compromise"})


@dataclass(frozen=True)
class RevocationResult:
    passed: bool
    reason: str


def _crl_problem(item: crl.CertificateList, issuer: x509.Certificate, at: datetime) -> str | None:
    """Why ``item`` cannot vouch for certificates of ``issuer`` at ``at`` (RFC 5280 §6.3.3)."""
    tbs = item["tbs_cert_list"]
    if not same_name(tbs["issuer"], issuer.subject):
        return "issued by someone else"
    usage = issuer.key_usage_value
    if usage is not None and "crl_sign" not in usage.native:
        return f"{label(issuer)} may not sign CRLs (keyUsage lacks cRLSign)"
    try:
        verify_signature(
            issuer.public_key,
            item["signature_algorithm"],
            None,
            tbs.dump(),
            item["signature"].native,
        )
    except (SignatureInvalid, ValueError) as exc:
        return f"its signature does not verify: {exc}"
    unknown = item.critical_extensions - {"crl_number", "authority_key_identifier"}
    if unknown:
        return f"it has unsupported critical extensions {sorted(map(str, unknown))}"
    next_update = tbs["next_update"].native
    if tbs["this_update"].native < at and next_update is not None and next_update < at:
        return f"it expired ({next_update.isoformat()}) before genTime"
    return None


def _entry_problem(
    cert: x509.Certificate, entry: crl.RevokedCertificate, at: datetime, is_tsa: bool
) -> str | None:
    """RFC 3161 §4 for the TSA certificate, RFC 5280 §6.3 for CA certificates."""
    unknown = entry.critical_extensions - {"crl_reason", "invalidity_date"}
    if unknown:
        return (
            f"could not be checked: the CRL entry for {label(cert)} has unsupported "
            f"critical extensions {sorted(map(str, unknown))}"
        )
    reason = entry.crl_reason_value.native if entry.crl_reason_value is not None else None
    when = entry["revocation_date"].native.isoformat()
    if reason == "remove_from_crl":
        return None
    if reason in _COMPROMISE:
        return f"{label(cert)} was revoked on {when} for {reason}: nothing it signed is trusted"
    if reason is None and is_tsa:
        return (
            f"{label(cert)} was revoked on {when} without a reason code, which per "
            "RFC 3161 §4 invalidates every token signed with its key"
        )
    if entry["revocation_date"].native <= at:
        why = reason or "no reason given"
        return f"{label(cert)} was revoked on {when} ({why}), before genTime"
    return None


def _coverage(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    crls: Sequence[crl.CertificateList],
    at: datetime,
) -> crl.CertificateList | str:
    """The newest usable CRL from ``issuer``, or why there is none."""
    problems = [(c, _crl_problem(c, issuer, at)) for c in crls]
    usable = [c for c, p in problems if p is None]
    if usable:
        return max(usable, key=lambda c: c["tbs_cert_list"]["this_update"].native)
    why = [p for _, p in problems if p and p != "issued by someone else"]
    detail = f" ({'; '.join(why)})" if why else ""
    return f"could not be checked: no usable CRL from {label(issuer)} for {label(cert)}{detail}"


def check_revocation(
    path: tuple[x509.Certificate, ...], crls: Sequence[crl.CertificateList], at: datetime
) -> RevocationResult:
    """Every certificate below the trust anchor must be covered by a usable CRL."""
    for index, cert in enumerate(path[:-1]):
        newest = _coverage(cert, path[index + 1], crls, at)
        if isinstance(newest, str):
            return RevocationResult(False, newest)
        for entry in newest["tbs_cert_list"]["revoked_certificates"]:
            if entry["user_certificate"].native == cert.serial_number:
                problem = _entry_problem(cert, entry, at, index == 0)
                if problem:
                    return RevocationResult(False, problem)
    count = len(path) - 1
    return RevocationResult(True, f"none of the {count} certificate(s) below the root is revoked")

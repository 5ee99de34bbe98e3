"""Certification path and revocation checks at the time of stamping.

A time-stamp token outlives its TSA certificate: what matters is that every
certificate on the path was valid when the token was produced. The path is
validated at ``genTime`` (RFC 5280 §6.1 with the validation time set to genTime,
as RFC 3161 §4 and the long-term validation practice of RFC 3126 intend), and
CRLs supplied by the caller are interpreted with the TSA-specific revocation
rules of RFC 3161 §4.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import crl, x509

from .verify_crypto import SignatureInvalid, verify_signature
from .verify_load import name_text, same_name

__all__ = ["PathResult", "RevocationResult", "check_revocation", "label", "validate_path"]

_MAX_DEPTH = 10
#: Critical extensions whose semantics this module implements or may safely ignore.
_UNDERSTOOD = frozenset(
    {
        "basic_constraints",
        "key_usage",
        "extended_key_usage",
        "subject_alt_name",
        "issuer_alt_name",
        "certificate_policies",
        "key_identifier",
        "authority_key_identifier",
    }
)
_COMPROMISE = frozenset({"key_compromise", "ca_compromise", "aa_compromise"})


def label(cert: x509.Certificate) -> str:
    """Quoted subject of a certificate, for messages."""
    return f"'{name_text(cert.subject)}'"


@dataclass(frozen=True)
class PathResult:
    """A validated path (signer first, trust anchor last), or why there is none."""

    path: tuple[x509.Certificate, ...]
    reason: str


@dataclass(frozen=True)
class RevocationResult:
    passed: bool
    reason: str


def _same_key(a: x509.Certificate, b: x509.Certificate) -> bool:
    return same_name(a.subject, b.subject) and a.public_key.dump() == b.public_key.dump()


def _is_anchor(cert: x509.Certificate, anchors: Sequence[x509.Certificate]) -> bool:
    return any(cert.dump() == a.dump() or _same_key(cert, a) for a in anchors)


def _signed_by(child: x509.Certificate, issuer: x509.Certificate) -> str | None:
    """None when ``issuer``'s key made ``child``'s signature (RFC 5280 §6.1.3 (a)(1))."""
    if child["tbs_certificate"]["signature"].dump() != child["signature_algorithm"].dump():
        return f"{label(child)} has mismatched inner and outer signature algorithms"
    try:
        verify_signature(
            issuer.public_key,
            child["signature_algorithm"],
            None,
            child["tbs_certificate"].dump(),
            child["signature_value"].native,
        )
    except (SignatureInvalid, ValueError) as exc:
        return f"the signature on {label(child)} does not verify with {label(issuer)}: {exc}"
    return None


def _issuers(
    cert: x509.Certificate, pool: Sequence[x509.Certificate]
) -> Iterator[x509.Certificate]:
    aki = cert.authority_key_identifier
    for cand in pool:
        if not same_name(cand.subject, cert.issuer):
            continue
        if aki is not None and cand.key_identifier is not None and aki != cand.key_identifier:
            continue
        yield cand


def _paths(
    path: tuple[x509.Certificate, ...],
    pool: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    dead_ends: list[str],
) -> Iterator[tuple[x509.Certificate, ...]]:
    """Depth-first: every chain of verified signatures from path[0] up to a trust anchor."""
    cert = path[-1]
    if _is_anchor(cert, anchors):
        yield path
        return
    if len(path) >= _MAX_DEPTH:
        dead_ends.append(f"the path from {label(path[0])} is longer than {_MAX_DEPTH}")
        return
    used = {c.dump() for c in path}
    found = False
    for issuer in _issuers(cert, [*anchors, *pool]):
        if issuer.dump() in used:
            continue
        found = True
        problem = _signed_by(cert, issuer)
        if problem:
            dead_ends.append(problem)
            continue
        yield from _paths((*path, issuer), pool, anchors, dead_ends)
    if not found:
        dead_ends.append(_no_issuer(cert, [*anchors, *pool]))


def _no_issuer(cert: x509.Certificate, pool: Sequence[x509.Certificate]) -> str:
    issuer = f"'{name_text(cert.issuer)}'"
    if any(same_name(c.subject, cert.issuer) for c in pool):
        aki = (cert.authority_key_identifier or b"").hex()
        return (
            f"certificates named {issuer} are at hand, but none has the key identifier "
            f"{aki} that {label(cert)} names: it was issued by another {issuer}"
        )
    where = "embedded, supplied or trusted"
    return f"no certificate for the issuer {issuer} of {label(cert)} is {where}"


def _validity_problem(cert: x509.Certificate, at: datetime) -> str | None:
    start, end = cert.not_valid_before, cert.not_valid_after
    if start <= at <= end:
        return None
    return (
        f"{label(cert)} is not valid at genTime {at.isoformat()} "
        f"(valid from {start.isoformat()} to {end.isoformat()})"
    )


def _issuer_problem(path: tuple[x509.Certificate, ...], index: int) -> str | None:
    """RFC 5280 §6.1.4 (k), (l), (m), (n) for the issuer at ``index``."""
    cert = path[index]
    is_v1_anchor = index == len(path) - 1 and cert["tbs_certificate"]["version"].native == "v1"
    if is_v1_anchor:
        return None
    if not cert.ca:
        return f"{label(cert)} issues certificates but basicConstraints cA is not set"
    usage = cert.key_usage_value
    if usage is not None and "key_cert_sign" not in usage.native:
        return f"{label(cert)} issues certificates but its keyUsage lacks keyCertSign"
    below = sum(1 for c in path[1:index] if not c.self_issued)
    limit = cert.max_path_length
    if limit is not None and below > limit:
        return f"{label(cert)} allows {limit} intermediate(s) below it, the path has {below}"
    return None


def _path_problem(path: tuple[x509.Certificate, ...], at: datetime) -> str | None:
    for index, cert in enumerate(path):
        problem = _validity_problem(cert, at)
        if problem is None and index > 0:
            problem = _issuer_problem(path, index)
        if problem is None and index < len(path) - 1:
            unknown = sorted(str(e) for e in cert.critical_extensions - _UNDERSTOOD)
            if unknown:
                problem = (
                    f"could not be checked: {label(cert)} has critical extensions this "
                    f"verifier does not process: {', '.join(unknown)}"
                )
        if problem is not None:
            return problem
    return None


def validate_path(
    signer: x509.Certificate,
    pool: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    at: datetime,
) -> PathResult:
    """Find a path from ``signer`` to one of ``anchors`` that is valid at ``at``.

    ``pool`` holds untrusted candidates (embedded and caller-supplied certificates).
    A trust anchor may be the signer itself (a pinned TSA certificate).
    """
    if not anchors:
        return PathResult((), "could not be checked: no trust roots were given")
    dead_ends: list[str] = []
    first_problem = None
    for path in _paths((signer,), pool, anchors, dead_ends):
        problem = _path_problem(path, at)
        if problem is None:
            shown = " -> ".join(label(c) for c in path)
            return PathResult(path, f"{shown} (trusted) is valid at genTime {at.isoformat()}")
        first_problem = first_problem or problem
    if first_problem is not None:
        return PathResult((), first_problem)
    reason = dead_ends[0] if dead_ends else "no path to a trust root"
    return PathResult((), f"no path to a trust root: {reason}")


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

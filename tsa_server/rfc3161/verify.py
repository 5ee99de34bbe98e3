"""Verification of RFC 3161 time-stamp tokens.

Pure functions over bytes: the only I/O is reading a file-like stream the caller
passes for hashing. A token (a TimeStampResp or a bare TimeStampToken; DER, BER,
PEM or base64) is checked against the data (bytes, a stream or a digest), trust
roots, optional supplied certificates and CRLs, and optional expectations about
nonce, policy and TSA name.

Every check in :data:`CHECKS` runs and is reported, in that fixed order, with a
plain-language reason. A check that cannot run counts as failed ("could not be
checked: ..."), so ``valid`` is true only when every check passed or was not
requested. :func:`verify_token_or_raise` raises :class:`VerificationError` instead,
in the manner of pyca/cryptography's verification calls.

Example::

    report = verify_token(token, VerifyOptions(trust_roots=roots, data=b"hello"))
    for check in report.checks:
        print(check.name, check.passed, check.reason)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from asn1crypto import core, x509

from . import verify_checks as cms_checks
from . import verify_tsa as tsa_checks
from .verify_context import CannotCheck, Context, Failed, Skipped
from .verify_load import (
    CertificateDecodeError,
    LoadedToken,
    TokenDecodeError,
    load_certificates,
    load_crls,
    load_token,
    name_text,
    to_asn1_certificate,
    to_asn1_crl,
    unique_certificates,
)
from .verify_options import VerifyOptions

__all__ = [
    "CHECKS",
    "Accuracy",
    "CertificateDecodeError",
    "CheckResult",
    "LoadedToken",
    "SignerFields",
    "TokenDecodeError",
    "TokenFields",
    "VerificationError",
    "VerificationReport",
    "VerifyOptions",
    "load_certificates",
    "load_crls",
    "load_token",
    "verify_token",
    "verify_token_or_raise",
]

#: (name, check, reference) in the fixed order of every report.
CHECKS: tuple[tuple[str, Callable[[Context], str], str], ...] = (
    ("status", cms_checks.check_status, "RFC 3161 §2.4.2"),
    ("structure", cms_checks.check_structure, "RFC 3161 §2.4.2, RFC 5652 §5.1-5.2"),
    ("single_signer", cms_checks.check_single_signer, "RFC 3161 §2.4.2"),
    ("signer_certificate", cms_checks.check_signer_certificate, "RFC 5652 §5.3"),
    ("signature", cms_checks.check_signature, "RFC 5652 §5.4, §5.6"),
    ("message_digest", cms_checks.check_message_digest, "RFC 5652 §11.2"),
    ("content_type", cms_checks.check_content_type, "RFC 5652 §11.1, RFC 3161 §2.4.2"),
    ("signing_certificate", cms_checks.check_signing_certificate, "RFC 3161 §2.4.1, RFC 5816"),
    ("algorithm_protection", cms_checks.check_algorithm_protection, "RFC 6211 §2"),
    ("tsa_certificate_purpose", tsa_checks.check_tsa_certificate_purpose, "RFC 3161 §2.3"),
    ("certificate_chain", tsa_checks.check_certificate_chain, "RFC 5280 §6, at genTime"),
    ("revocation", tsa_checks.check_revocation_status, "RFC 5280 §6.3, RFC 3161 §4"),
    ("message_imprint", tsa_checks.check_message_imprint, "RFC 3161 §2.4.2"),
    ("nonce", tsa_checks.check_nonce, "RFC 3161 §2.4.2"),
    ("policy", tsa_checks.check_policy, "RFC 3161 §2.4.2"),
    ("tsa_name", tsa_checks.check_tsa_name, "RFC 3161 §2.4.2"),
    ("expected_tsa_name", tsa_checks.check_expected_tsa_name, "RFC 3161 §2.4.2"),
)


@dataclass(frozen=True)
class CheckResult:
    """One check: its name, whether it passed, why, and the specification it applies.

    ``skipped`` marks a check the caller did not ask for (it counts as passed).
    """

    name: str
    passed: bool
    reason: str
    reference: str = ""
    skipped: bool = False


@dataclass(frozen=True)
class Accuracy:
    """TSTInfo accuracy (RFC 3161 §2.4.2); absent components are zero."""

    seconds: int = 0
    millis: int = 0
    micros: int = 0

    def as_timedelta(self) -> timedelta:
        return timedelta(seconds=self.seconds, milliseconds=self.millis, microseconds=self.micros)


@dataclass(frozen=True)
class SignerFields:
    """The certificate that signed the token."""

    subject: str
    issuer: str
    serial_number: int
    not_before: datetime
    not_after: datetime
    sha256_fingerprint: str


@dataclass(frozen=True)
class TokenFields:
    """What the token says. ``gen_time`` is aware UTC (microseconds at most);
    ``gen_time_text`` is ISO 8601 with every fractional digit the token carries."""

    kind: str
    status: int | None
    serial_number: int
    gen_time: datetime
    gen_time_text: str
    policy: str
    imprint_algorithm: str
    imprint_hex: str
    accuracy: Accuracy | None
    ordering: bool
    nonce: int | None
    tsa_name: str | None
    signer: SignerFields | None


@dataclass(frozen=True)
class VerificationReport:
    """The verdict: ``valid`` only if no check failed. ``fields`` is None when the
    token could not be read far enough to have any."""

    valid: bool
    checks: tuple[CheckResult, ...]
    fields: TokenFields | None

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def check(self, name: str) -> CheckResult:
        """The result of the check called ``name``; KeyError if there is none."""
        for result in self.checks:
            if result.name == name:
                return result
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: datetimes as ISO 8601 text, everything else as is."""
        return {key: _jsonable(value) for key, value in asdict(self).items()}


class VerificationError(Exception):
    """Raised by :func:`verify_token_or_raise`; ``check`` is the first failed check."""

    def __init__(self, report: VerificationReport) -> None:
        self.report = report
        self.check = report.failures[0]
        super().__init__(f"{self.check.name}: {self.check.reason}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _run(name: str, check: Callable[[Context], str], ref: str, ctx: Context) -> CheckResult:
    try:
        return CheckResult(name, True, check(ctx), ref)
    except Skipped as exc:
        return CheckResult(name, True, f"not requested: {exc}", ref, skipped=True)
    except Failed as exc:
        return CheckResult(name, False, str(exc), ref)
    except CannotCheck as exc:
        return CheckResult(name, False, f"could not be checked: {exc}", ref)
    except Exception as exc:  # malformed input surfacing late: fail closed, say what broke
        why = f"{type(exc).__name__}: {exc}"
        return CheckResult(name, False, f"could not be checked: malformed token ({why})", ref)


def _undecodable(reason: str) -> VerificationReport:
    checks = [CheckResult("decoding", False, reason, "RFC 3161 §2.4.2")]
    checks += [
        CheckResult(name, False, "could not be checked: the token could not be decoded", ref)
        for name, _, ref in CHECKS
    ]
    return VerificationReport(False, tuple(checks), None)


def _context(loaded: LoadedToken, options: VerifyOptions) -> Context:
    crls = [item for c in options.crls for item in to_asn1_crl(c)]
    return Context(
        loaded=loaded,
        options=options,
        trust_roots=unique_certificates(to_asn1_certificate(c) for c in options.trust_roots),
        extra_certs=unique_certificates(to_asn1_certificate(c) for c in options.extra_certs),
        crls=crls,
    )


def verify_token(
    token: bytes | str | LoadedToken, options: VerifyOptions | None = None
) -> VerificationReport:
    """Verify a time-stamp response or token and report every check.

    Malformed tokens give a report, not an exception. Raises TypeError or
    CertificateDecodeError only for unusable ``options`` (a caller error).
    """
    options = options or VerifyOptions()
    if isinstance(token, LoadedToken):
        loaded = token
    else:
        try:
            loaded = load_token(token)
        except TokenDecodeError as exc:
            return _undecodable(f"the input is not a time-stamp token: {exc}")
    ctx = _context(loaded, options)
    decoded = CheckResult("decoding", True, f"decoded a {loaded.kind}", "RFC 3161 §2.4.2")
    results = (decoded, *(_run(name, check, ref, ctx) for name, check, ref in CHECKS))
    valid = all(r.passed for r in results)
    try:
        fields = _fields(ctx)
    except Exception:  # fields are informative only; a malformed token already failed
        fields = None
    return VerificationReport(valid, results, fields)


def verify_token_or_raise(
    token: bytes | str | LoadedToken, options: VerifyOptions | None = None
) -> VerificationReport:
    """Like :func:`verify_token`, but raise VerificationError unless the token is valid."""
    report = verify_token(token, options)
    if not report.valid:
        raise VerificationError(report)
    return report


def _signer_fields(cert: x509.Certificate | None) -> SignerFields | None:
    if cert is None:
        return None
    return SignerFields(
        subject=name_text(cert.subject),
        issuer=name_text(cert.issuer),
        serial_number=cert.serial_number,
        not_before=cert.not_valid_before,
        not_after=cert.not_valid_after,
        sha256_fingerprint=hashlib.sha256(cert.dump()).hexdigest(),
    )


def _accuracy(value: core.Asn1Value) -> Accuracy | None:
    if isinstance(value, core.Void):
        return None
    native = value.native
    return Accuracy(*(native.get(k) or 0 for k in ("seconds", "millis", "micros")))


def _tsa_text(value: core.Asn1Value) -> str | None:
    if isinstance(value, core.Void):
        return None
    if value.name == "directory_name":
        return name_text(value.chosen)
    return f"{value.name}:{value.native}"


def _fields(ctx: Context) -> TokenFields | None:
    tst, gen_time, gen_text = ctx.tst_info, ctx.gen_time, ctx.gen_time_text
    if tst is None or gen_time is None or gen_text is None:
        return None
    imprint = tst["message_imprint"]
    return TokenFields(
        kind=ctx.loaded.kind,
        status=ctx.loaded.status,
        serial_number=tst["serial_number"].native,
        gen_time=gen_time,
        gen_time_text=gen_text,
        policy=tst["policy"].dotted,
        imprint_algorithm=imprint["hash_algorithm"]["algorithm"].native,
        imprint_hex=imprint["hashed_message"].native.hex(),
        accuracy=_accuracy(tst["accuracy"]),
        ordering=bool(tst["ordering"].native),
        nonce=tst["nonce"].native,
        tsa_name=_tsa_text(tst["tsa"]),
        signer=_signer_fields(ctx.signer_cert),
    )

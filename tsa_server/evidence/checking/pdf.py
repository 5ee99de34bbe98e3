"""Checking an evidence certificate PDF (issue 19 item 3) as a relying party brings it:
the PAdES signature by the document-signing key and the document time stamp, each
validated by pyHanko against the configured trust roots (intact, valid, trusted, and no
change after signing but the document time stamp itself), then the `.tsr` the PDF
carries as an associated file, whose imprint is the file digest the certificate
certifies. The token is verified afterwards by POST /verify's verifier (`combine`).

The PDF comes from anyone: pyHanko reads it with decoding limits (every stream and the
whole document), the embedded token is bounded in size, and the caller runs this in a
worker process within a CPU and memory budget (bounds.py). A file that does not start
like a PDF is refused; one that starts like a PDF but cannot be read is reported broken.
"""

from __future__ import annotations

import io
import warnings
from datetime import datetime
from typing import Any

from asn1crypto import x509 as asn1_x509
from cryptography.utils import CryptographyDeprecationWarning

with warnings.catch_warnings():
    warnings.simplefilter("ignore", CryptographyDeprecationWarning)  # see certificate_sign
    from pyhanko.pdf_utils.decode_limits import (
        DecodeLimits,
        DocumentDecodeBudget,
        StreamDecodeLimits,
    )
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.diff_analysis import ModificationLevel
    from pyhanko.sign.validation import validate_pdf_signature, validate_pdf_timestamp
    from pyhanko.sign.validation.status import SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext

from tsa_server.evidence.checking import DocumentCheck, DocumentRejected, Findings, Trust
from tsa_server.evidence.checking.token_facts import document_token

#: Largest embedded token read (POST /verify's default bound on a token).
MAX_TOKEN_BYTES = 256 * 1024
_LIMITS = DecodeLimits(
    per_stream=StreamDecodeLimits(max_ratio=1100, max_output_size=16 << 20),
    document_budget=DocumentDecodeBudget(base_allowance=64 << 20, max_ratio=20),
)
_WHY_LIMIT = 300


def _why(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= _WHY_LIMIT else text[:_WHY_LIMIT] + "…"


def _name(cert: asn1_x509.Certificate | None) -> str:
    if cert is None:
        return "an unknown signer"
    return str(cert.subject.human_friendly)


def check_certificate(pdf: bytes, trust: Trust) -> Findings:
    """The checks of a certificate PDF and the token it carries."""
    if not pdf.startswith(b"%PDF-"):
        raise DocumentRejected(400, "this file is not a PDF (it does not begin with %PDF-)")
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False, decode_limits=_LIMITS)
        signatures = list(reader.embedded_signatures)
    except MemoryError:
        raise
    except Exception as exc:  # pyHanko raises many types on a damaged file
        reason = f"the file cannot be read as a PDF: it is damaged ({_why(exc)})"
        return Findings("certificate", (DocumentCheck("pdf_readable", False, reason),))
    checks = [DocumentCheck("pdf_readable", True, f"a PDF with {len(signatures)} signature(s)")]
    facts: list[tuple[str, str]] = []
    context = _context(trust)
    checks += _signature_checks(signatures, context, facts)
    checks += _timestamp_checks(signatures, context, trust, facts)
    tsr, check = _embedded_token(reader)
    checks.append(check)
    facts_of_token = document_token(tsr) if tsr is not None else None
    if tsr is not None and facts_of_token is None:
        checks[-1] = DocumentCheck(
            "embedded_token", False, "the attached .tsr is not a time-stamp token"
        )
    if facts_of_token is None:
        return Findings("certificate", tuple(checks), tsr, facts=tuple(facts))
    digest = facts_of_token.facts.imprint.hex()
    facts.append(("certified_digest", f"{facts_of_token.facts.algorithm.upper()} {digest}"))
    return Findings(
        "certificate",
        tuple(checks),
        tsr,
        digest,
        facts_of_token.facts.algorithm,
        "the certificate's own token: compare it with your file's digest",
        tuple(facts),
    )


def _context(trust: Trust) -> ValidationContext:
    roots = [asn1_x509.Certificate.load(d) for d in trust.roots]
    others = [asn1_x509.Certificate.load(d) for d in trust.certificates]
    return ValidationContext(
        trust_roots=roots, other_certs=others, allow_fetching=False, revocation_mode="soft-fail"
    )


def _signature_checks(
    signatures: list[Any], context: ValidationContext, facts: list[tuple[str, str]]
) -> list[DocumentCheck]:
    found = [s for s in signatures if s.sig_object_type == "/Sig"]
    if len(found) != 1:
        why = f"the PDF has {len(found)} signatures by a signing key; a certificate has one"
        return [DocumentCheck("pdf_signature", False, why)]
    try:
        status = validate_pdf_signature(found[0], context, ts_validation_context=context)
    except MemoryError:
        raise
    except Exception as exc:
        return [
            DocumentCheck("pdf_signature", False, f"the signature cannot be checked: {_why(exc)}")
        ]
    signer = _name(status.signing_cert)
    facts.append(("signer", signer))
    if not status.intact:
        intact = DocumentCheck(
            "pdf_signature",
            False,
            "BROKEN: the signed bytes were changed after signing (their digest is not the "
            "one signed)",
        )
    elif not status.valid:
        intact = DocumentCheck("pdf_signature", False, f"the signature by {signer} does not verify")
    else:
        intact = DocumentCheck("pdf_signature", True, f"intact: the signature by {signer} verifies")
    if status.trusted:
        trusted = DocumentCheck("pdf_signer", True, f"{signer} chains to a configured trust root")
    else:
        trusted = DocumentCheck(
            "pdf_signer", False, f"{signer} does not chain to a trust root configured here"
        )
    level = status.modification_level
    if level is not None and level <= ModificationLevel.LTA_UPDATES and status.docmdp_ok:
        changes = DocumentCheck(
            "pdf_unchanged",
            True,
            "nothing was changed after signing but the document time stamp",
        )
    else:
        what = level.name if level is not None else "unknown changes"
        changes = DocumentCheck(
            "pdf_unchanged",
            False,
            f"MODIFIED after signing ({what}): later revisions change the signed document",
        )
    return [intact, trusted, changes]


def _timestamp_checks(
    signatures: list[Any],
    context: ValidationContext,
    trust: Trust,
    facts: list[tuple[str, str]],
) -> list[DocumentCheck]:
    found = [s for s in signatures if s.sig_object_type == "/DocTimeStamp"]
    if len(found) != 1 or signatures[-1] is not found[-1]:
        why = f"the PDF has {len(found)} document time stamps; a certificate ends with one"
        return [DocumentCheck("pdf_document_timestamp", False, why)]
    try:
        status = validate_pdf_timestamp(found[0], context)
    except MemoryError:
        raise
    except Exception as exc:
        why = f"the document time stamp cannot be checked: {_why(exc)}"
        return [DocumentCheck("pdf_document_timestamp", False, why)]
    tsa = _name(status.signing_cert)
    ours = status.signing_cert is not None and status.signing_cert.dump() in trust.certificates
    when: datetime = status.timestamp
    stamped = when.strftime("%Y-%m-%d %H:%M:%S UTC")
    facts.append(("signed_at", stamped))
    facts.append(("timestamp_by", tsa + (" (this TSA)" if ours else "")))
    if not status.intact or not status.valid:
        return [
            DocumentCheck(
                "pdf_document_timestamp",
                False,
                "BROKEN: the document time stamp does not match the file's bytes",
            )
        ]
    if not status.trusted:
        why = f"the document time stamp by {tsa} does not chain to a trust root configured here"
        return [DocumentCheck("pdf_document_timestamp", False, why)]
    if status.coverage is not SignatureCoverageLevel.ENTIRE_FILE:
        why = "MODIFIED: bytes were added after the document time stamp"
        return [DocumentCheck("pdf_document_timestamp", False, why)]
    return [
        DocumentCheck(
            "pdf_document_timestamp",
            True,
            f"intact: {tsa} time-stamped the whole file at {stamped}",
        )
    ]


def _embedded_token(reader: PdfFileReader) -> tuple[bytes | None, DocumentCheck]:
    """The `.tsr` among the catalog's associated files (/AF), bounded in size."""
    try:
        specs = reader.root.get("/AF") or []
        for ref in specs:
            spec = ref.get_object()
            name = str(spec.get("/UF") or spec.get("/F") or "")
            if not name.lower().endswith(".tsr"):
                continue
            stream = spec["/EF"]["/F"].get_object()
            if len(stream.encoded_data) > MAX_TOKEN_BYTES:
                return None, DocumentCheck(
                    "embedded_token", False, f"the attached {name} is too large"
                )
            data = stream.data
            if len(data) > MAX_TOKEN_BYTES:
                return None, DocumentCheck(
                    "embedded_token", False, f"the attached {name} is too large"
                )
            return bytes(data), DocumentCheck(
                "embedded_token", True, f"the certificate carries its token as {name}"
            )
    except MemoryError:
        raise
    except Exception as exc:
        return None, DocumentCheck(
            "embedded_token", False, f"the attached token cannot be read: {_why(exc)}"
        )
    return None, DocumentCheck(
        "embedded_token", False, "the PDF carries no .tsr as an associated file"
    )

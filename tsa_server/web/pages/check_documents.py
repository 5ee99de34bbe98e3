"""The verification center's documents (issue 18 item 7, issue 19 item 3):

``POST /check/certificate``  multipart: csrf, certificate (an evidence certificate PDF)
``POST /check/kit``          multipart: csrf, kit (an evidence kit ZIP)

HTTP framing only. The body is bounded before it is read (`limits`: the document's own
bound, never above [verify] max_data_bytes) and at most MAX_READING documents are held
at once (a third is answered busy at once); the document is checked by
evidence/checking/ in a verifier worker process (web/verify/pool.py), within a CPU and
memory budget; the token it carries is then verified by POST /verify's `verification`
(same verifier, trust roots, ledger section) and the report rendered like /check's.
A refused document is a 4xx page with the reason; a busy verifier a 503 page.
"""

from __future__ import annotations

from typing import Any

from aiohttp import BodyPartReader, web

from tsa_server.evidence.checking import (
    KIT_MAX_BYTES,
    PDF_MAX_BYTES,
    DocumentRejected,
    Findings,
    Trust,
    combine,
)
from tsa_server.evidence.checking.worker import check_document
from tsa_server.rfc3161.verify_load import to_asn1_certificate
from tsa_server.web.handlers import STATE, WebState
from tsa_server.web.ledger.logs import LOGS
from tsa_server.web.pages.guard import page
from tsa_server.web.pages.render import error_page, language, render, translate
from tsa_server.web.pages.security import CsrfRefused, check_csrf, person_of
from tsa_server.web.serving import SlowBody
from tsa_server.web.verify.handler import VERIFIER, verification
from tsa_server.web.verify.input import BadInput, from_fields

#: Documents held in memory at once (each up to its bound), read or being checked.
MAX_READING = 2
_FIELD_LIMIT = 4096
_FRAMING = 64 * 1024
_reading = 0  # the event loop's only: no lock


def limits(state: WebState) -> dict[str, int]:
    """The largest certificate and kit this page reads, in bytes."""
    return {
        "certificate": min(PDF_MAX_BYTES, state.max_data_bytes),
        "kit": min(KIT_MAX_BYTES, state.max_data_bytes),
    }


def _trust(request: web.Request, state: WebState) -> Trust:
    own = state.issuer.keys.chains() or [state.tsa_chain]
    tokens = request.app[LOGS].get("tokens")
    return Trust(
        roots=tuple(to_asn1_certificate(c).dump() for c in state.trust_roots),
        certificates=tuple(to_asn1_certificate(c).dump() for chain in own for c in chain),
        ledger_vkey=tokens.vkey if tokens is not None else "",
    )


async def _read(part: BodyPartReader, limit: int) -> bytes:
    chunks, size = [], 0
    while chunk := await part.read_chunk(min(1 << 20, limit + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise DocumentRejected(413, f"the file exceeds {limit >> 20} MiB")
    return b"".join(chunks)


async def _document(request: web.Request, kind: str, limit: int) -> bytes:
    """The form's document part, after its CSRF token; DocumentRejected otherwise."""
    if request.content_type != "multipart/form-data":
        raise DocumentRejected(415, "send the verification center's form")
    if (request.content_length or 0) > limit + _FRAMING:
        raise DocumentRejected(413, f"the file exceeds {limit >> 20} MiB")
    fields: dict[str, bytes] = {}
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name not in ("csrf", kind):
                raise DocumentRejected(400, "unexpected form field")
            if part.name in fields:
                raise DocumentRejected(400, f"the field {part.name} is given twice")
            if part.name == kind:
                check_csrf(request, fields.get("csrf", b"").decode("ascii", "replace"))
            fields[part.name] = await _read(part, limit if part.name == kind else _FIELD_LIMIT)
    except (DocumentRejected, CsrfRefused, SlowBody):  # SlowBody: the serving layer's 408
        raise
    except Exception as exc:  # aiohttp's multipart parser raises many kinds
        raise DocumentRejected(400, f"malformed form: {type(exc).__name__}") from None
    check_csrf(request, fields.get("csrf", b"").decode("ascii", "replace"))
    if not fields.get(kind):
        raise DocumentRejected(400, "choose the file")
    return fields[kind]


async def _checked(request: web.Request, kind: str) -> web.StreamResponse:
    global _reading
    await person_of(request)
    lang = language(request)
    state = request.app[STATE]
    busy = translate(lang, "The verifier is busy: try again in a second.")
    if _reading >= MAX_READING:
        return error_page(request, 503, busy)
    _reading += 1
    try:
        body = await _document(request, kind, limits(state)[kind])
        findings = await request.app[VERIFIER].call(
            check_document, kind, body, _trust(request, state)
        )
    except DocumentRejected as exc:
        return error_page(request, exc.status, exc.reason)
    finally:
        _reading -= 1
    if findings is None:
        return error_page(request, 503, busy)
    token_report = await _token_report(request, findings)
    if token_report == {}:
        return error_page(request, 503, busy)
    report = combine(findings, token_report)
    return render(request, "check_result.html", {"report": report})


async def _token_report(request: web.Request, findings: Findings) -> dict[str, Any] | None:
    """POST /verify's report on the document's token with the digest it must certify;
    None when there is none to verify, {} when the verifier is busy."""
    if findings.token is None or findings.digest is None:
        return None
    try:
        given = from_fields(findings.token, findings.digest)
    except BadInput:
        return None
    report = await verification(request, given)
    return {} if report is None else report


@page
async def check_certificate(request: web.Request) -> web.StreamResponse:
    return await _checked(request, "certificate")


@page
async def check_kit(request: web.Request) -> web.StreamResponse:
    return await _checked(request, "kit")

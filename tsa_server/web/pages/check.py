"""The verification center (验证中心), public, no sign-in:

``GET  /check``   the form: a .tsr, and the file (hashed in the browser, never sent) or
                  its SHA-256 digest; ``?serial=`` goes on to that time stamp's page,
                  GET /verify/serial/{serial} (web/verify/page.py)
``POST /check``   multipart: csrf, token, digest -> a readable report page

The report is POST /verify's (web/verify/handler.py `verification`: the same verifier,
the same trust roots, the same ledger section); this module only reads the form and
renders the answer. Malformed input is a 400 page with the verifier's reason.
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import BodyPartReader, web

from ledger.serials import serial_candidates
from tsa_server.web.handlers import STATE
from tsa_server.web.pages import check_documents
from tsa_server.web.pages.guard import page
from tsa_server.web.pages.render import error_page, language, render, translate
from tsa_server.web.pages.security import check_csrf, person_of
from tsa_server.web.verify.handler import verification
from tsa_server.web.verify.input import BadInput, from_fields

_FIELD_LIMIT = 4096
_PARTS = ("csrf", "token", "digest")


@page
async def check_form(request: web.Request) -> web.StreamResponse:
    await person_of(request)
    serial = request.query.get("serial", "").strip().replace(" ", "").replace(":", "")
    if serial:
        try:
            serial_candidates(serial)
        except ValueError:
            lang = language(request)
            message = translate(lang, "A serial number is hexadecimal (0x…) or decimal.")
            return error_page(request, 400, message)
        raise web.HTTPSeeOther("/verify/serial/" + quote(serial, safe=""))
    limits = check_documents.limits(request.app[STATE])
    return render(request, "check.html", {"limits_mib": {k: v >> 20 for k, v in limits.items()}})


async def _read(part: BodyPartReader, limit: int) -> bytes:
    chunks, size = [], 0
    while chunk := await part.read_chunk(min(65536, limit + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise BadInput(413, f"the {part.name} exceeds {limit} bytes")
    return b"".join(chunks)


async def _fields(request: web.Request) -> dict[str, bytes]:
    if request.content_type != "multipart/form-data":
        raise BadInput(415, "send the verification center's form")
    token_limit = request.app[STATE].max_token_bytes
    if (request.content_length or 0) > token_limit + 4 * _FIELD_LIMIT:
        raise BadInput(413, "the form is too large: send the token and the file's digest")
    fields: dict[str, bytes] = {}
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name not in _PARTS:
                raise BadInput(400, "unexpected form field: send the token and a digest")
            if part.name in fields:
                raise BadInput(400, f"the field {part.name} is given twice")
            limit = token_limit if part.name == "token" else _FIELD_LIMIT
            fields[part.name] = await _read(part, limit)
    except BadInput:
        raise
    except Exception as exc:  # aiohttp's multipart parser raises many kinds
        raise BadInput(400, f"malformed form: {type(exc).__name__}") from None
    return fields


@page
async def check(request: web.Request) -> web.StreamResponse:
    await person_of(request)
    lang = language(request)
    try:
        fields = await _fields(request)
        check_csrf(request, fields.get("csrf", b"").decode("ascii", "replace"))
        token = fields.get("token", b"")
        if not token:
            raise BadInput(400, translate(lang, "Choose the time-stamp token (.tsr) file."))
        digest = fields.get("digest", b"").decode("utf-8", "replace").replace(":", "")
        if not digest.strip():
            raise BadInput(400, translate(lang, "Choose the file, or enter its SHA-256 digest."))
        given = from_fields(token, digest.replace(" ", ""))
    except BadInput as exc:
        return error_page(request, exc.status, exc.reason)
    report = await verification(request, given)
    if report is None:
        busy = translate(lang, "The verifier is busy: try again in a second.")
        return error_page(request, 503, busy)
    return render(request, "check_result.html", {"report": report})

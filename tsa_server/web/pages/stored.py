"""Apply for stored time-stamps (存证): the originals are uploaded and kept.

``GET  /apply/stored``    the form (files or a folder, depositor, work content, the
                          applicant's statement); static/stored.js drives it
``POST /apply/precheck``  JSON: the files' digests (hashed in the browser) and the form
                          -> the credits the batch uses, the balance, and each file this
                          organisation already had certified; the fields are checked by
                          the upload's own metadata check, before any byte is sent
``POST /apply/upload``    the upload itself: exactly POST /api/v1/deposits/upload's
                          body and handler (web/evidence/deposits.py `upload`), run for
                          the person's principal; its JSON answer goes back to the
                          script, which shows each item's result. The browser shows the
                          upload's progress and may cancel it (nothing is then stored)

Both POSTs carry the page's CSRF token in the X-CSRF-Token header (the script sends
them; another site can neither read the token nor send that header).
"""

from __future__ import annotations

import inspect
from typing import Any

from aiohttp import web

from tsa_server.accounts.key_rules import Scope
from tsa_server.accounts.people import Person
from tsa_server.evidence.deposit_forms import check_upload_metadata
from tsa_server.fees import FieldError
from tsa_server.web.auth import PRINCIPAL
from tsa_server.web.bodies import read_json_object
from tsa_server.web.errors import DOMAIN_ERRORS, BadRequest, error_response, json_error
from tsa_server.web.evidence import deposits as evidence_deposits
from tsa_server.web.evidence.context import service_of
from tsa_server.web.pages.deposit import SHARED, earlier_items
from tsa_server.web.pages.guard import page
from tsa_server.web.pages.render import beijing, language, render, translate
from tsa_server.web.pages.security import CsrfRefused, check_csrf, person_of, signed_in

HEADER = "X-CSRF-Token"
REFUSED: tuple[type[Exception], ...] = (*DOMAIN_ERRORS, CsrfRefused)


@page
@signed_in
async def stored_form(request: web.Request, person: Person) -> web.StreamResponse:
    person.principal.require(Scope.DEPOSIT)
    service = service_of(request)
    balance = await service.off_loop(service.balance, person.member.org_id)
    context = {
        "balance": balance,
        "max_items": service.settings.max_batch_items,
        "max_bytes": service.settings.max_upload_bytes,
    }
    return render(request, "apply_stored.html", context)


async def _person(request: web.Request) -> Person:
    """The signed-in person allowed to deposit, the CSRF header checked (JSON errors)."""
    person = await person_of(request)
    if person is None:
        raise BadRequest(401, "sign in again")
    check_csrf(request, request.headers.get(HEADER))
    person.principal.require(Scope.DEPOSIT)
    return person


def _json_refusal(request: web.Request, exc: Exception) -> web.Response:
    if isinstance(exc, CsrfRefused):
        lang = language(request)
        return json_error(403, translate(lang, "The page is too old: reload it and try again."))
    if isinstance(exc, BadRequest):
        return json_error(exc.status, exc.reason)
    return error_response(exc)


async def precheck(request: web.Request) -> web.StreamResponse:
    try:
        person = await _person(request)
        service = service_of(request)
        org = person.member.org_id
        body = await read_json_object(request)
        items = body.get("items")
        if not isinstance(items, list) or not items:
            raise FieldError({"items": "choose at least one file"})
        if len(items) > service.settings.max_batch_items:
            raise FieldError({"items": f"at most {service.settings.max_batch_items} per batch"})
        metadata: dict[str, Any] = {k: body[k] for k in SHARED if body.get(k)}
        metadata["items"] = [
            {"sha256": i.get("sha256"), "file_name": i.get("file_name", "")}
            if isinstance(i, dict)
            else i
            for i in items
        ]
        check_upload_metadata(metadata)  # the upload's own check (FieldError, 422)
        earlier = await service.off_loop(earlier_items, service, org, {"items": items})
        balance = await service.off_loop(service.balance, org)
    except REFUSED as exc:
        return _json_refusal(request, exc)
    lang = language(request)
    units = len(items)
    if units == 1:  # plural forms: one msgid each (render.py's catalogs)
        summary = translate(lang, "This batch uses %(units)s credit; your balance is %(balance)s.")
    else:
        summary = translate(lang, "This batch uses %(units)s credits; your balance is %(balance)s.")
    answer = {
        "units": units,
        "balance": balance,
        "enough": balance >= units,
        "summary": summary % {"units": units, "balance": balance},
        "already": [
            [{"id": e["id"], "at": beijing(e["certified_at"])} for e in found] for found in earlier
        ],
    }
    if not answer["enough"]:
        answer["error"] = translate(
            lang,
            "Not enough credits: this batch needs %(needed)s, your usable balance is "
            "%(available)s. Nothing was debited. Top up your wallet, or send fewer files.",
        ) % {"needed": units, "available": balance}
    return web.json_response(answer, headers={"Cache-Control": "no-store"})


async def upload(request: web.Request) -> web.StreamResponse:
    try:
        person = await _person(request)
        request[PRINCIPAL] = person.principal
        handler = inspect.unwrap(evidence_deposits.upload)  # the API's, past its key check
        response: web.StreamResponse = await handler(request)
        return response
    except REFUSED as exc:
        return _json_refusal(request, exc)

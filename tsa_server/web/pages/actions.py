"""What a member does to one protected file, from its page (/files/{item_id}):

``GET  /files/{id}/delete-original``  the confirmation step: download it first
``POST /files/{id}/delete-original``  S-8, with "I downloaded it" ticked (R-10)
``POST /files/{id}/auto-renew``       S-7 [EXT] renewal on (on=1) or off (on=0)
``POST /files/{id}/reinstate``        S-10 within the grace window
``POST /files/{id}/reupload``         S-9: multipart, the csrf field, then the file

Each is the JSON API's use case (web/evidence/items.py calls the same service methods,
with the same deposit scope): the service decides what the item's state allows (409),
what it costs (402) and whether the confirmation was given (422). Another
organisation's item is a 404 like a missing one. Every POST checks the CSRF token
first, then goes back to the item's page.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator

from aiohttp import BodyPartReader, ClientPayloadError, web

from tsa_server.accounts.key_rules import Scope
from tsa_server.accounts.people import Person
from tsa_server.web.errors import BadRequest
from tsa_server.web.evidence.context import item_id_of, service_of
from tsa_server.web.pages.deposit import page_form
from tsa_server.web.pages.guard import page
from tsa_server.web.pages.render import render
from tsa_server.web.pages.security import check_csrf, signed_in

_CSRF_LIMIT = 200


def _back(item_id: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"/files/{item_id}")


@page
@signed_in
async def delete_form(request: web.Request, person: Person) -> web.StreamResponse:
    person.principal.require(Scope.DEPOSIT)
    service = service_of(request)
    org = person.member.org_id
    item = await service.off_loop(service.item, org, item_id_of(request))
    view = await service.off_loop(service.view, org, item)
    return render(request, "delete_original.html", {"it": view})


@page
@signed_in
async def delete_original(request: web.Request, person: Person) -> web.StreamResponse:
    person.principal.require(Scope.DEPOSIT)
    service = service_of(request)
    org, item_id = person.member.org_id, item_id_of(request)
    values = await page_form(request)
    delete = functools.partial(
        service.delete_original, downloaded_confirmed=values.get("downloaded") == "yes"
    )
    await service.off_loop(delete, org, item_id)
    raise _back(item_id)


@page
@signed_in
async def auto_renew(request: web.Request, person: Person) -> web.StreamResponse:
    person.principal.require(Scope.DEPOSIT)
    service = service_of(request)
    org, item_id = person.member.org_id, item_id_of(request)
    values = await page_form(request)
    if values.get("on") not in ("0", "1"):
        raise BadRequest(400, "on must be 0 or 1")
    await service.off_loop(service.set_auto_renew, org, item_id, values["on"] == "1")
    raise _back(item_id)


@page
@signed_in
async def reinstate(request: web.Request, person: Person) -> web.StreamResponse:
    person.principal.require(Scope.DEPOSIT)
    service = service_of(request)
    org, item_id = person.member.org_id, item_id_of(request)
    await page_form(request)
    await service.off_loop(service.reinstate, org, item_id)
    raise _back(item_id)


async def _chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(1 << 20):
        yield chunk


@page
@signed_in
async def reupload(request: web.Request, person: Person) -> web.StreamResponse:
    person.principal.require(Scope.DEPOSIT)
    service = service_of(request)
    org, item_id = person.member.org_id, item_id_of(request)
    if request.content_type != "multipart/form-data":
        raise BadRequest(415, "send the page's form")
    limit = service.settings.max_upload_bytes + 64 * 1024
    if (request.content_length or 0) > limit:
        raise BadRequest(413, f"the upload exceeds {service.settings.max_upload_bytes} bytes")
    try:
        reader = await request.multipart()
        first = await reader.next()
        if not isinstance(first, BodyPartReader) or first.name != "csrf":
            raise BadRequest(400, "send the page's form")
        check_csrf(request, (await first.read_chunk(_CSRF_LIMIT)).decode("ascii", "replace"))
        part = await reader.next()
    except (ValueError, LookupError, AssertionError):
        raise BadRequest(400, "malformed form") from None
    if not isinstance(part, BodyPartReader) or part.name != "file":
        raise BadRequest(400, "choose the original file")
    try:  # 404 / 409 / 402 before a byte is stored; 422 for other bytes (the service)
        await service.reupload(org, item_id, _chunks(part))
    except (ClientPayloadError, ConnectionError, asyncio.IncompleteReadError):
        raise BadRequest(400, "incomplete request body") from None
    raise _back(item_id)

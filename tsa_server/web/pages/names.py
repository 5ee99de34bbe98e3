"""The trade name (字号) of the signed-in person's organisation, and the live check:

``GET /name``        the organisation's handle (status, holder since) and its history
                     (each event's genTime), and the check form: ``?handle=&shop_name=``
                     shows the check's answer on the page (usable without script)
``GET /name/check``  public, JSON for static/names.js while typing: GBK bytes, valid
                     or the reason in the reader's language (``names.check`` of the
                     JSON API's GET /api/v1/names/check: the same registry call)
``POST /name/apply`` apply for the handle (public group), as POST
                     /api/v1/names/applications does (`operations.apply`, deposit scope)

The registry decides everything (names/operations.py `check`, names/views.py);
without a [names] registry the page says so (404).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from tsa_server.accounts.key_rules import Scope
from tsa_server.accounts.people import Person
from tsa_server.names import operations
from tsa_server.names.commands import Caller
from tsa_server.names.errors import NamesError
from tsa_server.names.timestamping import NamesService
from tsa_server.names.views import check_json, history_json
from tsa_server.web.api import validate
from tsa_server.web.auth import accounts
from tsa_server.web.errors import BadRequest
from tsa_server.web.handlers import STATE
from tsa_server.web.names.models import NameApplication
from tsa_server.web.pages.deposit import page_form
from tsa_server.web.pages.guard import page
from tsa_server.web.pages.render import language, render, translate
from tsa_server.web.pages.security import signed_in

#: The refusals a check gives, in words (others show the registry's detail).
REASONS = {
    "bad_character": "It has a character a handle may not use.",
    "too_short": "It is too short.",
    "too_long": "It is too long.",
    "not_in_shop_name": "It must appear in your shop name.",
    "not_prefix": "It must begin your shop name.",
    "banned_word": "It contains a word that is not allowed.",
    "restricted_alone": "This word may not be a handle on its own.",
    "all_restricted": "It is made only of restricted words.",
    "brand_proof_required": "It needs proof that the brand is yours.",
    "taken": "Another shop holds it.",
    "pending_elsewhere": "Another shop has applied for it.",
    "contested": "It is being contested.",
    "on_hold": "It is on hold after a release.",
    "under_review": "It is under review.",
    "reserved": "It is reserved.",
}


def _names(request: web.Request) -> NamesService:
    names = request.app[STATE].names
    if names is None:
        raise BadRequest(404, "the handle registry is not enabled on this server")
    return names


def _checked(request: web.Request, names: NamesService) -> dict[str, Any] | None:
    handle = request.query.get("handle", "")
    if not handle:
        return None
    shop = request.query.get("shop_name", "")
    answer = check_json(names, operations.check(names, handle, shop or None))
    lang = language(request)
    low, high = answer["limits"]["handle"]
    reason = answer["reason"]
    if answer["valid"]:
        message = translate(lang, "This handle can be applied for.")
    elif reason in REASONS:
        message = translate(lang, REASONS[reason])
    else:
        message = answer["detail"] or reason or ""
    if answer["bytes"] is None:  # a character GBK has no bytes for
        counted = translate(lang, "%(low)s to %(high)s bytes (GBK) allowed")
    else:
        counted = translate(lang, "%(bytes)s bytes (GBK), %(low)s to %(high)s allowed")
    answer["message"] = message
    answer["counted"] = counted % {"bytes": answer["bytes"], "low": low, "high": high}
    return answer


async def check(request: web.Request) -> web.StreamResponse:
    """The live check (JSON); a refused request is a 400 with its reason."""
    try:
        answer = await asyncio.to_thread(_checked, request, _names(request))
    except (NamesError, BadRequest) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    if answer is None:
        return web.json_response({"error": "give a handle"}, status=400)
    public = {k: answer[k] for k in ("handle", "bytes", "valid", "reason", "message", "counted")}
    return web.json_response(public, headers={"Cache-Control": "no-store"})


def _own(names: NamesService, caller: Caller) -> list[dict[str, Any]]:
    """The handles this organisation holds, each with its history."""
    held = []
    for record in names.store.records():
        holding = record.holding
        if holding is None or holding.shop_id != caller.org_id:
            continue
        events = history_json(names, caller, record.handle)["events"]
        held.append({"handle": record.handle, "status": record.status.value, "events": events})
    return held


@page
@signed_in
async def name_page(request: web.Request, person: Person) -> web.StreamResponse:
    names = _names(request)
    principal = person.principal
    caller = Caller(principal.org_id, principal.key_id, False)
    try:
        checked = await asyncio.to_thread(_checked, request, names)
    except NamesError as exc:
        raise BadRequest(400, str(exc)) from None
    held = await asyncio.to_thread(_own, names, caller)  # database reads: off the loop
    context = {
        "held": held,
        "checked": checked,
        "handle": request.query.get("handle", "")[:200],
        "shop_name": request.query.get("shop_name", "")[:200],
    }
    return render(request, "name.html", context)


@page
@signed_in
async def apply(request: web.Request, person: Person) -> web.StreamResponse:
    """Apply for a handle for the organisation's shop (the registry decides: approved at
    once, contested, or refused with its reason)."""
    names = _names(request)
    principal = person.principal
    principal.require(Scope.DEPOSIT)
    values = await page_form(request)
    body = validate(
        NameApplication,
        {"handle": values.get("handle", ""), "shop_name": values.get("shop_name", "")},
    )
    opened = accounts(request).organisation(principal.org_id).created_at
    caller = Caller(principal.org_id, principal.key_id, False, opened)
    evidence = request.app[STATE].evidence
    await operations.apply(names, caller, body.command(), evidence)
    raise web.HTTPSeeOther("/name")

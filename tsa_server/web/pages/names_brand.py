"""A brand application for a handle (H-9, H-14: group 1, 面向群体一), and its status:

``GET  /name/brand``  the form (the handle, the shop name it will head, the trademark:
                      registered R or application TM, its text, filing date and number;
                      the proof document: one of the organisation's protected files or its
                      SHA-256) and the organisation's brand applications and brand
``POST /name/brand``  CSRF, then `operations.apply` with group 1, as POST
                      /api/v1/names/applications does (deposit scope): pending until the
                      registry's operator certifies or rejects the proof

The form becomes the API's own body (web/names/models.py `NameApplication`), read by the
API's model; the registry checks the mark and the proof (names/brand_claims.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from tsa_server.accounts.people import Person
from tsa_server.names import operations
from tsa_server.names.commands import Caller
from tsa_server.names.errors import NamesError
from tsa_server.names.views import outcome_json
from tsa_server.web.api import validate
from tsa_server.web.auth import accounts
from tsa_server.web.handlers import STATE
from tsa_server.web.names.models import NameApplication
from tsa_server.web.pages.deposit import page_form
from tsa_server.web.pages.guard import page
from tsa_server.web.pages.names import caller_of, may_act, mine, names_service
from tsa_server.web.pages.names_actions import may_act_or_refuse
from tsa_server.web.pages.names_refusals import refusal_page
from tsa_server.web.pages.render import render
from tsa_server.web.pages.security import signed_in

#: The most recent protected files offered as the proof document.
PROOF_CHOICES = 50
_FIELDS = ("handle", "shop_name", "mark_kind", "mark_text", "filed_at", "number", "sha256")


def _items(request: web.Request, org: str) -> list[dict[str, Any]]:
    evidence = request.app[STATE].evidence
    if evidence is None:
        return []
    return [
        {"id": i.id, "name": i.file_name or i.title or i.sha256[:16], "at": i.certified_at}
        for i in evidence.items(org, limit=PROOF_CHOICES)
    ]


def _body(values: dict[str, str]) -> dict[str, Any]:
    """The API's group-1 application from the form."""
    mark: dict[str, Any] = {
        "kind": values.get("mark_kind", ""),
        "filed_at": values.get("filed_at", "").strip(),
        "registration_number": values.get("number", "").strip(),
    }
    if values.get("mark_text", "").strip():
        mark["text"] = values["mark_text"].strip()
    proof = {}
    if values.get("item_id"):
        proof["item_id"] = values["item_id"]
    if values.get("sha256", "").strip():
        proof["sha256"] = values["sha256"].strip().lower()
    return {
        "handle": values.get("handle", "").strip(),
        "shop_name": values.get("shop_name", "").strip(),
        "group": 1,
        "mark": mark,
        "proof": proof,
    }


async def _page(request: web.Request, person: Person, values: dict[str, str]) -> web.Response:
    names = names_service(request)
    org = person.principal.org_id
    held = await asyncio.to_thread(mine, names, caller_of(person))
    items = await asyncio.to_thread(_items, request, org)
    context = {
        "brand_apps": [v for v in held if v.get("application", {}).get("group") == 1],
        "brands": [v for v in held if v.get("brand")],
        "items": items,
        "may_act": may_act(person),
        "min_age": names.registry.policy.mark_min_age_months,
        "values": {k: values.get(k, "")[:200] for k in (*_FIELDS, "item_id")},
    }
    return render(request, "name_brand.html", context)


@page
@signed_in
async def brand_form(request: web.Request, person: Person) -> web.StreamResponse:
    return await _page(request, person, {"mark_kind": "R"})


@page
@signed_in
async def brand_apply(request: web.Request, person: Person) -> web.StreamResponse:
    may_act_or_refuse(request, person)
    names = names_service(request)
    values = await page_form(request)
    body = validate(NameApplication, _body(values))
    principal = person.principal
    organisation = await asyncio.to_thread(accounts(request).organisation, principal.org_id)
    caller = Caller(principal.org_id, principal.key_id, False, organisation.created_at)
    evidence = request.app[STATE].evidence
    try:
        outcome = await operations.apply(names, caller, body.command(), evidence)
    except NamesError as exc:
        return refusal_page(request, exc)
    result = await asyncio.to_thread(outcome_json, names, outcome)
    return render(request, "name_done.html", {"action": "brand", "result": result})

"""The trade name (字号) of the signed-in person's organisation, and the live check:

``GET /name``        the organisation's handles: each with its status (the JSON API's
                     status view, names/views.py `status_json`), what the holder may do
                     (change, release, reclaim: pages/names_actions.py), a pending brand
                     application, and during a contest the organisation's own metrics
                     beside the provisional leader's only (the API's rule, H-16), with
                     the objection period's end in UTC and Beijing time; each with its
                     history (each event's genTime). Then the check form: ``?handle=&
                     shop_name=`` shows the check's answer on the page (usable without
                     script)
``GET /name/check``  public, JSON for static/names.js while typing: GBK bytes, valid
                     or the reason in the reader's language (``names.check`` of the
                     JSON API's GET /api/v1/names/check: the same registry call)
``POST /name/apply`` apply for the handle (public group), as POST
                     /api/v1/names/applications does (`operations.apply`, deposit scope)

The registry decides everything (names/operations.py, names/views.py); without a
[names] registry the page says so (404). A person acts as an organisation's shop,
never as the registry's operator (`caller`: no admin flag), so a page never shows
other contenders' standings.
"""

from __future__ import annotations

import asyncio
from fractions import Fraction
from typing import Any

from aiohttp import web

from tsa_server.accounts.key_rules import Scope
from tsa_server.accounts.people import Person
from tsa_server.names import operations
from tsa_server.names.commands import Caller
from tsa_server.names.disputes import percent_text
from tsa_server.names.errors import NamesError
from tsa_server.names.timestamping import NamesService
from tsa_server.names.views import check_json, history_json, status_json
from tsa_server.web.api import validate
from tsa_server.web.auth import accounts
from tsa_server.web.errors import BadRequest
from tsa_server.web.handlers import STATE
from tsa_server.web.names.models import NameApplication
from tsa_server.web.pages.deposit import page_form
from tsa_server.web.pages.guard import page
from tsa_server.web.pages.names_refusals import REASONS, refusal_page
from tsa_server.web.pages.render import language, render, translate
from tsa_server.web.pages.security import signed_in

__all__ = ["REASONS", "apply", "check", "mine", "name_page"]

#: The statuses in which a shop is bound to its record (it may not apply again).
BOUND = ("active", "pending", "contested")
#: The metrics of H-16 as the page shows them, in the order of the table.
METRICS = (
    ("search_rate", "Search-to-shop rate"),
    ("usage_days", "Days of use"),
    ("continuous_days", "Longest continuous use (days)"),
    ("wangwang", "Wangwang name contains the handle"),
    ("repeat_rate", "Repeat-customer rate"),
    ("transactions", "Average monthly transactions"),
    ("star_level", "Seller star level"),
)


def names_service(request: web.Request) -> NamesService:
    names = request.app[STATE].names
    if names is None:
        raise BadRequest(404, "the handle registry is not enabled on this server")
    return names


def caller_of(person: Person) -> Caller:
    """The organisation as a shop (never the operator's view: no admin flag)."""
    principal = person.principal
    return Caller(principal.org_id, principal.key_id, False)


def may_act(person: Person) -> bool:
    """The API's rule for every handle operation: the deposit scope."""
    return person.principal.has(Scope.DEPOSIT)


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
        answer = await asyncio.to_thread(_checked, request, names_service(request))
    except (NamesError, BadRequest) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    if answer is None:
        return web.json_response({"error": "give a handle"}, status=400)
    public = {k: answer[k] for k in ("handle", "bytes", "valid", "reason", "message", "counted")}
    return web.json_response(public, headers={"Cache-Control": "no-store"})


def _metric(name: str, value: Any) -> str:
    if value is None:
        return "—"
    if name in ("search_rate", "repeat_rate"):
        return percent_text(Fraction(str(value)))  # H-17's display rule
    if name == "transactions":
        return f"{float(Fraction(str(value))):g}"
    return str(value)


def _contest(view: dict[str, Any]) -> dict[str, Any] | None:
    """The contender's own standing beside the provisional leader's, as the status view
    gives them (no other contender is in it)."""
    if view.get("status") != "contested" or "own" not in view:
        return None
    own, leader = view["own"], view.get("leader")
    rows = []
    for name, label in METRICS:
        mine = _metric(name, (own or {}).get("metrics", {}).get(name))
        lead = _metric(name, leader["metrics"].get(name)) if leader else "—"
        rows.append({"label": label, "own": mine, "leader": lead, "bool": name == "wangwang"})
    return {
        "own": own,
        "leader": leader,
        "leading": bool(own and leader and own["shop"] == leader["shop"]),
        "rows": rows,
        "ends": view["objection_window"]["end"],
        "decided_by": view.get("decided_by"),
    }


def mine(names: NamesService, caller: Caller) -> list[dict[str, Any]]:
    """The records this organisation holds, applied for, or has on hold for it: each as
    the API's status view, with its contest and history."""
    org = caller.org_id
    found = []
    for record in names.store.records():
        holder = record.holding is not None and record.holding.account_id == org
        held_for_us = record.hold is not None and record.hold.former_account == org
        application = record.application(org)
        if not (holder or held_for_us or application):
            continue
        view = status_json(names, caller, record.handle)
        if view["status"] == "free":  # a hold that is over
            continue
        view["events"] = history_json(names, caller, record.handle)["events"]
        view["contest"] = _contest(view)
        view["holder_is_us"] = holder
        view["may_reclaim"] = view.get("hold", {}).get("yours") and view["status"] == "on_hold"
        if application is not None:
            view["application"] = {
                "group": int(application.group),
                "shop_name": application.shop_name,
                "applied_at": application.applied_at,
                "mark": application.mark.text if application.mark else None,
                "number": application.proof.registration_number if application.proof else None,
            }
        if holder and record.holding is not None and record.holding.mark is not None:
            view["brand"] = record.holding.mark.text
        found.append(view)
    found.sort(key=lambda v: (v["status"] not in BOUND, v["handle"]))
    return found


@page
@signed_in
async def name_page(request: web.Request, person: Person) -> web.StreamResponse:
    names = names_service(request)
    caller = caller_of(person)
    try:
        checked = await asyncio.to_thread(_checked, request, names)
    except NamesError as exc:
        raise BadRequest(400, str(exc)) from None
    held = await asyncio.to_thread(mine, names, caller)  # database reads: off the loop
    context = {
        "mine": held,
        "bound": any(v["status"] in BOUND for v in held),
        "may_act": may_act(person),
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
    names = names_service(request)
    principal = person.principal
    principal.require(Scope.DEPOSIT)
    values = await page_form(request)
    body = validate(
        NameApplication,
        {"handle": values.get("handle", ""), "shop_name": values.get("shop_name", "")},
    )
    organisation = await asyncio.to_thread(accounts(request).organisation, principal.org_id)
    caller = Caller(principal.org_id, principal.key_id, False, organisation.created_at)
    evidence = request.app[STATE].evidence
    try:
        await operations.apply(names, caller, body.command(), evidence)
    except NamesError as exc:
        return refusal_page(request, exc)
    raise web.HTTPSeeOther("/name")

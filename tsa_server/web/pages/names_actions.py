"""What a holder does with its handle (字号), each in two steps, a page that says what
will happen and a confirmed POST (CSRF), then the result page:

``GET  /name/{handle}/change``   the form: a new handle and/or custom part (自定义区)
``POST /name/{handle}/change``   without ``confirmed``: the review (the new handle's
                                 check, the quota, the spacing, the hold of the old
                                 handle); with ``confirmed=yes``: `operations.change`
``GET  /name/{handle}/release``  what a release means (the hold and its end)
``POST /name/{handle}/release``  ``confirmed=yes``: `operations.release` (withdrawn)
``GET  /name/{handle}/reclaim``  the former holder during the hold: a fresh history
``POST /name/{handle}/reclaim``  ``confirmed=yes``: `operations.reclaim`

Each POST is the use case POST /api/v1/names/{handle}/change, /release and /reclaim
call, with the same deposit scope: the registry decides, and a refusal is shown with its
reason in the reader's language (names_refusals.py). The confirmation pages are offered
only for the organisation's own handle (the status view says whose it is); the rules
still run on the POST. The consequences shown are the policy's values and the hold the
rules would set now (names/holds.py `release_hold`).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from aiohttp import web

from tsa_server.accounts.errors import PermissionDenied
from tsa_server.accounts.people import Person
from tsa_server.clock.beijing import utc_text
from tsa_server.names import operations
from tsa_server.names.commands import MAX_TEXT, Caller
from tsa_server.names.config import HoldReclaim
from tsa_server.names.errors import NameRefused, NamesError
from tsa_server.names.holds import release_hold
from tsa_server.names.operations import OperationResult
from tsa_server.names.reasons import Refusal, Refused
from tsa_server.names.timestamping import NamesService
from tsa_server.names.views import check_json, outcome_json, status_json
from tsa_server.web.auth import accounts
from tsa_server.web.errors import BadRequest
from tsa_server.web.pages.deposit import page_form
from tsa_server.web.pages.guard import page
from tsa_server.web.pages.names import caller_of, may_act, names_service
from tsa_server.web.pages.names_refusals import reason_text, refusal_page
from tsa_server.web.pages.render import language, render, translate
from tsa_server.web.pages.security import signed_in

ACTIONS = ("change", "release", "reclaim")


def may_act_or_refuse(request: web.Request, person: Person) -> None:
    """The API's rule (deposit scope), said in the reader's words (a 403 page)."""
    if not may_act(person):
        lang = language(request)
        raise PermissionDenied(
            translate(lang, "Your role may not change the organisation's trade name."), "deposit"
        )


def _handle(request: web.Request) -> str:
    handle = request.match_info["handle"]
    if not handle or len(handle) > MAX_TEXT:
        raise BadRequest(400, f"a handle is 1 to {MAX_TEXT} characters")
    return handle


def _not_offered(action: str, view: dict[str, Any]) -> NameRefused | None:
    """Why the page offers no confirmation for `action` on this handle, if it does not:
    the holder's actions on the handle it holds, a reclaim of a hold kept for it."""
    handle = view["handle"]
    if action == "reclaim":
        hold = view.get("hold")
        if hold is None or view["status"] != "on_hold":
            return NameRefused(Refused(Refusal.NOTHING_TO_RECLAIM, handle))
        if not hold["yours"]:
            return NameRefused(Refused(Refusal.ON_HOLD, handle))
        return None
    if "changes" in view:  # the status view gives the changes to the holder only
        return None
    return NameRefused(Refused(Refusal.NOT_OWNER if "holder" in view else Refusal.NOT_HOLDER))


def _instant(text: str | None) -> datetime:
    return datetime.fromisoformat((text or "1970-01-01T00:00:00Z").replace("Z", "+00:00"))


def _rules(names: NamesService, view: dict[str, Any]) -> dict[str, Any]:
    """What the rules say for this handle now: the quota and spacing of changes (H-10),
    the hold a release or a change away would start (H-12, A-16), a beta's freeze."""
    policy = names.registry.policy
    now = names.clock()
    hold = release_hold("", "", now, policy)
    assert hold.available_at is not None
    beta = policy.beta
    changes = view.get("changes") or {}
    next_change = changes.get("next_change_at")
    return {
        "quota": policy.change_quota,
        "left": changes.get("left"),
        "used": changes.get("used"),
        "next_change_at": next_change,
        "change_now": bool(changes.get("left")) and _instant(next_change) <= now,
        "interval_days": policy.change_interval_hours // 24,
        "hold_months": policy.hold_months,
        "hold_until": utc_text(hold.available_at),
        "reclaim_allowed": policy.hold_reclaim_by is HoldReclaim.FORMER_OWNER,
        "frozen_until": utc_text(beta.ends_at) if beta and now < beta.ends_at else None,
    }


async def _state(
    request: web.Request, person: Person, action: str
) -> tuple[NamesService, Caller, dict[str, Any]]:
    names = names_service(request)
    caller = caller_of(person)
    handle = _handle(request)
    view = await asyncio.to_thread(status_json, names, caller, handle)
    refused = _not_offered(action, view)
    if refused is not None:
        raise refused
    view["rules"] = _rules(names, view)
    return names, caller, view


def _confirm_page(
    request: web.Request, action: str, view: dict[str, Any], **extra: Any
) -> web.Response:
    return render(request, f"name_{action}.html", {"h": view, **extra})


def _change_values(values: dict[str, str]) -> tuple[str | None, str | None]:
    new_handle = values.get("new_handle", "").strip() or None
    custom = values.get("custom") if values.get("change_custom") == "yes" else None
    if (new_handle and len(new_handle) > MAX_TEXT) or (custom and len(custom) > MAX_TEXT):
        raise BadRequest(400, f"at most {MAX_TEXT} characters")
    return new_handle, custom


@page
@signed_in
async def form(request: web.Request, person: Person) -> web.StreamResponse:
    """The first step: the change form, or the release / reclaim confirmation."""
    action = request.match_info["action"]
    may_act_or_refuse(request, person)
    try:
        _, _, view = await _state(request, person, action)
    except NamesError as exc:
        return refusal_page(request, exc)
    custom = view.get("holder", {}).get("custom", "")
    return _confirm_page(request, action, view, review=False, new_handle="", custom=custom)


async def _review_change(
    request: web.Request, names: NamesService, view: dict[str, Any], values: dict[str, str]
) -> web.Response:
    """The change's review: what it does, and the registry's check of the new name."""
    new_handle, custom = _change_values(values)
    if new_handle is None and custom is None:
        lang = language(request)
        raise BadRequest(400, translate(lang, "Give a new handle or custom part."))
    holder = view["holder"]
    handle = new_handle or view["handle"]
    shop_name = handle + (holder["custom"] if custom is None else custom)
    checked = None
    if new_handle is not None:
        found = await asyncio.to_thread(operations.check, names, new_handle, shop_name)
        checked = check_json(names, found)
        if not checked["valid"]:
            lang = language(request)
            checked["message"] = reason_text(lang, checked["reason"] or "", checked["detail"])
    context = {
        "review": True,
        "new_handle": new_handle or "",
        "custom": "" if custom is None else custom,
        "change_custom": custom is not None,
        "shop_name": shop_name,
        "checked": checked,
    }
    return _confirm_page(request, "change", view, **context)


async def _run(
    request: web.Request,
    person: Person,
    action: str,
    names: NamesService,
    caller: Caller,
    handle: str,
    values: dict[str, str],
) -> OperationResult:
    if action == "change":
        new_handle, custom = _change_values(values)
        return await operations.change(names, caller, handle, new_handle, custom)
    if action == "release":
        return await operations.release(names, caller, handle, "withdrawn")
    shop_name = values.get("shop_name", "").strip() or None
    if shop_name is not None and len(shop_name) > MAX_TEXT:
        raise BadRequest(400, f"at most {MAX_TEXT} characters")
    org = person.principal.org_id
    organisation = await asyncio.to_thread(accounts(request).organisation, org)
    shop = Caller(caller.org_id, caller.key_id, False, organisation.created_at)
    return await operations.reclaim(names, shop, handle, shop_name)


@page
@signed_in
async def act(request: web.Request, person: Person) -> web.StreamResponse:
    """The second step (or the change's review): CSRF first, then the use case."""
    action = request.match_info["action"]
    may_act_or_refuse(request, person)
    values = await page_form(request)
    handle = _handle(request)
    names, caller = names_service(request), caller_of(person)
    try:
        if values.get("confirmed") != "yes":
            names, caller, view = await _state(request, person, action)
            if action == "change":
                return await _review_change(request, names, view, values)
            return _confirm_page(request, action, view, review=False, new_handle="", custom="")
        outcome = await _run(request, person, action, names, caller, handle, values)
    except NamesError as exc:
        return refusal_page(request, exc)
    result = await asyncio.to_thread(outcome_json, names, outcome)
    return render(request, "name_done.html", {"action": action, "result": result})

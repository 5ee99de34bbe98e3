"""Protected files (已保护文件) of the signed-in person's organisation:

``GET /files``                      the list: search (file name, digest, serial), filters
                                    (protection mode, storage status, stored originals
                                    expiring within N days: ?days=N), pages of 25
``GET /files/{item_id}``            one item: digests, times (UTC and Beijing), serial as
                                    openssl prints it, storage status and expiry
``GET /files/{item_id}/{artefact}`` certificate.pdf, token.tsr, kit.zip, original

Every read goes through the evidence service with the person's organisation, as the
JSON API's do (another organisation's item is a 404 like a missing one), and the
downloads are the JSON API's own handlers (web/evidence/items.py, files.py) run for the
person's principal, with the same role and scope checks.
"""

from __future__ import annotations

import inspect
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from ledger.serials import serial_text
from tsa_server.accounts.key_rules import Scope
from tsa_server.accounts.people import Person
from tsa_server.evidence.deposit_requests import views
from tsa_server.evidence.records import ItemMode
from tsa_server.fees.items import StorageStatus
from tsa_server.web.auth import PRINCIPAL
from tsa_server.web.evidence import files as evidence_files
from tsa_server.web.evidence import items as evidence_items
from tsa_server.web.evidence.context import item_id_of, service_of
from tsa_server.web.pages.guard import page
from tsa_server.web.pages.render import render
from tsa_server.web.pages.security import signed_in

PAGE = 25
#: Most items a search or filter looks through (newest first).
SCAN_LIMIT = 5000
_SCAN_CHUNK = 500
MODES = tuple(m.value for m in ItemMode)
STATUSES = tuple(s.value for s in StorageStatus)  # the item view's storage.status
_DOWNLOADS = {
    "certificate.pdf": evidence_files.certificate,
    "token.tsr": evidence_items.token_tsr,
    "kit.zip": evidence_files.kit,
    "original": evidence_items.original,
}


def _matches(
    view: dict[str, Any], q: str, mode: str, status: str, before: datetime | None = None
) -> bool:
    if mode and view["mode"] != mode:
        return False
    storage = view.get("storage")
    if status and (storage is None or storage["status"] != status):
        return False
    if before is not None:
        if storage is None or storage["status"] != StorageStatus.ACTIVE.value:
            return False
        expires = datetime.fromisoformat(str(storage["expires_at"]).replace("Z", "+00:00"))
        if expires > before:
            return False
    if not q:
        return True
    haystack = " ".join(
        str(view.get(k) or "") for k in ("file_name", "work_title", "sha256", "serial", "id")
    )
    return q.casefold() in haystack.casefold()


@page
@signed_in
async def listing(request: web.Request, person: Person) -> web.StreamResponse:
    person.principal.require(Scope.READ)
    service = service_of(request)
    org = person.member.org_id
    q = request.query.get("q", "").strip()[:200]
    mode = request.query.get("mode", "")
    mode = mode if mode in MODES else ""
    status = request.query.get("status", "")
    status = status if status in STATUSES else ""
    days_text = request.query.get("days", "")
    days = int(days_text) if days_text.isdigit() and len(days_text) <= 4 else 0
    days = days if days <= 3650 else 0
    page_text = request.query.get("page", "1")
    number = int(page_text) if page_text.isdigit() and 0 < len(page_text) < 7 else 1

    def collect() -> tuple[list[dict[str, Any]], int, bool]:
        first = (number - 1) * PAGE
        before = service.now() + timedelta(days=days) if days else None
        if not (q or mode or status or days):
            items = service.items(org, limit=PAGE + 1, offset=first)
            total = service.store.count_items(org)
            shown = views(service, org, items[:PAGE])
            return shown, total, len(items) > PAGE
        found: list[dict[str, Any]] = []
        for offset in range(0, SCAN_LIMIT, _SCAN_CHUNK):
            chunk = service.items(org, limit=_SCAN_CHUNK, offset=offset)
            found.extend(
                v for v in views(service, org, chunk) if _matches(v, q, mode, status, before)
            )
            if len(chunk) < _SCAN_CHUNK:
                break
        return found[first : first + PAGE], len(found), len(found) > first + PAGE

    shown, total, more = await service.off_loop(collect)

    def link(to: int) -> str:
        given = (("q", q), ("mode", mode), ("status", status), ("days", str(days or "")))
        params = {k: v for k, v in given if v}
        return "/files?" + urlencode({**params, "page": str(to)})

    context = {
        "items": shown,
        "total": total,
        "q": q,
        "mode": mode,
        "status": status,
        "days": days or "",
        "modes": MODES,
        "statuses": STATUSES,
        "prev_url": link(number - 1) if number > 1 else "",
        "next_url": link(number + 1) if more else "",
    }
    return render(request, "files.html", context)


@page
@signed_in
async def detail(request: web.Request, person: Person) -> web.StreamResponse:
    person.principal.require(Scope.READ)
    service = service_of(request)
    org = person.member.org_id
    item_id = item_id_of(request)

    def read() -> tuple[dict[str, Any], str]:
        item = service.item(org, item_id)  # ItemNotFound for another organisation's
        assert item.serial is not None
        return service.view(org, item), serial_text(item.serial)

    view, serial = await service.off_loop(read)
    may_change = person.principal.has(Scope.DEPOSIT)
    return render(request, "item.html", {"it": view, "serial": serial, "may_change": may_change})


@page
@signed_in
async def download(request: web.Request, person: Person) -> web.StreamResponse:
    handler = _DOWNLOADS.get(request.match_info["artefact"])
    if handler is None:
        raise web.HTTPNotFound()
    principal = person.principal
    principal.require(Scope.READ)
    request[PRINCIPAL] = principal
    api_handler = inspect.unwrap(handler)  # the API's handler, past its key check
    response: web.StreamResponse = await api_handler(request)
    if not response.prepared:
        response.headers.setdefault("Cache-Control", "no-store")
    return response

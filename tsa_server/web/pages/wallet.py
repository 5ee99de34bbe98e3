"""The wallet (存证包) of the signed-in person's organisation, read-only:

``GET /wallet``  the balance, the credit lots in the order they are used (first to
                 lapse, first used: FEFO) with their lapse dates, the 12-month storage
                 forecast against the balance, the reminders due and the latest notices,
                 and the credit history (pages of 50 entries, oldest first, ?after=ID)

Everything comes from the services the JSON API's GET /api/v1/credits, /forecast and
/reminders answer from (web/evidence/credits.py, reports.py), in the same JSON shapes
(evidence/views.py); this module computes nothing.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tsa_server.accounts.key_rules import Scope
from tsa_server.accounts.people import Person
from tsa_server.evidence.views import entry_json, forecast_json, lot_json, notice_json
from tsa_server.web.evidence.context import service_of
from tsa_server.web.pages.guard import page
from tsa_server.web.pages.render import render
from tsa_server.web.pages.security import signed_in

ENTRIES = 50


@page
@signed_in
async def wallet(request: web.Request, person: Person) -> web.StreamResponse:
    person.principal.require(Scope.READ)
    service = service_of(request)
    org = person.member.org_id
    after_text = request.query.get("after", "0")
    after = int(after_text) if after_text.isdigit() and len(after_text) < 19 else 0

    def read() -> dict[str, Any]:
        now = service.now()
        entries = service.entries(org, after_id=after, limit=ENTRIES)
        return {
            "balance": service.balance(org, now),
            "lots": [lot_json(lot, now) for lot in service.lots(org)],
            "entries": [entry_json(e) for e in entries],
            "next_after": entries[-1].id if len(entries) == ENTRIES else None,
            "forecast": forecast_json(service.forecast(org)),
            "due": [notice_json(n) for n in service.reminders(org)],
            "notices": [notice_json(n) for n in service.notices(org, limit=10)],
        }

    return render(request, "wallet.html", await service.off_loop(read))

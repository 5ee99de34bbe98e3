"""What an organisation is told about its account (REC-3, REC-10):

``GET /api/v1/reminders``  read: reminders due now and recent notices
``GET /api/v1/forecast``   read: 12-month obligations against the balance
``GET /api/v1/usage``      read: monthly quota use, balance, rate limits
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tsa_server.accounts.key_rules import Scope
from tsa_server.clock.beijing import to_beijing
from tsa_server.evidence.views import forecast_json, notice_json
from tsa_server.web.api import json_response, ref
from tsa_server.web.auth import PRINCIPAL, require
from tsa_server.web.errors import instant
from tsa_server.web.evidence.context import INT, NoQuery, operation, org_of, query, service_of
from tsa_server.web.ratelimit import RATE_LIMITER


@require(Scope.READ)
async def reminders(request: web.Request) -> web.Response:
    query(request, NoQuery)
    service = service_of(request)
    org = org_of(request)

    def answer() -> dict[str, Any]:
        return {
            "due": [notice_json(n) for n in service.reminders(org)],
            "notices": [notice_json(n) for n in service.notices(org)],
        }

    return web.json_response(await service.off_loop(answer))


@require(Scope.READ)
async def forecast(request: web.Request) -> web.Response:
    query(request, NoQuery)
    service = service_of(request)
    return web.json_response(
        forecast_json(await service.off_loop(service.forecast, org_of(request)))
    )


@require(Scope.READ)
async def usage(request: web.Request) -> web.Response:
    """REC-10: this month's certified items against the quota, the balance and the
    calling key's rate limits (tokens left after this request)."""
    query(request, NoQuery)
    service = service_of(request)
    org = org_of(request)
    now = service.now()
    limiter = request.app.get(RATE_LIMITER)  # its state now, before waiting for the store
    rate_limit = None if limiter is None else limiter.describe(request[PRINCIPAL].key_id, org)
    used = await service.off_loop(service.usage, org, now)
    balance = await service.off_loop(service.balance, org, now)
    return web.json_response(
        {
            "at": instant(now),
            "window": {
                "start": instant(used.start),
                "end": instant(used.end),
                "start_beijing": to_beijing(used.start).isoformat(),
                "end_beijing": to_beijing(used.end).isoformat(),
            },
            "items": {"used": used.used, "limit": used.limit, "remaining": used.remaining},
            "balance": balance,
            "rate_limit": rate_limit,
        }
    )


# ------------------------------------------------------------------ OpenAPI

_NOTICES = {"type": "array", "items": ref("Notice")}
_OBJECTS = {"type": "array", "items": {"type": "object"}}
_FORECAST = {
    "type": "object",
    "properties": {
        "balance": INT,
        "total_due": INT,
        "shortfall": INT,
        "low_balance": {"type": "boolean"},
        "months": _OBJECTS,
        "obligations": _OBJECTS,
    },
}
OPERATIONS = (
    operation(
        "get",
        "/api/v1/reminders",
        "Reminders due now (storage expiry, purge, lot lapse, low balance) and the latest notices",
        "read",
        {
            "200": json_response(
                {"type": "object", "properties": {"due": _NOTICES, "notices": _NOTICES}}
            )
        },
        400,
    ),
    operation(
        "get",
        "/api/v1/usage",
        "REC-10 usage: the current Beijing-month window, certified items against the "
        "monthly quota, the balance and the key's rate limits",
        "read",
        {"200": json_response(ref("Usage"))},
        400,
    ),
    operation(
        "get",
        "/api/v1/forecast",
        "The 12-month storage obligations forecast against the balance (REC-3)",
        "read",
        {"200": json_response(_FORECAST)},
        400,
    ),
)

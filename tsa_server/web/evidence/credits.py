"""Credit lots and the balance over HTTP (P-1, G-6):

``POST /api/v1/credits/lots``  admin of an operator organisation: grant a lot
``GET  /api/v1/credits``       read: balance, lots (FEFO order), credit entries
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field

from tsa_server.accounts.errors import PermissionDenied
from tsa_server.accounts.key_rules import Scope
from tsa_server.evidence.views import entry_json, lot_json
from tsa_server.web.api import Body, json_response, query_params, ref
from tsa_server.web.auth import PRINCIPAL, require
from tsa_server.web.evidence.context import (
    INT,
    STR,
    Offset,
    Page,
    fields,
    operation,
    org_of,
    query,
    service_of,
)


class GrantLot(Body):
    """POST /api/v1/credits/lots (org_id: the lot's organisation, default the caller's)."""

    units: Annotated[int, Field(ge=1, le=1_000_000)]
    idempotency_key: Annotated[str, Field(pattern="^[A-Za-z0-9._:/-]{1,100}$")]
    note: Annotated[str, Field(max_length=500)] = ""
    org_id: str = ""


class CreditsQuery(Body):
    """GET /api/v1/credits: entries after `after_id`, at most `limit`."""

    after_id: Offset = 0
    limit: Page = 100


@require(Scope.ADMIN)
async def grant_lot(request: web.Request) -> web.Response:
    service = service_of(request)
    principal = request[PRINCIPAL]
    body = await fields(request, GrantLot)
    if principal.org_id not in service.settings.operators:
        raise PermissionDenied("only the platform operator's admin keys grant credit lots")
    target = body.org_id if "org_id" in body.model_fields_set else principal.org_id
    grant = functools.partial(service.grant_lot, note=body.note)
    lot, created = await service.off_loop(grant, target, body.units, body.idempotency_key)
    now = service.now()
    balance = await service.off_loop(service.balance, target, now)
    return web.json_response(
        {"lot": lot_json(lot, now), "balance": balance, "created": created},
        status=201 if created else 200,
    )


@require(Scope.READ)
async def credits(request: web.Request) -> web.Response:
    asked = query(request, CreditsQuery)
    service = service_of(request)
    org = org_of(request)
    now = service.now()

    def answer() -> dict[str, Any]:
        entries = service.entries(org, after_id=asked.after_id, limit=asked.limit)
        return {
            "balance": service.balance(org, now),
            "at": now.isoformat().replace("+00:00", "Z"),
            "lots": [lot_json(lot, now) for lot in service.lots(org)],
            "entries": [entry_json(e) for e in entries],
            "next_after_id": entries[-1].id if len(entries) == asked.limit else None,
        }

    return web.json_response(await service.off_loop(answer))


_GRANTED = {
    "type": "object",
    "properties": {"lot": ref("Lot"), "balance": INT, "created": {"type": "boolean"}},
    "additionalProperties": False,
}
_CREDITS = {
    "type": "object",
    "properties": {
        "balance": INT,
        "at": STR,
        "lots": {"type": "array", "items": ref("Lot")},
        "entries": {"type": "array", "items": ref("CreditEntry")},
        "next_after_id": {"type": ["integer", "null"]},
    },
}
OPERATIONS = (
    operation(
        "post",
        "/api/v1/credits/lots",
        "Grant a credit lot (P-1): operator organisations' admin keys only; "
        "idempotent by idempotency_key (200 when already granted)",
        "admin",
        {
            "201": json_response(_GRANTED, "granted"),
            "200": json_response({"type": "object"}, "already granted with this key"),
        },
        400,
        404,
        409,
        413,
        415,
        422,
        body=GrantLot,
    ),
    operation(
        "get",
        "/api/v1/credits",
        "Balance, lots in consumption order (FEFO) and the credit entries",
        "read",
        {"200": json_response(_CREDITS)},
        400,
        params=query_params(CreditsQuery),
    ),
)

"""The trade-name (字号 / handle) endpoints (docs/spec/evidence.md part D), HTTP only: each
handler reads its body or query into a model below, makes one call into the registry's
use cases (tsa_server/names/operations.py) and writes the result as JSON. Refusals are
names errors, answered by web/errors.py: JSON ``{"error", "reason", "detail", "field"}``
with 400 (bad input), 403 (not yours), 404 (unknown), 409 (state), 503 (no time-stamp).

``GET  /api/v1/names/check?handle=&shop_name=``  public: bytes, validity, reason
``POST /api/v1/names/applications``             deposit scope: apply (group 1: mark, proof)
``GET  /api/v1/names/{handle}``                 any key: status (contest view for contenders)
``GET  /api/v1/names/{handle}/history``         any key: events with their RFC 3161 tokens
``POST /api/v1/names/{handle}/change``          deposit scope, holder: new handle / custom part
``POST /api/v1/names/{handle}/release``         deposit scope, holder: give the handle up
``POST /api/v1/names/{handle}/reclaim``         deposit scope, former holder during the hold
``POST /api/v1/names/{handle}/objections``      deposit scope, contender: object
``POST /api/v1/names/{handle}/complaints``      deposit scope, registered-mark holder (H-13)
``POST /api/v1/names/{handle}/decision``        admin scope of an operator organisation

The request models: web/names/models.py. The word lists and weights:
web/names/policy.py. The OpenAPI description: the `OPERATIONS` here and there,
assembled by web/names/openapi.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from tsa_server.accounts.key_rules import Scope
from tsa_server.names import operations
from tsa_server.names.commands import Caller, EvidenceItems
from tsa_server.names.operations import OperationResult
from tsa_server.names.timestamping import NamesService
from tsa_server.names.views import check_json, history_json, outcome_json, status_json
from tsa_server.web.api import (
    Body,
    Operation,
    Param,
    json_response,
    query_of,
    read_body,
    ref,
    schema_of,
)
from tsa_server.web.auth import PRINCIPAL, accounts, require
from tsa_server.web.errors import BadRequest
from tsa_server.web.handlers import STATE
from tsa_server.web.names.models import (
    CheckQuery,
    NameApplication,
    NameChange,
    NameComplaint,
    NameDecision,
    NameObjection,
    NameReclaim,
    NameRelease,
)


# ------------------------------------------------------------------ helpers
def service(request: web.Request) -> NamesService:
    names = request.app[STATE].names
    if names is None:
        raise BadRequest(404, "the handle registry is not enabled on this server")
    return names


async def caller(request: web.Request, *, with_shop: bool = False) -> Caller:
    """The key's organisation; `with_shop`: also when its shop opened (its creation),
    read off the event loop."""
    p = request[PRINCIPAL]
    opened = None
    if with_shop:
        organisation = await asyncio.to_thread(accounts(request).organisation, p.org_id)
        opened = organisation.created_at
    return Caller(p.org_id, p.key_id, p.has(Scope.ADMIN), opened)


def _evidence(request: web.Request) -> EvidenceItems | None:
    return request.app[STATE].evidence


def _answer(names: NamesService, outcome: OperationResult, status: int = 200) -> web.Response:
    return web.json_response(outcome_json(names, outcome), status=status)


# ----------------------------------------------------------------- handlers
async def check(request: web.Request) -> web.Response:
    names = service(request)
    query = query_of(request, CheckQuery)
    result = await asyncio.to_thread(operations.check, names, query.handle, query.shop_name or None)
    return web.json_response(check_json(names, result), headers={"Cache-Control": "no-store"})


@require(Scope.DEPOSIT)
async def apply(request: web.Request) -> web.Response:
    names = service(request)
    body = await read_body(request, NameApplication)
    who = await caller(request, with_shop=True)
    outcome = await operations.apply(names, who, body.command(), _evidence(request))
    return _answer(names, outcome, 201 if outcome.published else 202)


@require()
async def status(request: web.Request) -> web.Response:
    names, who = service(request), await caller(request)
    view = await asyncio.to_thread(status_json, names, who, request.match_info["handle"])
    return web.json_response(view)


@require()
async def history(request: web.Request) -> web.Response:
    names, who = service(request), await caller(request)
    view = await asyncio.to_thread(history_json, names, who, request.match_info["handle"])
    return web.json_response(view)


@require(Scope.DEPOSIT)
async def change(request: web.Request) -> web.Response:
    names = service(request)
    body = await read_body(request, NameChange)
    handle = request.match_info["handle"]
    who = await caller(request)
    outcome = await operations.change(names, who, handle, body.handle, body.custom)
    return _answer(names, outcome)


@require(Scope.DEPOSIT)
async def release(request: web.Request) -> web.Response:
    names = service(request)
    body = await read_body(request, NameRelease)
    cause = body.cause or "withdrawn"
    who = await caller(request)
    outcome = await operations.release(names, who, request.match_info["handle"], cause)
    return _answer(names, outcome)


@require(Scope.DEPOSIT)
async def reclaim(request: web.Request) -> web.Response:
    names = service(request)
    body = await read_body(request, NameReclaim)
    who = await caller(request, with_shop=True)
    outcome = await operations.reclaim(names, who, request.match_info["handle"], body.shop_name)
    return _answer(names, outcome)


@require(Scope.DEPOSIT)
async def objections(request: web.Request) -> web.Response:
    names = service(request)
    body = await read_body(request, NameObjection)
    handle = request.match_info["handle"]
    who = await caller(request)
    outcome = await operations.object_to(names, who, handle, body.statement or "")
    return _answer(names, outcome, 201)


@require(Scope.DEPOSIT)
async def complaints(request: web.Request) -> web.Response:
    """H-13: pending (202) until an operator upholds or dismisses it."""
    names = service(request)
    body = await read_body(request, NameComplaint)
    who = await caller(request, with_shop=True)
    handle = request.match_info["handle"]
    outcome = await operations.complain(names, who, handle, body.command(), _evidence(request))
    return _answer(names, outcome, 202)


@require(Scope.ADMIN)
async def decision(request: web.Request) -> web.Response:
    names = service(request)
    who = await caller(request)
    operations.require_operator(names, who)  # before the body, as it always was
    body = await read_body(request, NameDecision)
    outcome = await operations.decide(names, who, request.match_info["handle"], body.command())
    return _answer(names, outcome)


# ----------------------------------------------------------- the description
_TEXT = {
    400: "bad input",
    401: "no or bad API key",
    403: "not allowed (scope or owner)",
    404: "unknown",
    409: "state conflict",
    412: "If-Match is stale: the policy changed (the answer carries the current ETag)",
    428: "If-Match is required",
    503: "event could not be time-stamped",
}
OPERATION_ERRORS = (400, 401, 403, 404, 409, 503)
#: The path parameter the document has always listed for every registry operation,
#: also those whose path has none (tests/web/snapshots/openapi.json).
HANDLE = Param("handle", "path")


def errors(*codes: int) -> dict[str, Any]:
    return {
        str(c): json_response(ref("Refusal" if c in (400, 403, 409) else "Error"), _TEXT[c])
        for c in codes
    }


def scope_note(scope: str) -> str:
    return f"Needs an API key with the `{scope}` scope."


def inline(model: type[Body]) -> dict[str, Any]:
    """A request body written out in the operation rather than as a reference (its nested
    models are still components: names_openapi.SCHEMAS). tests/web/test_openapi.py edits
    the application's body in place to prove its comparison is not blind."""
    return {"required": True, "content": {"application/json": {"schema": schema_of(model)}}}


def _operation(
    method: str,
    path: str,
    summary: str,
    body: type[Body] | dict[str, Any],
    ok: str = "200",
    scope: str = "deposit",
) -> Operation:
    return Operation(
        method,
        path,
        summary,
        {ok: json_response(ref("NameResult")), **errors(*OPERATION_ERRORS)},
        body=body,
        params=(HANDLE,),
        description=scope_note(scope),
    )


_ANY_OBJECT = json_response({"type": "object"})
_HISTORY = {
    "type": "object",
    "properties": {
        "handle": {"type": "string"},
        "events": {"type": "array", "items": ref("HistoryEvent")},
    },
}
_ITEM = "/api/v1/names/{handle}"
OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "get",
        "/api/v1/names/check",
        "Live check while typing: byte count, validity and the reason of a refusal",
        {"200": json_response(ref("Check")), **errors(400, 404)},
        params=(
            Param("handle", "query", required=True),
            Param("shop_name", "query"),
        ),
        security=False,
    ),
    _operation(
        "post",
        "/api/v1/names/applications",
        "Apply for a handle for the caller's shop (201 approved / contested at once in "
        "open registration, 202 pending during a beta window)",
        inline(NameApplication),
        ok="201",
    ),
    Operation(
        "get",
        _ITEM,
        "Status: holder, state, objection window; a contender sees its own metrics beside "
        "the provisional leader's (never other contenders')",
        {"200": _ANY_OBJECT, **errors(401, 404)},
        params=(HANDLE,),
    ),
    Operation(
        "get",
        _ITEM + "/history",
        "Every event of the handle with its RFC 3161 token and genTime",
        {"200": json_response(_HISTORY), **errors(401, 404)},
        params=(HANDLE,),
    ),
    _operation(
        "post",
        _ITEM + "/change",
        "Holder: change the handle (quota, 30-day spacing) and/or the custom part",
        NameChange,
    ),
    _operation(
        "post",
        _ITEM + "/release",
        "Holder: give the handle up (held one month); operators: shop_deleted / penalty",
        NameRelease,
    ),
    _operation(
        "post",
        _ITEM + "/reclaim",
        "Former holder: take the handle back during its hold",
        NameReclaim,
    ),
    _operation(
        "post",
        _ITEM + "/objections",
        "Contender (not the leader): object during the objection period",
        NameObjection,
        ok="201",
    ),
    _operation(
        "post",
        _ITEM + "/complaints",
        "Registered-mark holder: complain against the handle's holder, at any time (H-13); "
        "pending (202) until an operator upholds (the handle moves to the complainant) or "
        "dismisses it",
        NameComplaint,
        ok="202",
    ),
    _operation(
        "post",
        _ITEM + "/decision",
        "Operator: publish a pending handle (metrics), certify or reject a brand applicant's "
        "proof (brand + verdict), uphold or dismiss a trademark complaint (complaint + "
        "verdict), decide a contest (winner) or resolve a penalty review (outcome)",
        NameDecision,
        scope="admin",
    ),
)

"""What every evidence endpoint module shares: the application keys of the evidence
service and its companions, the request's service, organisation and item id, the query
and body readers that answer in the evidence API's shapes, and the OpenAPI pieces of
its operations (error answers, the rate limit, the scope note)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from aiohttp import web
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field

from tsa_server.evidence.certificate import Operator
from tsa_server.evidence.deposit_requests import DepositRequests
from tsa_server.evidence.errors import InvalidInput, ItemNotFound
from tsa_server.evidence.render_pool import CertificateRenderer
from tsa_server.evidence.renewal_runner import RenewalScheduler
from tsa_server.evidence.service import EvidenceService
from tsa_server.evidence.store.items import MAX_PAGE
from tsa_server.evidence.webhook_dispatch import WebhookDispatcher
from tsa_server.fees import FieldError
from tsa_server.web.api import Body, InvalidBody, Operation, Param, json_response, ref, validate
from tsa_server.web.auth import PRINCIPAL
from tsa_server.web.bodies import read_json_object
from tsa_server.web.errors import BadRequest

EVIDENCE = web.AppKey("evidence_service", EvidenceService)
SCHEDULER = web.AppKey("renewal_scheduler", RenewalScheduler)
DISPATCHER = web.AppKey("webhook_dispatcher", WebhookDispatcher)
RENDERER = web.AppKey("certificate_renderer", CertificateRenderer)
OPERATOR = web.AppKey("certificate_operator", Operator)  # [disclosure], on certificates

M = TypeVar("M", bound=BaseModel)


def service_of(request: web.Request) -> EvidenceService:
    service = request.app.get(EVIDENCE)
    if service is None:
        raise BadRequest(404, "evidence deposits are not enabled on this server")
    return service


def deposits_of(request: web.Request) -> DepositRequests:
    """The deposit use case over the request's service; new notices wake the app's
    webhook dispatcher when it runs."""
    return DepositRequests(service_of(request), wake=lambda: wake_dispatcher(request.app))


def wake_dispatcher(app: web.Application) -> None:
    """New notices wait: the running dispatcher delivers them now."""
    dispatcher = app.get(DISPATCHER)
    if dispatcher is not None:
        dispatcher.wake()


def org_of(request: web.Request) -> str:
    org_id: str = request[PRINCIPAL].org_id
    return org_id


def item_id_of(request: web.Request) -> str:
    item_id = request.match_info["item_id"]
    if not item_id.isascii() or not item_id.isprintable() or len(item_id) > 64:
        raise ItemNotFound("no such item")
    return item_id


def _digits(value: Any) -> Any:
    if isinstance(value, str):
        if not value.isdigit():
            raise ValueError("must be a non-negative integer")
        return int(value)
    return value


def _at_most(high: int) -> AfterValidator:
    def check(value: int) -> int:
        if value > high:
            raise ValueError(f"must be at most {high}")
        return value

    return AfterValidator(check)


# Numbers in a query string: decimal digits only (the bounds, then the digits check,
# as pydantic applies the annotations inside out).
Page = Annotated[int, Field(ge=1, le=MAX_PAGE), BeforeValidator(_digits)]
Offset = Annotated[int, Field(ge=0), _at_most(2**62), BeforeValidator(_digits)]


class NoQuery(Body):
    """An endpoint without query parameters."""


def query(request: web.Request, model: type[M]) -> M:
    """The query string as `model` (400 naming unknown or malformed parameters; of a
    repeated parameter the first counts)."""
    unknown = sorted(set(request.query) - set(model.model_fields))
    if unknown:
        raise InvalidInput(f"unknown query parameter(s): {', '.join(unknown)}")
    return validate(model, {name: request.query.get(name) for name in request.query})


async def fields(request: web.Request, model: type[M]) -> M:
    """The JSON object body as `model`; what does not fit is a FieldError (422
    ``{"error", "fields"}``), as the evidence API has always answered."""
    raw = await read_json_object(request)
    try:
        return validate(model, raw)
    except InvalidBody as exc:
        raise FieldError(exc.problems) from None


# ------------------------------------------------------------------ OpenAPI

ERROR_TEXT = {
    400: "bad input",
    401: "no or bad API key",
    402: "not enough credits (nothing was debited)",
    403: "the key lacks the scope (or is not an operator's)",
    404: "unknown item (or another organisation's)",
    409: "not allowed in the item's storage state",
    410: "the original was deleted or purged",
    413: "too large",
    415: "wrong media type",
    422: "field errors",
    429: "rate limit of the key or its organisation (Retry-After: seconds)",
    503: "the TSA could not time-stamp; units refunded",
}
RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}}
#: 429 of every authenticated operation (web/openapi.py adds it to the others too).
RATE_LIMITED = {**json_response(ref("TooManyRequests"), ERROR_TEXT[429]), "headers": RETRY_AFTER}
ITEM_ID = Param("item_id", "path")
STR = {"type": "string"}
INT = {"type": "integer"}


def errors(*codes: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for code in codes:
        schema = {402: "InsufficientCredits", 422: "FieldErrors", 503: "DepositResult"}
        named = ref(schema.get(code, "Error"))
        out[str(code)] = RATE_LIMITED if code == 429 else json_response(named, ERROR_TEXT[code])
    return out


def operation(
    method: str,
    path: str,
    summary: str,
    scope: str,
    ok: Mapping[str, Any],
    *codes: int,
    body: type[BaseModel] | Mapping[str, Any] | None = None,
    params: tuple[Param, ...] = (),
) -> Operation:
    """An authenticated evidence operation: its scope, answers and the errors every one
    of them may give (401, 403, 429) besides `codes`."""
    return Operation(
        method,
        path,
        summary,
        {**ok, **errors(401, 403, 429, *codes)},
        body=body,
        params=params,
        description=f"Needs an API key with the `{scope}` scope.",
    )

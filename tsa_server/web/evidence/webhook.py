"""The organisation's REC-10 webhook over HTTP (delivery: evidence/webhooks.py and
webhook_dispatch.py):

``PUT|GET|DELETE /api/v1/webhook``  admin: set (the secret shown once), show, remove
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field, WithJsonSchema

from tsa_server.accounts.key_rules import Scope
from tsa_server.evidence import webhook_endpoint as endpoint
from tsa_server.evidence.webhooks import EVENTS, MAX_URL_CHARS, WebhookSettings
from tsa_server.web.api import Body, json_response, ref
from tsa_server.web.auth import require
from tsa_server.web.errors import json_error
from tsa_server.web.evidence.context import (
    DISPATCHER,
    STR,
    NoQuery,
    fields,
    operation,
    org_of,
    query,
    service_of,
)

log = logging.getLogger("tsa.web.evidence")


class PutWebhook(Body):
    """PUT /api/v1/webhook: where to, and which notice kinds (default all). The URL's
    rules and the kinds are checked by evidence/webhooks.py."""

    url: Annotated[str, Field(max_length=MAX_URL_CHARS, json_schema_extra={"format": "uri"})]
    # Checked by check_events, whose refusal names the field as a whole.
    events: Annotated[
        Any, WithJsonSchema({"type": "array", "minItems": 1, "items": {"enum": list(EVENTS)}})
    ] = None


@require(Scope.ADMIN)
async def put_webhook(request: web.Request) -> web.Response:
    """Set the organisation's webhook; the answer holds the signing secret, once."""
    query(request, NoQuery)
    body = await fields(request, PutWebhook)
    dispatcher = request.app.get(DISPATCHER)
    settings = dispatcher.settings if dispatcher is not None else WebhookSettings()
    org = org_of(request)
    made = await endpoint.set_webhook(service_of(request), settings, org, body.url, body.events)
    log.info("webhook of %s %s", org, "created" if made.created else "replaced")
    return web.json_response(
        {**made.webhook, "secret": made.secret, "created": made.created},
        status=201 if made.created else 200,
    )


@require(Scope.ADMIN)
async def get_webhook(request: web.Request) -> web.Response:
    query(request, NoQuery)
    shown = await endpoint.webhook(service_of(request), org_of(request))
    if shown is None:
        return json_error(404, "no webhook is set (PUT /api/v1/webhook)")
    return web.json_response(shown)


@require(Scope.ADMIN)
async def delete_webhook(request: web.Request) -> web.Response:
    query(request, NoQuery)
    if not await endpoint.remove_webhook(service_of(request), org_of(request)):
        return json_error(404, "no webhook is set")
    return web.json_response({"deleted": True})


# ------------------------------------------------------------------ OpenAPI

_SET = {
    "allOf": [
        ref("Webhook"),
        {
            "type": "object",
            "properties": {"secret": STR, "created": {"type": "boolean"}},
            "required": ["secret", "created"],
        },
    ]
}
_DELETED = {
    "type": "object",
    "properties": {"deleted": {"type": "boolean"}},
    "additionalProperties": False,
}
OPERATIONS = (
    operation(
        "put",
        "/api/v1/webhook",
        "Set the organisation's REC-10 webhook: an https URL (http only where the "
        "operator allows it; no credentials in it) whose host is a public address "
        "(loopback, private, link-local, multicast and reserved addresses are refused "
        "with 422, and again at every delivery), and the notice kinds it gets (default "
        "all). Each notice is POSTed as JSON with X-TSA-Event, X-TSA-Delivery (the "
        "notice key: the same on retries) and X-TSA-Signature: t=<unix seconds>,"
        'v1=<hex HMAC-SHA256 of "<t>.<body>"> (refuse a t outside a few minutes of '
        "your clock), retried with backoff until a 2xx (redirects are not followed). "
        "Failures show as a category (timeout, connection refused, TLS error, DNS "
        "failure, blocked address, HTTP status). The answer holds the signing secret, "
        "shown this once; a PUT again replaces the URL, events and secret",
        "admin",
        {
            "201": json_response(_SET, "set (the secret is shown once)"),
            "200": json_response(_SET, "replaced (a new secret)"),
        },
        400,
        413,
        415,
        422,
        body=PutWebhook,
    ),
    operation(
        "get",
        "/api/v1/webhook",
        "The organisation's webhook and its delivery counts (never the secret)",
        "admin",
        {"200": json_response(ref("Webhook"))},
        400,
        404,
    ),
    operation(
        "delete",
        "/api/v1/webhook",
        "Remove the organisation's webhook (undelivered notices are not sent)",
        "admin",
        {"200": json_response(_DELETED)},
        400,
        404,
    ),
)

"""The trade-name registry's part of the OpenAPI document: the operations declared beside
their handlers (web/names/registry.py, web/names/policy.py) and the schemas of their answers;
web/openapi.py composes `DESCRIBED` with the other areas."""

from __future__ import annotations

from typing import Any

from tsa_server.web.api import Described, components, json_response, ref
from tsa_server.web.names import models as names_models
from tsa_server.web.names import policy as names_policy
from tsa_server.web.names import registry as names

_STR = {"type": "string"}
_NULLABLE_STR = {"type": ["string", "null"]}
_BASE64 = {"type": "string", "contentEncoding": "base64"}

#: What the registry answers with (names/views.py, names/policy_operations.py).
SCHEMAS: dict[str, Any] = {
    "HistoryEvent": {
        "type": "object",
        "properties": {
            "seq": {"type": "integer"},
            "kind": _STR,
            "handle": _STR,
            "at": _STR,
            "sha256": _STR,
            "token": _BASE64,
            "gen_time": _STR,
            "ops_index": {"type": ["integer", "null"]},
            "canonical": {
                **_BASE64,
                "description": "only to the account named in the event and to operators",
            },
        },
    },
    "NameResult": {
        "type": "object",
        "properties": {"handle": _STR, "status": _STR, "event": ref("HistoryEvent")},
    },
    "PolicyWords": {
        "type": "object",
        "properties": {
            "version": {"type": "integer"},
            "etag": _STR,
            "lists": {"type": "object"},
            "overlay": {"type": "object"},
            "change": {"type": "object"},
        },
    },
    "Check": {
        "type": "object",
        "properties": {
            "handle": _STR,
            "bytes": {"type": ["integer", "null"]},
            "valid": {"type": "boolean"},
            "reason": _NULLABLE_STR,
            "detail": _NULLABLE_STR,
            "field": _NULLABLE_STR,
            "shop_name": {"type": "object"},
            "limits": {"type": "object"},
        },
        "required": ["handle", "bytes", "valid", "reason"],
    },
}

DESCRIBED = Described(
    operations=(*names.OPERATIONS, *names_policy.OPERATIONS),
    # the nested models of the application's body, which is written out (names.inline)
    schemas={**SCHEMAS, **components([names_models.NameMark, names_models.NameProof])},
    # The document's own path; it has always been declared with the registry's.
    paths={
        "/api/v1/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": json_response({"type": "object"})},
            }
        }
    },
)

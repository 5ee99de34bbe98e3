"""The OpenAPI description of the trade-name registry endpoints (web/names.py and
web/names_policy.py), as literal schemas; web/openapi.py composes it with the others."""

from __future__ import annotations

from typing import Any

from tsa_server.web.api import API_KEY as _KEY
from tsa_server.web.api import Described
from tsa_server.web.openapi_schema import json_body, object_schema, query_param
from tsa_server.web.openapi_schema import json_response as _json

_ERROR = {"$ref": "#/components/schemas/Error"}
_REFUSAL = {"$ref": "#/components/schemas/Refusal"}
_HANDLE = {"name": "handle", "in": "path", "required": True, "schema": {"type": "string"}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "bad input",
        401: "no or bad API key",
        403: "not allowed (scope or owner)",
        404: "unknown",
        409: "state conflict",
        412: "If-Match is stale: the policy changed (the answer carries the current ETag)",
        428: "If-Match is required",
        503: "event could not be time-stamped",
    }
    return {str(c): _json(_REFUSAL if c in (400, 403, 409) else _ERROR, text[c]) for c in codes}


def _body(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return json_body(object_schema(properties, tuple(required or ())))


def _op(
    summary: str,
    *,
    scope: str | None,
    body: dict | None = None,
    ok: str = "200",
    ok_schema: dict | None = None,
    errors=(400, 401, 403, 404, 409, 503),
    params: list | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "parameters": params or [_HANDLE]}
    if scope != "public":
        op["security"] = _KEY
        if scope:
            op["description"] = f"Needs an API key with the `{scope}` scope."
    if body is not None:
        op["requestBody"] = body
    op["responses"] = {
        ok: _json(ok_schema or {"$ref": "#/components/schemas/NameResult"}),
        **_errors(*errors),
    }
    return op


STR = {"type": "string"}
_IF_MATCH = {"name": "If-Match", "in": "header", "required": True, "schema": STR}
_WORDS = {"type": "array", "items": STR, "maxItems": 200}
_WORD_EDIT = {
    "type": "object",
    "properties": {"add": _WORDS, "remove": _WORDS},
    "additionalProperties": False,
}
_DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "TSA accounts and trade-name (字号) registry API",
        "version": "1",
        "description": "Every accepted registry operation is an event time-stamped by this "
        "TSA (RFC 3161) and appended to the operations log.",
    },
    "components": {
        "securitySchemes": {
            "apiKey": {"type": "http", "scheme": "bearer", "description": "tsa_<id>_<secret>"}
        },
        "schemas": {
            "Error": {"type": "object", "properties": {"error": STR}, "required": ["error"]},
            "Refusal": {
                "type": "object",
                "properties": {
                    "error": STR,
                    "reason": STR,
                    "detail": STR,
                    "field": {"type": ["string", "null"]},
                },
                "required": ["error"],
            },
            "HistoryEvent": {
                "type": "object",
                "properties": {
                    "seq": {"type": "integer"},
                    "kind": STR,
                    "handle": STR,
                    "at": STR,
                    "sha256": STR,
                    "token": {"type": "string", "contentEncoding": "base64"},
                    "gen_time": STR,
                    "ops_index": {"type": ["integer", "null"]},
                    "canonical": {
                        "type": "string",
                        "contentEncoding": "base64",
                        "description": "only to the account named in the event and to operators",
                    },
                },
            },
            "NameResult": {
                "type": "object",
                "properties": {
                    "handle": STR,
                    "status": STR,
                    "event": {"$ref": "#/components/schemas/HistoryEvent"},
                },
            },
            "PolicyWords": {
                "type": "object",
                "properties": {
                    "version": {"type": "integer"},
                    "etag": STR,
                    "lists": {"type": "object"},
                    "overlay": {"type": "object"},
                    "change": {"type": "object"},
                },
            },
            "Check": {
                "type": "object",
                "properties": {
                    "handle": STR,
                    "bytes": {"type": ["integer", "null"]},
                    "valid": {"type": "boolean"},
                    "reason": {"type": ["string", "null"]},
                    "detail": {"type": ["string", "null"]},
                    "field": {"type": ["string", "null"]},
                    "shop_name": {"type": "object"},
                    "limits": {"type": "object"},
                },
                "required": ["handle", "bytes", "valid", "reason"],
            },
        },
    },
    "paths": {
        "/api/v1/openapi.json": {
            "get": {"summary": "This document", "responses": {"200": _json({"type": "object"})}}
        },
        "/api/v1/names/check": {
            "get": _op(
                "Live check while typing: byte count, validity and the reason of a refusal",
                scope="public",
                ok_schema={"$ref": "#/components/schemas/Check"},
                errors=(400, 404),
                params=[
                    query_param("handle", STR, required=True),
                    query_param("shop_name", STR),
                ],
            )
        },
        "/api/v1/names/applications": {
            "post": _op(
                "Apply for a handle for the caller's shop (201 approved / contested at once in "
                "open registration, 202 pending during a beta window)",
                scope="deposit",
                ok="201",
                params=[],
                body=_body(
                    {
                        "handle": STR,
                        "shop_name": STR,
                        "group": {
                            "enum": [1, 2],
                            "description": "1: brand holder (H-14), with mark and proof; "
                            "pending until an operator certifies it (202). 2 (default): public",
                        },
                        "mark": {
                            "type": "object",
                            "properties": {
                                "kind": {"enum": ["R", "TM"]},
                                "text": {**STR, "description": "default: the handle"},
                                "filed_at": {**STR, "description": "ISO 8601; Beijing if naive"},
                                "registration_number": STR,
                            },
                            "required": ["kind", "filed_at", "registration_number"],
                        },
                        "proof": {
                            "type": "object",
                            "description": "the proof document: an evidence item of the "
                            "caller's organisation, by id and/or content SHA-256",
                            "properties": {"item_id": STR, "sha256": STR},
                        },
                    },
                    ["handle", "shop_name"],
                ),
            )
        },
        "/api/v1/names/policy/words": {
            "get": _op(
                "Word lists in force (banned, restricted, brands), version and ETag",
                scope="",
                ok_schema={"$ref": "#/components/schemas/PolicyWords"},
                errors=(401, 404),
                params=[],
            ),
            "patch": _op(
                "Operator admin: add/remove words; If-Match required; time-stamped, in the "
                "operations log, durable, in force at once",
                scope="admin",
                ok_schema={"$ref": "#/components/schemas/PolicyWords"},
                errors=(400, 401, 403, 404, 412, 428, 503),
                params=[_IF_MATCH],
                body=_body({n: _WORD_EDIT for n in ("banned", "restricted", "brands")}),
            ),
        },
        "/api/v1/names/policy/weights": {
            "get": _op(
                "Dispute weights in force (H-16), version and ETag",
                scope="",
                ok_schema={"type": "object"},
                errors=(401, 404),
                params=[],
            ),
            "patch": _op(
                "Operator admin: override weights (null drops an override); If-Match required",
                scope="admin",
                ok_schema={"$ref": "#/components/schemas/PolicyWords"},
                errors=(400, 401, 403, 404, 412, 428, 503),
                params=[_IF_MATCH],
                body={
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": {"type": ["number", "string", "null"]},
                            }
                        }
                    },
                },
            ),
        },
        "/api/v1/names/policy/changes": {
            "get": _op(
                "Every policy change: canonical record, RFC 3161 token, operations-log index",
                scope="",
                ok_schema={"type": "object"},
                errors=(401, 404),
                params=[],
            )
        },
        "/api/v1/names/policy/reload": {
            "post": _op(
                "Operator admin: re-read the conf word lists (the overlay stays on top)",
                scope="admin",
                ok_schema={"$ref": "#/components/schemas/PolicyWords"},
                errors=(401, 403, 404, 409),
                params=[],
            )
        },
        "/api/v1/names/{handle}": {
            "get": _op(
                "Status: holder, state, objection window; a contender sees its own metrics beside "
                "the provisional leader's (never other contenders')",
                scope="",
                ok_schema={"type": "object"},
                errors=(401, 404),
            )
        },
        "/api/v1/names/{handle}/history": {
            "get": _op(
                "Every event of the handle with its RFC 3161 token and genTime",
                scope="",
                ok_schema={
                    "type": "object",
                    "properties": {
                        "handle": STR,
                        "events": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/HistoryEvent"},
                        },
                    },
                },
                errors=(401, 404),
            )
        },
        "/api/v1/names/{handle}/change": {
            "post": _op(
                "Holder: change the handle (quota, 30-day spacing) and/or the custom part",
                scope="deposit",
                body=_body({"handle": STR, "custom": STR}),
            )
        },
        "/api/v1/names/{handle}/release": {
            "post": _op(
                "Holder: give the handle up (held one month); operators: shop_deleted / penalty",
                scope="deposit",
                body=_body({"cause": {"enum": ["withdrawn", "shop_deleted", "penalty"]}}),
            )
        },
        "/api/v1/names/{handle}/reclaim": {
            "post": _op(
                "Former holder: take the handle back during its hold",
                scope="deposit",
                body=_body({"shop_name": STR}),
            )
        },
        "/api/v1/names/{handle}/objections": {
            "post": _op(
                "Contender (not the leader): object during the objection period",
                scope="deposit",
                ok="201",
                body=_body({"statement": STR}),
            )
        },
        "/api/v1/names/{handle}/complaints": {
            "post": _op(
                "Registered-mark holder: complain against the handle's holder, at any time "
                "(H-13); pending (202) until an operator upholds (the handle moves to the "
                "complainant) or dismisses it",
                scope="deposit",
                ok="202",
                body=_body(
                    {
                        "shop_name": {**STR, "description": "the name the handle will head"},
                        "mark": {
                            "type": "object",
                            "properties": {
                                "kind": {
                                    "enum": ["R", "TM"],
                                    "description": "R: a TM application is refused "
                                    "(registered_mark_required)",
                                },
                                "text": {**STR, "description": "default: the handle"},
                                "filed_at": {**STR, "description": "ISO 8601; Beijing if naive"},
                                "registration_number": STR,
                            },
                            "required": ["kind", "filed_at", "registration_number"],
                        },
                        "proof": {
                            "type": "object",
                            "description": "the registration certificate: an evidence item of "
                            "the caller's organisation, by id and/or content SHA-256",
                            "properties": {"item_id": STR, "sha256": STR},
                        },
                        "statement": STR,
                    },
                    ["shop_name", "mark", "proof"],
                ),
            )
        },
        "/api/v1/names/{handle}/decision": {
            "post": _op(
                "Operator: publish a pending handle (metrics), certify or reject a brand "
                "applicant's proof (brand + verdict), uphold or dismiss a trademark complaint "
                "(complaint + verdict), decide a contest (winner) or resolve a penalty review "
                "(outcome)",
                scope="admin",
                body=_body(
                    {
                        "brand": {**STR, "description": "the Group-1 applicant's shop id"},
                        "complaint": {**STR, "description": "the complainant's shop id (H-13)"},
                        "verdict": {"enum": ["certify", "reject", "uphold", "dismiss"]},
                        "winner": STR,
                        "note": STR,
                        "metrics": {"type": "object"},
                        "outcome": {"enum": ["release", "retain"]},
                    }
                ),
            )
        },
    },
}


DESCRIBED = Described(
    schemas={
        k: v for k, v in _DOCUMENT["components"]["schemas"].items() if k not in ("Error", "Refusal")
    },
    paths=_DOCUMENT["paths"],
)

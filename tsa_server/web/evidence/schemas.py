"""The component schemas the evidence operations' answers name (errors, items, lots,
credit entries, notices, the webhook, usage): written as JSON Schema, since they
describe answers, not requests a model validates."""

from __future__ import annotations

from typing import Any

from tsa_server.evidence.webhooks import EVENTS
from tsa_server.web.api import ref as _ref

_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}
_INT = {"type": "integer"}

SCHEMAS: dict[str, Any] = {
    "TooManyRequests": {
        "type": "object",
        "properties": {
            "error": _STR,
            "bucket": {"enum": ["key", "account"]},
            "per_second": {"type": "number"},
            "burst": _INT,
            "retry_after": _INT,
        },
        "required": ["error"],
    },
    "QuotaExceeded": {
        "type": "object",
        "properties": {
            "error": _STR,
            "quota": {"const": "monthly_item_quota"},
            "used": _INT,
            "limit": _INT,
            "requested": _INT,
            "window_start": _STR,
            "window_end": _STR,
            "retry_after": _INT,
        },
        "required": ["error", "quota", "used", "limit"],
    },
    "Usage": {
        "type": "object",
        "properties": {
            "at": _STR,
            "window": {
                "type": "object",
                "description": "the current Beijing calendar month [start, end)",
                "properties": {
                    "start": _STR,
                    "end": _STR,
                    "start_beijing": _STR,
                    "end_beijing": _STR,
                },
            },
            "items": {
                "type": "object",
                "description": "items certified this month (and held by running "
                "deposits); limit and remaining null when there is no quota",
                "properties": {
                    "used": _INT,
                    "limit": {"type": ["integer", "null"]},
                    "remaining": {"type": ["integer", "null"]},
                },
            },
            "balance": _INT,
            "rate_limit": {
                "type": ["object", "null"],
                "description": "the calling key's and its organisation's token buckets "
                "(tokens left after this request); null when not limited",
            },
        },
    },
    "FieldErrors": {
        "type": "object",
        "properties": {"error": _STR, "fields": {"type": "object"}},
        "required": ["error"],
    },
    "InsufficientCredits": {
        "type": "object",
        "properties": {"error": _STR, "needed": _INT, "available": _INT, "lapsed": _INT},
        "required": ["error", "needed", "available"],
    },
    "Lot": {
        "type": "object",
        "properties": {
            "id": _STR,
            "purchased_at": _STR,
            "lapses_at": _STR,
            "lapses_at_beijing": _STR,
            "quantity": _INT,
            "remaining": _INT,
            "held": _INT,
            "used": _INT,
            "lapsed": _INT,
            "adjusted": _INT,
            "usable": {"type": "boolean"},
        },
    },
    "CreditEntry": {
        "type": "object",
        "properties": {
            "id": _INT,
            "kind": _STR,
            "units": {"type": "integer", "description": "signed change of the balance"},
            "lot": _NSTR,
            "item": _NSTR,
            "period": {"type": ["integer", "null"]},
            "idempotency_key": _STR,
            "at": _NSTR,
            "created_at": _STR,
            "note": _STR,
        },
    },
    "Item": {
        "type": "object",
        "properties": {
            "id": _STR,
            "serial": _STR,
            "mode": {"enum": ["HASH_ONLY", "STORED"]},
            "sha256": _STR,
            "sha512": _NSTR,
            "sm3": _NSTR,
            "size": {"type": ["integer", "null"]},
            "file_name": _STR,
            "depositor": _STR,
            "work_title": _STR,
            "work_content": _STR,
            "statement": _STR,
            "certified_at": _STR,
            "certified_at_beijing": _STR,
            "epoch": _STR,
            "filing_status": _STR,
            "storage": {
                "type": ["object", "null"],
                "description": "null for hash-only items (no storage status, S-1)",
            },
            "downloads": {"type": "object"},
            "already_certified": {
                "type": "array",
                "items": {"type": "object"},
                "description": "in a deposit's answer: the organisation's earlier items of "
                "this SHA-256 (id, serial, certified_at); the deposit is still allowed",
            },
        },
        "required": ["id", "serial", "mode", "sha256", "certified_at"],
    },
    "DepositResult": {
        "type": "object",
        "properties": {
            "batch": _STR,
            "items": {"type": "array", "items": _ref("Item")},
            "failed": {"type": "array", "items": {"type": "object"}},
            "balance": _INT,
            "error": _STR,
        },
    },
    "Notice": {
        "type": "object",
        "properties": {
            "key": _STR,
            "kind": _STR,
            "at": _STR,
            "subject": _STR,
            "target": _NSTR,
            "units": _INT,
            "covered": {"type": ["boolean", "null"]},
            "detail": _STR,
        },
    },
    "Webhook": {
        "type": "object",
        "description": "the organisation's webhook (never its secret after PUT)",
        "properties": {
            "url": _STR,
            "events": {"type": "array", "items": {"enum": list(EVENTS)}},
            "all_events": {"type": "boolean", "description": "kinds added later included"},
            "created_at": _STR,
            "updated_at": _STR,
            "deliveries": {
                "type": "object",
                "properties": {
                    "delivered": _INT,
                    "pending": _INT,
                    "given_up": _INT,
                    "last_attempt": {
                        "type": ["object", "null"],
                        "description": "last_attempt_at, last_status (the receiver's HTTP "
                        "status) and last_error: timeout, connection refused, connection "
                        "failed, TLS error, DNS failure, blocked address, plain http not "
                        "allowed, or HTTP <status>",
                    },
                },
            },
        },
        "required": ["url", "events", "created_at", "updated_at"],
    },
}
